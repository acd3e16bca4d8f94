"""Rate limits, the concurrency limit and Retry-After, on the simulated clock."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.simulator import Simulator
from airflow_provider_liveresponse.simulator.fleet import OFFLINE_HOSTS, device_id
from airflow_provider_liveresponse.simulator.limits import retry_after_header
from tests.simulator.sim_helpers import TRIAGE_ZIP, SimClient, get_file, run_script

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def _host(n: int) -> str:
    return device_id(f"ws-{n:04d}.contoso.local")


def test_the_eleventh_run_in_a_minute_gets_429_with_retry_after(tmp_path: Path) -> None:
    with Simulator(speed=1, state_dir=tmp_path) as sim:
        mde = SimClient(sim)
        for n in range(1, 11):
            assert mde.run(_host(n), get_file(TRIAGE_ZIP)).status_code == 201

        throttled = mde.run(_host(11), get_file(TRIAGE_ZIP))

        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "TooManyRequests"
        assert 55 <= int(throttled.headers["Retry-After"]) <= 60  # whole seconds at speed 1
        assert sim.state.counters["throttled:runliveresponse"] == 1
        sim.state.advance_clock(int(throttled.headers["Retry-After"]))
        assert mde.run(_host(11), get_file(TRIAGE_ZIP)).status_code == 201


def test_retry_after_is_in_real_seconds_at_high_speed(simulator: Simulator, mde: SimClient) -> None:
    for n in range(1, 11):
        mde.run(_host(n), get_file(TRIAGE_ZIP))

    throttled = mde.run(_host(11), get_file(TRIAGE_ZIP))

    assert throttled.status_code == 429
    assert 0 < float(throttled.headers["Retry-After"]) <= 1.0


def test_the_26th_concurrent_session_gets_429(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.set_limits(run_calls_per_minute=1000)
    for n in range(1, 26):
        assert mde.run(_host(n), run_script("slow.ps1")).status_code == 201

    throttled = mde.run(_host(26), run_script("slow.ps1"))

    assert throttled.status_code == 429
    assert "Retry-After" in throttled.headers
    assert simulator.state.counters["throttled:runliveresponse"] == 1
    assert simulator.state.counters["actions_created"] == 25


def test_the_peak_of_concurrent_sessions_is_counted(simulator: Simulator, mde: SimClient) -> None:
    for n in (1, 2, 3):
        mde.start(_host(n), run_script("triage.ps1"))
    simulator.state.advance_clock(600)  # all three end
    mde.start(_host(4), run_script("triage.ps1"))

    assert len(simulator.state.active_actions()) == 1
    assert simulator.state.counters["max_concurrent_sessions"] == 3
    assert mde.control("GET", "/counters").json()["max_concurrent_sessions"] == 3


def test_pending_sessions_of_offline_devices_count_as_concurrent(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.set_limits(concurrent_sessions=2)
    for host in OFFLINE_HOSTS[:2]:
        assert mde.run(device_id(host), get_file(TRIAGE_ZIP)).status_code == 201

    assert mde.run(_host(1), get_file(TRIAGE_ZIP)).status_code == 429


def test_the_current_profile_allows_fifty_sessions(simulator_factory: Callable[..., Simulator]) -> None:
    sim = simulator_factory(profile="current", limits={"run_calls_per_minute": 1000})
    mde = SimClient(sim)
    statuses = [mde.run(_host(n), run_script("slow.ps1")).status_code for n in range(1, 52)]

    assert statuses == [201] * 50 + [429]


def test_the_101st_read_in_a_minute_gets_429(simulator: Simulator, mde: SimClient) -> None:
    simulator.clock.set_speed(1.0)  # keep the minute from passing while we call
    statuses = [mde.get("/api/machineactions").status_code for _ in range(101)]

    assert statuses == [200] * 100 + [429]
    assert simulator.state.counters["throttled:list_actions"] == 1
    # Each API has its own budget.
    assert mde.get("/api/libraryfiles").status_code == 200


def test_reads_are_limited_per_hour_too(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.set_limits(read_calls_per_hour=5)
    statuses = []
    for _ in range(6):
        statuses.append(mde.get("/api/libraryfiles").status_code)
        simulator.state.advance_clock(61)

    assert statuses == [200] * 5 + [429]


def test_limits_can_be_changed_through_the_control_api(mde: SimClient) -> None:
    response = mde.control("POST", "/limits", json={"run_calls_per_minute": 1})

    assert response.json()["run_calls_per_minute"] == 1
    assert mde.run(_host(1), get_file(TRIAGE_ZIP)).status_code == 201
    assert mde.run(_host(2), get_file(TRIAGE_ZIP)).status_code == 429


@pytest.mark.parametrize(
    ("wait", "speed", "header"),
    [(59.2, 1, "60"), (0.1, 1, "1"), (30, 60, "0.5"), (60, 60, "1"), (1, 60, "0.017"), (3600, 1000, "3.6")],
)
def test_retry_after_header_format(wait: float, speed: float, header: str) -> None:
    assert retry_after_header(wait, speed) == header
