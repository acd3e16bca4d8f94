"""Faults armed per endpoint group: errors, resets, slow answers, lost responses, cut blobs."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
import requests

from airflow_provider_liveresponse.simulator.faults import Faults
from airflow_provider_liveresponse.simulator.fleet import device_id
from tests.simulator.sim_helpers import TRIAGE_ZIP, SimClient, get_file

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator

WS1 = device_id("ws-0001.contoso.local")
MEMORY_DMP = "C:\\Windows\\Temp\\memory.dmp"


def _finished_blob_url(simulator: Simulator, mde: SimClient, path: str = MEMORY_DMP) -> tuple[str, str]:
    action_id = mde.start(WS1, get_file(path))
    simulator.state.advance_clock(120)
    return action_id, str(mde.link(action_id, 0).json()["value"])


@pytest.mark.parametrize("status", [500, 502, 503])
def test_the_next_calls_fail_with_the_chosen_status(simulator: Simulator, mde: SimClient, status: int) -> None:
    simulator.state.faults.set("list_actions", fail_next=2, status=status)

    statuses = [mde.get("/api/machineactions").status_code for _ in range(3)]

    assert statuses == [status, status, 200]


def test_a_reset_closes_the_connection_without_a_response(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.faults.set("get_action", reset_next=1)
    action_id = mde.start(WS1, get_file(TRIAGE_ZIP))

    with pytest.raises(requests.exceptions.ConnectionError):
        mde.get(f"/api/machineactions/{action_id}")
    assert mde.get(f"/api/machineactions/{action_id}").status_code == 200


def test_commit_then_drop_creates_an_action_the_client_never_hears_of(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.faults.set("runliveresponse", commit_then_drop_next=1)

    with pytest.raises(requests.exceptions.ConnectionError):
        mde.run(WS1, get_file(TRIAGE_ZIP), comment="lost")

    listed = mde.control("GET", "/actions").json()
    assert listed["actions_created"] == 1
    assert listed["value"][0]["requestorComment"] == "lost"
    found = mde.get("/api/machineactions", params={"$filter": f"machineId eq '{WS1}'"}).json()["value"]
    assert [action["requestorComment"] for action in found] == ["lost"]


def test_a_slow_answer_waits_real_seconds(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.faults.set("library", delay_seconds=0.3, delay_next=1)

    started = time.monotonic()
    assert mde.get("/api/libraryfiles").status_code == 200
    slow = time.monotonic() - started
    started = time.monotonic()
    mde.get("/api/libraryfiles")
    fast = time.monotonic() - started

    assert slow >= 0.3
    assert fast < 0.3


def test_a_slow_answer_can_hit_the_client_timeout(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.faults.set("machines", delay_seconds=0.5, delay_next=1)

    with pytest.raises(requests.exceptions.ReadTimeout):
        mde.session.get(
            f"{simulator.api_url}/api/machines",
            headers={"Authorization": f"Bearer {mde.token}"},
            verify=mde.verify,
            timeout=0.2,
        )


def test_unauthorized_as_if_the_token_expired(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.faults.set("get_action", unauthorized_next=1)
    action_id = mde.start(WS1, get_file(TRIAGE_ZIP))

    response = mde.get(f"/api/machineactions/{action_id}", headers={"Authorization": f"Bearer {mde.token}"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Unauthorized"


def test_malformed_json(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.faults.set("list_actions", malformed_next=1)

    response = mde.get("/api/machineactions")

    assert response.status_code == 200
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()


def test_token_endpoint_faults(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.faults.set("token", fail_next=1, status=503)

    assert mde.fetch_token().status_code == 503
    assert mde.fetch_token().status_code == 200
    assert simulator.state.counters["token_requests"] == 2


def test_a_blob_cut_short_once(simulator: Simulator, mde: SimClient) -> None:
    action_id, url = _finished_blob_url(simulator, mde)
    simulator.state.faults.set("blob", cut_after_bytes=100_000, cut_mode="once")

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        mde.blob(url)
    response = mde.blob(url)

    assert response.status_code == 200
    assert len(response.content) == simulator.state.result_digest(action_id, 0)["compressed"]["size"]


def test_a_blob_cut_short_always_still_serves_ranges_below_the_cut(simulator: Simulator, mde: SimClient) -> None:
    _, url = _finished_blob_url(simulator, mde)
    simulator.state.faults.set("blob", cut_after_bytes=1000, cut_mode="always")

    for _ in range(2):
        response = mde.session.get(url, verify=mde.verify, stream=True, timeout=10)
        assert response.status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            response.content  # noqa: B018
    assert mde.blob(url, headers={"Range": "bytes=0-499"}).status_code == 206


def test_blob_errors_are_azure_xml(simulator: Simulator, mde: SimClient) -> None:
    _, url = _finished_blob_url(simulator, mde, "C:\\Windows\\Temp\\empty.txt")
    simulator.state.faults.set("blob", fail_next=1, status=503)

    response = mde.blob(url)

    assert response.status_code == 503
    assert "<Code>ServerBusy</Code>" in response.text


def test_a_blob_reset(simulator: Simulator, mde: SimClient) -> None:
    _, url = _finished_blob_url(simulator, mde, "C:\\Windows\\Temp\\empty.txt")
    simulator.state.faults.set("blob", reset_next=1)

    with pytest.raises(requests.exceptions.ConnectionError):
        mde.blob(url)
    assert mde.blob(url).status_code == 200


def test_faults_are_armed_and_cleared_through_the_control_api(mde: SimClient) -> None:
    armed = mde.control("POST", "/faults", json={"group": "library", "fail_next": 1, "status": 502})
    assert armed.json()["library"]["fail_next"] == 1
    assert mde.get("/api/libraryfiles").status_code == 502

    mde.control("POST", "/faults", json={"group": "library", "fail_next": 5})
    assert mde.control("DELETE", "/faults").json() == {}
    assert mde.get("/api/libraryfiles").status_code == 200


def test_bad_fault_settings_are_refused(mde: SimClient) -> None:
    assert mde.control("POST", "/faults", json={"group": "nope", "fail_next": 1}).status_code == 400
    assert mde.control("POST", "/faults", json={"group": "blob", "status": 404}).status_code == 400
    assert mde.control("POST", "/faults", json={"group": "blob", "explode": True}).status_code == 400


def test_random_errors_are_seeded() -> None:
    def pattern(seed: int) -> list[str | None]:
        faults = Faults(seed)
        faults.set("get_action", error_rate=0.5)
        return [faults.decide("get_action").kind for _ in range(40)]

    first = pattern(7)
    assert first == pattern(7)
    assert 5 < first.count("error") < 35


def test_a_blob_cut_always_stops_every_resume_at_the_same_offset(simulator: Simulator, mde: SimClient) -> None:
    _, url = _finished_blob_url(simulator, mde)
    simulator.state.faults.set("blob", cut_after_bytes=1000, cut_mode="always")

    resumed = mde.session.get(url, headers={"Range": "bytes=500-"}, verify=mde.verify, stream=True, timeout=10)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        resumed.content  # noqa: B018
    past = mde.session.get(url, headers={"Range": "bytes=1000-"}, verify=mde.verify, stream=True, timeout=10)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        past.content  # noqa: B018


@pytest.mark.parametrize(("announce", "header"), [(True, "1"), (30, "0.5"), (False, None)])
def test_throttling_with_or_without_retry_after(
    simulator: Simulator, mde: SimClient, announce: float | bool, header: str | None
) -> None:
    simulator.state.faults.set("machines", throttle_next=1, throttle_retry_after=announce)

    response = mde.get("/api/machines")

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "TooManyRequests"
    assert response.headers.get("Retry-After") == header
    assert simulator.state.counters["throttled:machines"] == 1
    assert mde.get("/api/machines").status_code == 200


def test_user_agents_of_every_counted_call_are_recorded(simulator: Simulator, mde: SimClient) -> None:
    mde.get("/api/machines", headers={"User-Agent": "MdePartner-Test-Sim/1.0"})

    assert simulator.state.user_agents["MdePartner-Test-Sim/1.0"] == 1
    calls = sum(value for key, value in simulator.state.counters.items() if key.startswith("calls:"))
    assert sum(simulator.state.user_agents.values()) == calls
