"""Large fleets for sweeps: seeding (Python, control API, fixture), their health mix, and devices going offline
at a chosen simulated time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.simulator.clock import format_datetime
from airflow_provider_liveresponse.simulator.estate import FleetSpec, build_fleet
from airflow_provider_liveresponse.simulator.fleet import device_id
from airflow_provider_liveresponse.simulator.pytest_plugin import FIXTURE_FLEET
from tests.simulator.sim_helpers import TRIAGE_ZIP, SimClient, get_file

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_liveresponse.simulator.server import Simulator

NOW = 1_800_000_000.0
EMPTY = "C:\\Windows\\Temp\\empty.txt"


def test_a_fleet_of_5000_has_its_offline_tenth_half_inactive(fleet_simulator: Simulator) -> None:
    mde = SimClient(fleet_simulator)

    counts = mde.control("GET", "/fleet", params={"tag": "sweep"}).json()

    assert FIXTURE_FLEET == {"devices": 5000, "offline_fraction": 0.1}
    assert counts == {"devices": 5000, "online": 4500, "activeOffline": 250, "inactive": 250}


def test_the_fleet_reads_its_health_mix_through_the_machines_api(still: Simulator, still_mde: SimClient) -> None:
    still.add_fleet(devices=1000, offline_fraction=0.2)
    still.state.set_limits(page_size=10_000)

    def count(health: str) -> int:
        query = f"machineTags/any(tag: tag eq 'sweep') and healthStatus eq '{health}'"
        return len(still_mde.get("/api/machines", params={"$filter": query}).json()["value"])

    assert count("Active") == 900
    assert count("Inactive") == 100


def test_fleet_devices_share_a_tag_and_a_device_group(still: Simulator, still_mde: SimClient) -> None:
    summary = still.add_fleet(devices=20, tag="estate", group="Estate servers")

    machine = still_mde.get(f"/api/machines/{device_id('fleet-00007.contoso.local')}").json()
    by_group = still_mde.get("/api/machines", params={"$filter": f"rbacGroupId eq {summary['rbacGroupId']}"})

    assert machine["machineTags"] == ["estate"]
    assert machine["rbacGroupName"] == "Estate servers"
    assert machine["rbacGroupId"] == summary["rbacGroupId"] >= 1000
    assert len(by_group.json()["value"]) == 20


def test_host_names_sort_in_number_order() -> None:
    spec = FleetSpec(devices=5000)

    assert spec.host_name(1) == "fleet-00001.contoso.local"
    assert spec.host_name(5000) == "fleet-05000.contoso.local"
    assert FleetSpec(devices=250_000).host_name(7) == "fleet-000007.contoso.local"
    hosts = [spec.host_name(n) for n in range(1, 5001)]
    assert hosts == sorted(hosts)


def test_the_same_seed_makes_the_same_fleet() -> None:
    _, first = build_fleet(FleetSpec(devices=500, offline_fraction=0.1, seed=4), NOW)
    _, again = build_fleet(FleetSpec(devices=500, offline_fraction=0.1, seed=4), NOW)
    _, other = build_fleet(FleetSpec(devices=500, offline_fraction=0.1, seed=5), NOW)

    assert first == again
    assert first["inactiveHosts"] != other["inactiveHosts"]
    assert (len(first["inactiveHosts"]), len(first["activeOfflineHosts"])) == (25, 25)


def test_an_odd_offline_count_gives_the_extra_device_to_active_offline() -> None:
    _, summary = build_fleet(FleetSpec(devices=30, offline_fraction=0.1), NOW)

    assert (summary["online"], summary["inactive"], summary["activeOffline"]) == (27, 1, 2)


def test_active_offline_devices_went_silent_an_hour_ago(still: Simulator, still_mde: SimClient) -> None:
    summary = still.add_fleet(devices=100, offline_fraction=0.5)
    host = summary["activeOfflineHosts"][0]

    machine = still_mde.get(f"/api/machines/{device_id(host)}").json()

    assert machine["healthStatus"] == "Active"
    assert machine["lastSeen"] < format_datetime(still.clock.time() - 3600)


def test_a_session_on_an_active_offline_device_stays_pending_then_times_out(
    still: Simulator, still_mde: SimClient
) -> None:
    host = still.add_fleet(devices=10, offline_fraction=0.2)["activeOfflineHosts"][0]
    action_id = still_mde.start(device_id(host), get_file(TRIAGE_ZIP))

    still.state.advance_clock(still.state.limits.queue_seconds - 1)
    pending = still_mde.action(action_id)["status"]
    still.state.advance_clock(2)

    assert pending == "Pending"
    assert still_mde.action(action_id)["status"] == "TimeOut"


def test_a_fleet_can_replace_the_seeded_devices(still: Simulator, still_mde: SimClient) -> None:
    still.add_fleet(devices=30, replace=True)

    assert len(still.state.devices) == 30
    assert still_mde.get("/api/machines/ws-0001.contoso.local").status_code == 404


def test_replacing_refuses_while_seeded_devices_have_actions(still: Simulator, still_mde: SimClient) -> None:
    still_mde.start(device_id("ws-0001.contoso.local"), get_file(TRIAGE_ZIP))

    with pytest.raises(ValueError, match="have actions"):
        still.add_fleet(devices=30, replace=True)


def test_the_control_api_seeds_a_fleet(still: Simulator, still_mde: SimClient) -> None:
    response = still_mde.control(
        "POST", "/fleet", json={"devices": 400, "offlineFraction": 0.05, "tag": "wave", "prefix": "node"}
    )

    body = response.json()
    assert response.status_code == 201
    assert (body["devices"], body["online"], body["activeOffline"], body["inactive"]) == (400, 380, 10, 10)
    assert body["firstHost"] == "node-00001.contoso.local"
    assert len(body["inactiveHosts"]) == 10
    assert still_mde.control("GET", "/fleet", params={"tag": "wave"}).json()["devices"] == 400


@pytest.mark.parametrize(
    "body",
    [{"devices": 0}, {"offlineFraction": 0.1}, {"devices": 10, "offlineFraction": 1.5}, {"devices": 10, "nope": 1}],
    ids=["no-devices", "devices-missing", "fraction-above-1", "unknown-option"],
)
def test_the_control_api_refuses_a_bad_fleet(still_mde: SimClient, body: dict[str, object]) -> None:
    response = still_mde.control("POST", "/fleet", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidInput"


def test_a_simulator_is_made_with_a_fleet(simulator_factory: Callable[..., Simulator]) -> None:
    sim = simulator_factory(fleet={"devices": 50, "offline_fraction": 0.1})

    assert sim.fleets[0]["devices"] == 50
    assert sim.summary()["fleets"][0]["inactive"] == 2
    assert "inactiveHosts" not in sim.summary()["fleets"][0]


# -- a device goes offline during a sweep --------------------------------------------------------------------------
def test_a_device_goes_offline_at_the_scheduled_time(still: Simulator, still_mde: SimClient) -> None:
    machine_id = device_id("ws-0002.contoso.local")
    at = still.clock.time() + 600

    response = still_mde.control("PATCH", f"/devices/{machine_id}", json={"online": False, "at": at})
    looked_up = still_mde.get(f"/api/machines/{machine_id}").json()
    still.state.advance_clock(900)
    later = still_mde.control("GET", "/devices").json()["value"]

    assert response.json()["online"] is True
    assert response.json()["scheduled"] == [{"at": at, "online": False}]
    assert looked_up["healthStatus"] == "Active"
    (device,) = [item for item in later if item["id"] == machine_id]
    assert device["online"] is False
    assert device["healthStatus"] == "Active"
    assert device["lastSeen"] == format_datetime(at - 120)


def test_a_device_that_goes_silent_after_the_lookup_never_picks_up(still: Simulator, still_mde: SimClient) -> None:
    machine_id = device_id("ws-0003.contoso.local")
    still_mde.control("PATCH", f"/devices/{machine_id}", json={"online": False, "afterSeconds": 2})
    action_id = still_mde.start(machine_id, get_file(TRIAGE_ZIP))  # pickup would come 5 s after creation

    still.state.advance_clock(3600)

    assert still_mde.action(action_id)["status"] == "Pending"
    assert still_mde.get(f"/api/machines/{machine_id}").json()["healthStatus"] == "Active"


def test_a_device_scheduled_offline_after_pickup_finishes_its_session(still: Simulator, still_mde: SimClient) -> None:
    machine_id = device_id("ws-0004.contoso.local")
    action_id = still_mde.start(machine_id, get_file(EMPTY))
    still_mde.control("PATCH", f"/devices/{machine_id}", json={"online": False, "afterSeconds": 6})

    still.state.advance_clock(3600)

    assert still_mde.action(action_id)["status"] == "Succeeded"


def test_a_device_can_be_scheduled_back_online(still: Simulator, still_mde: SimClient) -> None:
    machine_id = device_id("laptop-0001.contoso.local")
    action_id = still_mde.start(machine_id, get_file(EMPTY))
    back = format_datetime(still.clock.time() + 7200)
    still_mde.control("PATCH", f"/devices/{machine_id}", json={"online": True, "at": back})

    still.state.advance_clock(7200 - 60)
    waiting = still_mde.action(action_id)["status"]
    still.state.advance_clock(600)

    assert waiting == "Pending"
    assert still_mde.action(action_id)["status"] == "Succeeded"


@pytest.mark.parametrize(
    "body",
    [
        {"online": False, "at": 1.0},
        {"online": False, "at": "yesterday"},
        {"online": False, "afterSeconds": -1},
        {"online": False, "at": 1.0, "afterSeconds": 1},
    ],
    ids=["in-the-past", "not-a-time", "negative-delay", "both"],
)
def test_a_bad_schedule_is_refused(still_mde: SimClient, body: dict[str, object]) -> None:
    response = still_mde.control("PATCH", f"/devices/{device_id('ws-0005.contoso.local')}", json=body)

    assert response.status_code == 400
