"""The sweep's pickup deadline, on a handed clock against the simulator: an action still Pending is cancelled at the
last poll before ``pickup_timeout`` ends, never after it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.simulator.fleet import device_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_liveresponse.fleet.sweep import Sweep
    from airflow_provider_liveresponse.simulator import Simulator

PICKUP_TIMEOUT = 900.0
POLL_INTERVAL = 30.0


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sweep(simulator_factory: Callable[..., Simulator], monkeypatch: pytest.MonkeyPatch) -> tuple[Sweep, Clock, str]:
    """A sweep on a handed clock, with one action in flight on a device that is Active but offline."""
    from airflow_provider_liveresponse.auth import reset_token_providers
    from airflow_provider_liveresponse.fleet.limiter import ReadBudget, SubmissionLimiter
    from airflow_provider_liveresponse.fleet.outcome import OutcomeTable
    from airflow_provider_liveresponse.fleet.sweep import Sweep, SweepSettings
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import RunScript

    sim = simulator_factory(fleet={"devices": 10, "offline_fraction": 0.2})
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", sim.connection_json())
    reset_token_providers()
    hook = LiveResponseHook()
    silent = next(iter(sim.fleets[0]["activeOfflineHosts"]))
    (machine,) = [m for m in hook.machines_by_tag(sim.fleets[0]["tag"]) if m.id == device_id(silent)]
    clock = Clock()
    settings = SweepSettings(
        commands=[RunScript("triage.ps1")],
        comment="IR-1",
        sweep_marker="airflow-test-sweep",
        pickup_timeout=PICKUP_TIMEOUT,
        offline_retries=0,
        max_sessions=25,
        poll_interval=POLL_INTERVAL,
    )
    limiter = SubmissionLimiter(10.0, clock)
    polls = ReadBudget("machineactions", 100, 1_000_000, clock)
    run = Sweep(hook, settings, limiter, polls, OutcomeTable(), clock, lambda seconds: None)
    assert run.submit(machine, 1)
    (action_id,) = run.flights
    return run, clock, action_id


def test_a_pending_action_waits_while_the_next_poll_is_still_inside_pickup_timeout(
    sweep: tuple[Sweep, Clock, str],
) -> None:
    run, clock, action_id = sweep
    clock.now += PICKUP_TIMEOUT - POLL_INTERVAL - 1
    run.poll()
    assert action_id in run.flights
    assert run.hook.get_machine_action(action_id).status == "Pending"


def test_a_pending_action_is_cancelled_at_the_last_poll_before_pickup_timeout(
    sweep: tuple[Sweep, Clock, str],
) -> None:
    run, clock, action_id = sweep
    clock.now += PICKUP_TIMEOUT - POLL_INTERVAL + 1  # the next poll would come after the deadline
    run.poll()
    assert action_id not in run.flights
    action = run.hook.get_machine_action(action_id)
    assert action.status == "Cancelled"
    assert "no pickup within" in (action.cancellation_comment or "")
    assert [row["outcome"] for row in run.table.summary()["devices"]] == ["offline"]
