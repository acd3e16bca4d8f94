"""Shared test configuration: an isolated AIRFLOW_HOME and DAG folder, and the simulator's fixtures.

The environment is set before anything imports Airflow, so a bare ``pytest`` never touches ~/airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-home-")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(os.environ["AIRFLOW_HOME"]) / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

pytest_plugins = ["airflow_provider_liveresponse.simulator.pytest_plugin"]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the test AIRFLOW_HOME's SQLite database once per session."""
    home = Path(os.environ["AIRFLOW_HOME"])
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ},
    )
    return home
