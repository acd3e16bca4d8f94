"""healthStatus and lastSeen as MDE reports them: Active until 7 days of silence, lastSeen a report old."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.simulator.clock import format_datetime, parse_datetime
from airflow_provider_liveresponse.simulator.fleet import make_device
from tests.simulator.sim_helpers import TRIAGE_ZIP, SimClient, get_file

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator

NOW = 1_800_000_000.0
DAY = 86400.0
WEEK = 7 * DAY


def _machine(online: bool, silent_for: float = 0.0, **options: float) -> dict[str, object]:
    device = make_device("pc-0001.contoso.local", NOW - silent_for, online=True)
    if not online:
        device.set_online(False, NOW - silent_for)
    return device.to_machine(NOW, format_datetime, **options)


def test_an_online_device_is_active_and_was_seen_two_minutes_ago() -> None:
    machine = _machine(online=True)

    assert machine["healthStatus"] == "Active"
    assert parse_datetime(str(machine["lastSeen"])) == pytest.approx(NOW - 120)


def test_a_device_offline_for_an_hour_still_reads_active_with_an_older_last_seen() -> None:
    machine = _machine(online=False, silent_for=3600)

    assert machine["healthStatus"] == "Active"
    assert parse_datetime(str(machine["lastSeen"])) == pytest.approx(NOW - 3600 - 120)


@pytest.mark.parametrize(
    ("silent_for", "health"),
    [(WEEK - 1, "Active"), (WEEK, "Inactive"), (30 * DAY, "Inactive")],
    ids=["a-second-short-of-7-days", "7-days", "30-days"],
)
def test_a_device_turns_inactive_after_seven_days_of_silence(silent_for: float, health: str) -> None:
    assert _machine(online=False, silent_for=silent_for)["healthStatus"] == health


def test_the_report_lag_and_the_inactive_threshold_are_settings() -> None:
    daily = _machine(online=True, last_seen_lag=DAY)
    quick = _machine(online=False, silent_for=2 * DAY, inactive_after=DAY)

    assert parse_datetime(str(daily["lastSeen"])) == pytest.approx(NOW - DAY)
    assert quick["healthStatus"] == "Inactive"


def test_a_device_that_is_not_onboarded_is_inactive() -> None:
    device = make_device("unmanaged-9.contoso.local", NOW, onboarded=False)

    assert device.to_machine(NOW, format_datetime)["healthStatus"] == "Inactive"


def test_a_device_made_offline_has_been_silent_ten_days_unless_told() -> None:
    assert make_device("a.contoso.local", NOW, online=False).to_machine(NOW, format_datetime)["healthStatus"] == (
        "Inactive"
    )
    recent = make_device("b.contoso.local", NOW, online=False, offline_for=3600)
    assert recent.to_machine(NOW, format_datetime)["healthStatus"] == "Active"


def test_on_the_simulated_clock_a_silent_device_reads_active_for_seven_days(
    still: Simulator, still_mde: SimClient
) -> None:
    machine_id = still.state.add_device("away-0001.contoso.local").id
    still.state.set_device_online(machine_id, False)
    silent_at = still.clock.time()

    still.state.advance_clock(WEEK - 60)
    before = still_mde.get(f"/api/machines/{machine_id}").json()
    still.state.advance_clock(120)
    after = still_mde.get(f"/api/machines/{machine_id}").json()

    assert before["healthStatus"] == "Active"
    assert after["healthStatus"] == "Inactive"
    assert parse_datetime(before["lastSeen"]) == pytest.approx(silent_at - 120, abs=0.01)
    assert after["lastSeen"] == before["lastSeen"]


def test_an_active_but_offline_device_keeps_its_session_pending(still: Simulator, still_mde: SimClient) -> None:
    machine_id = still.state.add_device("away-0002.contoso.local", online=False, offline_for=3600).id

    action_id = still_mde.start(machine_id, get_file(TRIAGE_ZIP))
    still.state.advance_clock(DAY)

    assert still_mde.get(f"/api/machines/{machine_id}").json()["healthStatus"] == "Active"
    assert still_mde.action(action_id)["status"] == "Pending"


def test_the_report_lag_is_set_through_the_control_api(still: Simulator, still_mde: SimClient) -> None:
    response = still_mde.control("POST", "/limits", json={"last_seen_lag_seconds": DAY})
    machine = still_mde.get("/api/machines/ws-0001.contoso.local").json()

    assert response.json()["last_seen_lag_seconds"] == DAY
    assert parse_datetime(machine["lastSeen"]) == pytest.approx(still.clock.time() - DAY, abs=0.01)


def test_last_seen_filters_see_the_lag(still: Simulator, still_mde: SimClient) -> None:
    still.state.set_limits(last_seen_lag_seconds=DAY, page_size=10_000)
    recent = format_datetime(still.clock.time() - 3600)

    found = still_mde.get("/api/machines", params={"$filter": f"lastSeen gt {recent}"}).json()["value"]

    assert found == []
