"""Fixtures of the transfer tests: the simulator as the default MDE connection, finished actions, the operator
run directly or in real DAG runs. The real S3 (SeaweedFS) and Azure Blob (Azurite) servers are session fixtures
of tests/conftest.py: one server each for every folder, as Airflow caches an object store per connection id."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.auth import reset_token_providers
from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
    LiveResponseToObjectStorageOperator,
)
from tests.dag_runner import DagRunner
from tests.transfers.transfer_helpers import Actions, Transfer, sim_sleep

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_liveresponse.simulator import Simulator


@pytest.fixture
def sim_conn(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The default MDE connection, pointing at the simulator."""
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", simulator.connection_json())
    reset_token_providers()
    yield "mde_live_response_default"
    reset_token_providers()


@pytest.fixture
def actions(simulator: Simulator, sim_conn: str) -> Actions:
    return Actions(simulator, sim_conn)


@pytest.fixture
def transfer(simulator: Simulator, sim_conn: str, monkeypatch: pytest.MonkeyPatch) -> Transfer:
    """The operator, run directly; resume back-offs advance the simulated clock instead of sleeping."""

    def hook(self: LiveResponseToObjectStorageOperator) -> LiveResponseHook:
        return LiveResponseHook(self.mde_conn_id, max_retry_wait=self.max_retry_wait, sleep=sim_sleep(simulator))

    monkeypatch.setattr(LiveResponseToObjectStorageOperator, "_hook", hook)
    return Transfer(simulator)


@pytest.fixture
def dags(airflow_db: Path) -> Iterator[DagRunner]:
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    runner = DagRunner(folder)
    yield runner
    for path in runner.files:
        path.unlink(missing_ok=True)
