"""The test kit shared by this project's tests and benchmarks, installed with the ``simulator`` extra.

- :mod:`.simulated_connection`: a started simulator exposed as an Airflow connection, and its counters.
- :mod:`.fault_matrix`: every fault the simulator can throw, the hook call it hits, and how that call must end
  (``tests/campaigns`` runs the cases as tests, ``benchmarks`` as fault campaign 3).
- :mod:`.airflow_system`: a real Airflow (API server, scheduler, triggerer, DAG processor as separate processes)
  and an observer of its metadata database, for system tests and the fleet and worker benchmarks.

The provider never imports this package; it needs what the simulator needs
(``pip install 'airflow-provider-liveresponse[simulator]'``).
"""
