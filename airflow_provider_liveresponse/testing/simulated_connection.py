"""A started simulator exposed as an Airflow connection, and reading its counters."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_liveresponse.simulator.server import Simulator

#: MDE's read endpoints, as the simulator counts them (``calls:<group>``).
READ_GROUPS = ("get_action", "list_actions", "link", "library", "machines")


def connection_env(conn_id: str) -> str:
    """The ``AIRFLOW_CONN_*`` variable of ``conn_id``."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


@contextlib.contextmanager
def running_simulator(conn_id: str, **options: Any) -> Iterator[Simulator]:
    """A started simulator exposed as Airflow connection ``conn_id``; token caches fresh before and after."""
    from airflow_provider_liveresponse.auth import reset_token_providers
    from airflow_provider_liveresponse.simulator.server import Simulator

    variable = connection_env(conn_id)
    previous = os.environ.get(variable)
    sim = Simulator(**options).start()
    os.environ[variable] = sim.connection_json()
    reset_token_providers()
    try:
        yield sim
    finally:
        reset_token_providers()
        sim.stop()
        if previous is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = previous


def read_calls(sim: Simulator) -> int:
    """MDE read calls the simulator has counted so far (every read endpoint group)."""
    with sim.state.lock:
        return sum(sim.state.counters[f"calls:{group}"] for group in READ_GROUPS)


def counter(sim: Simulator, name: str) -> int:
    """One simulator counter."""
    with sim.state.lock:
        return sim.state.counters[name]
