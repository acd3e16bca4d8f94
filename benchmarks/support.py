"""Helpers shared by the benchmarks: an isolated Airflow home and quiet logs (the simulator wired to an Airflow
connection is :mod:`airflow_provider_liveresponse.testing.simulated_connection`)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

#: The connection id the benchmarks give the simulator.
CONN_ID = "mde_bench"


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
