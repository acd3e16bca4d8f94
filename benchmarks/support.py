"""Helpers shared by the benchmarks: an isolated Airflow home, and a simulator wired to an Airflow connection."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_liveresponse.simulator.server import Simulator

#: The connection id the benchmarks give the simulator.
CONN_ID = "mde_bench"
#: MDE's read endpoints, as the simulator counts them (``calls:<group>``).
READ_GROUPS = ("get_action", "list_actions", "link", "library", "machines")


def prepare_environment() -> None:
    """Point Airflow at a throw-away home before anything imports it, as the test suite does."""
    if "AIRFLOW_HOME" not in os.environ:
        os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-bench-home-")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(os.environ["AIRFLOW_HOME"]) / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")


def quiet_logs(verbose: bool) -> None:
    """Keep the hook's retry warnings out of the figures unless ``--verbose``."""
    if verbose:
        return
    for name in ("airflow_provider_liveresponse", "airflow.task", "airflow.triggers", "uvicorn", "msal"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # Triggers and operators log through structlog (Airflow 3's task SDK), which has its own level filter;
    # Airflow configures it when imported, so import it first.
    import airflow.sdk  # noqa: F401
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def connection_env(conn_id: str) -> str:
    """The ``AIRFLOW_CONN_*`` variable of ``conn_id``."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


@contextlib.contextmanager
def running_simulator(conn_id: str = CONN_ID, **options: Any) -> Iterator[Simulator]:
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
