"""The control API under /_sim/ and the Simulator's connection helpers."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

import pytest
import requests

from airflow_provider_liveresponse.simulator import Simulator
from airflow_provider_liveresponse.simulator.clock import parse_datetime
from airflow_provider_liveresponse.simulator.fleet import device_id
from tests.simulator.sim_helpers import TRIAGE_ZIP, SimClient, get_file

if TYPE_CHECKING:
    from pathlib import Path

WS1 = device_id("ws-0001.contoso.local")


def test_counters_count_calls_per_endpoint(mde: SimClient) -> None:
    action_id = mde.start(WS1, get_file(TRIAGE_ZIP))
    mde.action(action_id)
    mde.get("/api/machines")

    counters = mde.control("GET", "/counters").json()

    assert counters["token_requests"] == 1
    assert counters["calls:runliveresponse"] == 1
    assert counters["calls:get_action"] == 1
    assert counters["calls:machines"] == 1
    assert counters["actions_created"] == 1


def test_the_clock_is_advanced_through_the_control_api(simulator: Simulator, mde: SimClient) -> None:
    before = mde.control("GET", "/clock").json()

    after = mde.control("POST", "/clock/advance", json={"seconds": 3600}).json()

    assert after["speed"] == 60
    assert 3600 <= parse_datetime(after["now"]) - parse_datetime(before["now"]) < 3660
    assert mde.control("POST", "/clock/advance", json={"seconds": -1}).status_code == 400


def test_a_device_is_added_and_can_run_live_response(simulator: Simulator, mde: SimClient) -> None:
    response = mde.control(
        "POST",
        "/devices",
        json={"computerDnsName": "new-0001.fabrikam.local", "machineTags": ["new"], "online": True},
    )

    assert response.status_code == 201
    machine = response.json()
    assert machine["id"] == device_id("new-0001.fabrikam.local")
    found = mde.get("/api/machines", params={"$filter": "computerDnsName eq 'new-0001.fabrikam.local'"}).json()
    assert [item["machineTags"] for item in found["value"]] == [["new"]]
    assert mde.run(machine["id"], get_file(TRIAGE_ZIP)).status_code == 201


def test_a_device_added_offline_can_be_brought_online(simulator: Simulator, mde: SimClient) -> None:
    machine = mde.control("POST", "/devices", json={"computerDnsName": "away.contoso.local", "online": False}).json()
    assert machine["healthStatus"] == "Inactive"

    patched = mde.control("PATCH", f"/devices/{machine['id']}", json={"online": True})

    assert patched.json()["online"] is True
    assert patched.json()["healthStatus"] == "Active"
    assert mde.control("PATCH", f"/devices/{'0' * 40}", json={"online": True}).status_code == 404


def test_devices_and_actions_are_listed(mde: SimClient) -> None:
    mde.start(WS1, get_file(TRIAGE_ZIP))

    devices = mde.control("GET", "/devices").json()["value"]
    actions = mde.control("GET", "/actions").json()

    assert len(devices) >= 250
    assert sum(device["online"] for device in devices) > 250
    assert actions["actions_created"] == 1
    assert actions["value"][0]["machineId"] == WS1


def test_limits_switch_profile(mde: SimClient) -> None:
    current = mde.control("POST", "/limits", json={"profile": "current"}).json()
    custom = mde.control("POST", "/limits", json={"queue_seconds": 60}).json()

    assert current["profile"] == "current"
    assert current["concurrent_sessions"] == 50
    assert current["queue_seconds"] == 7200
    assert custom["concurrent_sessions"] == 50
    assert custom["queue_seconds"] == 60
    assert mde.control("POST", "/limits", json={"nope": 1}).status_code == 400


def test_unknown_paths_get_mdes_404_shape(mde: SimClient) -> None:
    response = mde.get("/api/nothing")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


def test_connection_helpers_describe_the_simulator(simulator: Simulator) -> None:
    extra = simulator.connection_extra()
    form = json.loads(simulator.connection_json())

    assert extra == {
        "tenant_id": simulator.tenant_id,
        "api_url": simulator.api_url,
        "authority_url": simulator.authority_url,
        "ca_bundle": str(simulator.ca_file),
        "cloud": "commercial",
        "simulator_speed": simulator.clock.speed,
    }
    assert form == {
        "conn_type": "mde_live_response",
        "login": simulator.client_id,
        "password": simulator.client_secret,
        "extra": extra,
    }
    assert simulator.ca_file.is_file()


def test_the_connection_uri_round_trips_through_airflow(simulator: Simulator) -> None:
    from airflow.models.connection import Connection

    connection = Connection(conn_id="mde", uri=simulator.connection_uri())

    assert connection.conn_type == "mde_live_response"
    assert connection.login == simulator.client_id
    assert connection.password == simulator.client_secret
    assert connection.extra_dejson == simulator.connection_extra()


def test_stop_really_stops_the_servers_and_their_thread(tmp_path: Path) -> None:
    threads_before = threading.active_count()
    sim = Simulator(speed=60, state_dir=tmp_path).start()
    client = SimClient(sim)
    assert client.get("/api/libraryfiles").status_code == 200  # leaves a keep-alive connection open

    sim.stop()

    assert not sim.running
    assert threading.active_count() == threads_before
    for url in (sim.api_url, sim.blob_url):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, verify=str(sim.ca_file), timeout=5)


def test_a_temporary_state_folder_is_removed_on_stop() -> None:
    with Simulator() as sim:
        folder = sim.state_dir
        assert sim.ca_file.is_file()

    assert not folder.exists()
