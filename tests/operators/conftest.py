"""Fixtures for end-to-end DAG tests: an Airflow metadata DB, a DAG folder, the simulator as a connection."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.auth import reset_token_providers
from tests.dag_runner import DagRunner

if TYPE_CHECKING:
    from collections.abc import Callable


@pytest.fixture
def sim_conn(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The default MDE connection, pointing at the simulator."""
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", simulator.connection_json())
    reset_token_providers()
    return "mde_live_response_default"


@pytest.fixture
def dags(airflow_db: Path) -> Any:
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
