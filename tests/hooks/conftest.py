"""Fixtures for the hook tests: an Airflow connection pointing at a running simulator."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.auth import reset_token_providers
from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

if TYPE_CHECKING:
    from collections.abc import Iterator

CONN_ID = "mde_sim"


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, simulator: Any, **overrides: Any) -> None:
    """Expose the simulator as an Airflow connection through an AIRFLOW_CONN_* variable."""
    extra = {**simulator.connection_extra(), **overrides.pop("extra", {})}
    data = {
        "conn_type": "mde_live_response",
        "login": overrides.pop("login", simulator.client_id),
        "password": overrides.pop("password", simulator.client_secret),
        "extra": extra,
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(data))


@pytest.fixture(autouse=True)
def _fresh_tokens() -> Iterator[None]:
    reset_token_providers()
    yield
    reset_token_providers()


@pytest.fixture
def make_connection(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``make_connection(conn_id, **overrides)``: another connection to the simulator, e.g. with a certificate."""

    def make(conn_id: str, **overrides: Any) -> str:
        set_connection(monkeypatch, conn_id, simulator, **overrides)
        return conn_id

    return make


@pytest.fixture
def conn_id(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    set_connection(monkeypatch, CONN_ID, simulator)
    return CONN_ID


@pytest.fixture
def hook(conn_id: str) -> LiveResponseHook:
    """A hook whose retries do not sleep for real: waits are recorded instead."""
    waits: list[float] = []
    hook = LiveResponseHook(conn_id, max_retry_wait=3600, sleep=waits.append)
    hook.waits = waits  # type: ignore[attr-defined]
    return hook
