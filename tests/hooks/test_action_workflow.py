"""ActionWorkflowMixin against the simulator: submit once or reattach, the blocking session, and wait, with a
handed clock (no test here depends on how fast the machine is)."""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.hooks.action_workflow import PROGRESS_EVERY
from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.simulator.fleet import device_id

if TYPE_CHECKING:
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import MachineAction
    from airflow_provider_liveresponse.simulator import Simulator

WS1 = device_id("ws-0001.contoso.local")
OFFLINE = device_id("laptop-0001.contoso.local")
MARKER = "af-0123456789abcdef0123456789abcdef"


class HandedClock:
    """A clock the test moves: each sleep advances it, and the simulator's clock with it, by the seconds asked."""

    def __init__(self, simulator: Simulator) -> None:
        self.now = 1_000_000.0
        self.simulator = simulator
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.simulator.state.advance_clock(seconds)


@pytest.fixture
def simulator(simulator_factory: Any) -> Simulator:
    """A simulator whose clock moves in real time, so that only the handed clock moves it noticeably."""
    sim: Simulator = simulator_factory(speed=1.0)
    return sim


@pytest.fixture
def clock(simulator: Simulator) -> HandedClock:
    return HandedClock(simulator)


def _calls(simulator: Simulator) -> int:
    return sum(v for k, v in simulator.state.counters.items() if k.startswith("calls:"))


def _submit(hook: LiveResponseHook, try_number: int, script: str = "triage.ps1") -> MachineAction:
    return hook.submit_or_reattach(
        WS1, [RunScript(script)], "workflow test", marker=MARKER, try_number=try_number, lookback=3600
    )


# -- submit or reattach ------------------------------------------------------------------------------------------


def test_the_first_try_submits_marked_with_its_try_number(simulator: Simulator, hook: LiveResponseHook) -> None:
    action = _submit(hook, 1)
    assert simulator.state.counters["actions_created"] == 1
    assert simulator.state.actions[action.id].comment == f"workflow test [airflow:{MARKER}.1]"


def test_a_later_try_reattaches_to_a_running_action(simulator: Simulator, hook: LiveResponseHook) -> None:
    first = _submit(hook, 1, "slow.ps1")
    again = _submit(hook, 2, "slow.ps1")
    assert again.id == first.id
    assert simulator.state.counters["actions_created"] == 1


def test_a_later_try_reattaches_to_a_succeeded_action(simulator: Simulator, hook: LiveResponseHook) -> None:
    first = _submit(hook, 1)
    simulator.state.advance_clock(120)
    again = _submit(hook, 2)
    assert (again.id, str(again.status)) == (first.id, "Succeeded")
    assert simulator.state.counters["actions_created"] == 1


