"""Shared test configuration: an isolated AIRFLOW_HOME and DAG folder, the simulator's fixtures, and the DAG
fixtures the operator and sensor tests share (the simulator as the default connection, a DAG runner, the task's
output).

The environment is set before anything imports Airflow, so a bare ``pytest`` never touches ~/airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_liveresponse.simulator import Simulator
    from tests.dag_runner import DagRunner

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


@pytest.fixture
def sim_conn(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The default MDE connection, pointing at the simulator (no token carried in or out of the test)."""
    from airflow_provider_liveresponse.auth import reset_token_providers

    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", simulator.connection_json())
    reset_token_providers()
    yield "mde_live_response_default"
    reset_token_providers()


@pytest.fixture
def dags(airflow_db: Path) -> Iterator[DagRunner]:
    """A runner of DAG files written to the test DAG folder (removed afterwards)."""
    from tests.dag_runner import DagRunner

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    runner = DagRunner(folder)
    yield runner
    for path in runner.files:
        path.unlink(missing_ok=True)


@pytest.fixture
def task_output(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """``task_output()``: what the task logged so far, through Airflow's task log (stdout/stderr) and through the
    standard loggers of the provider's modules (the hook's decisions: reattach, throttling)."""

    def read() -> str:
        text = "".join(capsys.readouterr()) + caplog.text
        caplog.clear()
        return text

    return read
