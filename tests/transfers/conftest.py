"""Fixtures of the transfer tests: finished actions and the operator run directly. The simulator connection
(sim_conn), the DAG runner (dags) and the real S3 (SeaweedFS) and Azure Blob (Azurite) servers are shared fixtures
of tests/conftest.py: one server each for every folder, as Airflow caches an object store per connection id."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
    LiveResponseToObjectStorageOperator,
)
from tests.transfers.transfer_helpers import Actions, Transfer, sim_sleep

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator import Simulator


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