def test_a_later_try_submits_again_when_the_earlier_action_failed(
    simulator: Simulator, hook: LiveResponseHook, caplog: pytest.LogCaptureFixture
) -> None:
    first = _submit(hook, 1, "fail.ps1")
    simulator.state.advance_clock(120)
    again = _submit(hook, 2, "fail.ps1")
    assert again.id != first.id
    assert simulator.state.actions[again.id].comment.endswith(f"[airflow:{MARKER}.2]")
    assert f"The earlier try's action {first.id} on machine {WS1} ended Failed" in caplog.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"machine_id": "not-a-device"}, "machine_id"),
        ({"commands": []}, "commands"),
        ({"commands": [{"type": "GetFile", "params": [{"key": "path", "value": "C:\\x"}]}]}, "Path"),
        ({"comment": "  "}, "comment"),
        ({"comment": 5}, "comment"),
        ({"marker": "short"}, "marker"),
        ({"try_number": 0}, "try_number"),
        ({"try_number": "1"}, "try_number"),
        ({"lookback": math.nan}, "lookback"),
        ({"lookback": -1}, "lookback"),
    ],
)
def test_bad_arguments_fail_naming_the_field_before_any_call(
    simulator: Simulator, hook: LiveResponseHook, change: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {
        "machine_id": WS1,
        "commands": [GetFile("C:\\Windows\\Temp\\triage.zip")],
        "comment": "c",
        "marker": MARKER,
        "try_number": 1,
        "lookback": 60,
        **change,
    }
    before = _calls(simulator)
    with pytest.raises(LiveResponseConfigError, match=field):
        hook.submit_or_reattach(
            arguments.pop("machine_id"), arguments.pop("commands"), arguments.pop("comment"), **arguments
        )
    assert _calls(simulator) == before


def test_reattach_returns_a_running_action_and_refuses_a_failed_one(
    simulator: Simulator, hook: LiveResponseHook
) -> None:
    running = hook.run_live_response(WS1, [RunScript("slow.ps1")], "running")
    assert hook.reattach(running.id) is not None
    failed = hook.run_live_response(device_id("ws-0002.contoso.local"), [RunScript("fail.ps1")], "failed")
    simulator.state.advance_clock(120)
    assert hook.reattach(failed.id) is None


# -- the blocking session ------------------------------------------------------------------------------------------


def test_the_blocking_session_is_the_active_action_on_the_device(simulator: Simulator, hook: LiveResponseHook) -> None:
    assert hook.blocking_session(WS1) is None
    other = hook.run_live_response(WS1, [RunScript("slow.ps1")], "analyst session")
    blocking = hook.blocking_session(WS1)
    assert blocking is not None
    assert blocking.id == other.id


# -- wait ------------------------------------------------------------------------------------------------------------


def test_wait_polls_every_interval_until_the_action_ends(
    simulator: Simulator, hook: LiveResponseHook, clock: HandedClock
) -> None:
    action = hook.run_live_response(WS1, [RunScript("triage.ps1")], "wait")
    ended = hook.wait_for_action(action.id, poll_interval=10, deadline=clock() + 3600, clock=clock, sleep=clock.sleep)
    assert str(ended.status) == "Succeeded"
    assert clock.sleeps
    assert set(clock.sleeps) == {10}
    assert len(clock.sleeps) <= 4  # 5 s pickup and 20 s of script, read every 10 simulated seconds


def test_wait_returns_an_action_that_already_ended_without_sleeping(
    simulator: Simulator, hook: LiveResponseHook, clock: HandedClock
) -> None:
    action = hook.run_live_response(WS1, [RunScript("triage.ps1")], "wait")
    simulator.state.advance_clock(120)
    ended = hook.wait_for_action(action.id, poll_interval=10, deadline=clock() + 60, clock=clock, sleep=clock.sleep)
    assert str(ended.status) == "Succeeded"
    assert clock.sleeps == []


def test_wait_past_the_deadline_says_which_action_is_still_running_and_what_to_do(
    simulator: Simulator, hook: LiveResponseHook, clock: HandedClock
) -> None:
    action = hook.run_live_response(OFFLINE, [RunScript("triage.ps1")], "offline")
    with pytest.raises(TimeoutError) as caught:
        hook.wait_for_action(action.id, poll_interval=30, deadline=clock() + 100, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [30, 30, 30, 10]  # the last sleep ends at the deadline, not past it
    message = str(caught.value)
    assert f"Action {action.id} on machine {OFFLINE} was still Pending" in message
    assert "cancel it in the Defender portal, or rerun the task" in message


def _wait_reporting(hook: LiveResponseHook, clock: HandedClock, action_id: str, poll: float) -> list[tuple[str, float]]:
    """The progress reports of a wait of up to 1000 s, polling every ``poll`` seconds."""
    reports: list[tuple[str, float]] = []
    with contextlib.suppress(TimeoutError):
        hook.wait_for_action(
            action_id,
            poll_interval=poll,
            deadline=clock() + 1000,
            clock=clock,
            sleep=clock.sleep,
            progress=lambda a, elapsed: reports.append((str(a.status), elapsed)),
        )
    return reports


def test_wait_reports_a_long_unchanged_wait_every_five_minutes(hook: LiveResponseHook, clock: HandedClock) -> None:
    action = hook.run_live_response(OFFLINE, [RunScript("triage.ps1")], "offline")
    reports = _wait_reporting(hook, clock, action.id, poll=60)
    assert reports == [("Pending", PROGRESS_EVERY), ("Pending", 2 * PROGRESS_EVERY), ("Pending", 3 * PROGRESS_EVERY)]


def test_wait_reports_every_change_of_state(simulator: Simulator, hook: LiveResponseHook, clock: HandedClock) -> None:
    action = hook.run_live_response(WS1, [RunScript("triage.ps1")], "online")  # picked up after 5 s, then 20 s
    reports = _wait_reporting(hook, clock, action.id, poll=10)
    assert [status for status, _ in reports] == ["InProgress", "Succeeded"]


def test_wait_uses_the_action_just_read_instead_of_reading_it_again(
    simulator: Simulator, hook: LiveResponseHook, clock: HandedClock
) -> None:
    action = hook.run_live_response(OFFLINE, [RunScript("triage.ps1")], "offline")
    before = simulator.state.counters["calls:get_action"]
    with pytest.raises(TimeoutError):
        hook.wait_for_action(
            action.id, poll_interval=30, deadline=clock() + 60, clock=clock, sleep=clock.sleep, last_seen=action
        )
    assert simulator.state.counters["calls:get_action"] - before == 2  # one read after each sleep


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"action_id": "x"}, "action_id"),
        ({"poll_interval": math.nan}, "poll_interval"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": "30"}, "poll_interval"),
        ({"deadline": math.inf}, "deadline"),
        ({"deadline": None}, "deadline"),
    ],
)
def test_wait_refuses_bad_arguments_before_any_call(
    simulator: Simulator, hook: LiveResponseHook, change: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {
        "action_id": "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10",
        "poll_interval": 30,
        "deadline": 2_000_000_000.0,
        **change,
    }
    before = _calls(simulator)
    with pytest.raises(LiveResponseConfigError, match=field):
        hook.wait_for_action(arguments.pop("action_id"), **arguments)
    assert _calls(simulator) == before
