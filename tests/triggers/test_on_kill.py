"""MachineActionTrigger.on_kill cancels only what a user killed (apache/airflow#73454).

The trigger asks the triggerer's supervisor (Task SDK ``GetTaskStates``) for its task instance's state. Here the
supervisor channel is a stand-in that answers with the Task SDK's own message types (a triggerer's supervisor
and the Execution API behind it cannot run inside a unit test); the MDE side is the real simulator. The real
triggerer path, with a real reassignment between two triggerers, is in tests/system/test_trigger_reassignment.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.models import RunScript
from airflow_provider_liveresponse.simulator.fleet import device_id
from airflow_provider_liveresponse.triggers import kill_check
from airflow_provider_liveresponse.triggers.machine_action import MachineActionTrigger
from tests.triggers.supervisor_channel import RUN_ID, Supervisor, TaskInstance

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator import Simulator

HOST = "ws-0001.contoso.local"
WS1 = device_id(HOST)


def _submit(sim_conn: str) -> str:
    return LiveResponseHook(sim_conn).run_live_response(WS1, [RunScript("sleep.ps1", args="600")], "deferred").id


def _trigger(action_id: str, conn: str, ti: TaskInstance | None = None) -> MachineActionTrigger:
    trigger = MachineActionTrigger(action_id, conn, poll_interval=0.2, cancel_on_kill=True)
    trigger.task_instance = ti if ti is not None else TaskInstance()  # type: ignore[assignment]
    return trigger


def _status(simulator: Simulator, action_id: str) -> str:
    return str(simulator.state.actions[action_id].status)


def _log(capsys: pytest.CaptureFixture[str]) -> str:
    """What the trigger logged (Airflow's structlog writes to the captured output)."""
    return "".join(capsys.readouterr())


def _cancels(simulator: Simulator) -> int:
    return int(simulator.state.counters.get("calls:cancel", 0))


@pytest.mark.parametrize("state", ["failed", "success", None, "up_for_retry", "restarting"])
async def test_a_users_kill_cancels_the_action(
    simulator: Simulator, sim_conn: str, supervisor: Any, capsys: pytest.CaptureFixture[str], state: str | None
) -> None:
    """Mark failed / success, clear: the task instance left ``deferred``, so the action is cancelled."""
    channel = supervisor(Supervisor({"collect": state}))
    action_id = _submit(sim_conn)
    await _trigger(action_id, sim_conn).on_kill()
    assert _status(simulator, action_id) == "Cancelled"
    assert _cancels(simulator) == 1
    (asked,) = channel.asked
    assert (asked.dag_id, asked.task_ids, asked.run_ids, asked.map_index) == (
        "collect_evidence",
        ["collect"],
        [RUN_ID],
        -1,
    )
    text = _log(capsys)
    assert f"it is now {state or 'none'}" in text
    assert f"cancelling MDE action {action_id} on device {HOST} ({WS1})" in text


async def test_a_reassigned_trigger_leaves_the_action_running(
    simulator: Simulator, sim_conn: str, supervisor: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The task instance is still deferred: another triggerer watches the action, so it is not cancelled."""
    supervisor(Supervisor({"collect": "deferred"}))
    action_id = _submit(sim_conn)
    await _trigger(action_id, sim_conn).on_kill()
    assert _status(simulator, action_id) in ("Pending", "InProgress")
    assert _cancels(simulator) == 0
    message = _log(capsys)
    assert f"Not cancelling MDE action {action_id} on device {HOST} ({WS1})" in message
    assert "still deferred" in message
    assert "reassigned to another triggerer" in message
    assert "cancel it in the Defender portal if the kill was yours" in message


async def test_a_mapped_task_instance_is_looked_up_by_its_map_index(
    simulator: Simulator, sim_conn: str, supervisor: Any
) -> None:
    """Airflow keys a mapped task instance's state ``<task_id>_<map_index>``; the other indexes do not count."""
    channel = supervisor(Supervisor({"collect_2": "failed", "collect_3": "deferred"}))
    action_id = _submit(sim_conn)
    await _trigger(action_id, sim_conn, TaskInstance(map_index=3)).on_kill()
    assert _cancels(simulator) == 0
    assert channel.asked[0].map_index == 3
    channel.states["collect_3"] = "failed"
    await _trigger(action_id, sim_conn, TaskInstance(map_index=3)).on_kill()
    assert _status(simulator, action_id) == "Cancelled"


def _error_response() -> Any:
    from airflow.sdk.execution_time.comms import ErrorResponse

    return ErrorResponse(detail={"message": "API server unavailable"})


@pytest.mark.parametrize(
    ("channel", "reason"),
    [
        (None, "no Task SDK supervisor channel"),
        (Supervisor(answer=ConnectionResetError("supervisor went away")), "ConnectionResetError"),
        (Supervisor(answer="error"), "ErrorResponse, not task states"),
        (Supervisor({"other_task": "failed"}), "not in Airflow's answer"),
    ],
    ids=["no-channel", "channel-raises", "error-answer", "task-instance-missing"],
)
async def test_when_the_kill_cannot_be_confirmed_the_action_keeps_running(
    simulator: Simulator,
    sim_conn: str,
    supervisor: Any,
    capsys: pytest.CaptureFixture[str],
    channel: Supervisor | None,
    reason: str,
) -> None:
    if channel is not None and channel.answer == "error":
        channel = Supervisor(answer=_error_response())
    supervisor(channel)
    action_id = _submit(sim_conn)
    await _trigger(action_id, sim_conn).on_kill()
    assert _status(simulator, action_id) in ("Pending", "InProgress")
    assert _cancels(simulator) == 0
    text = _log(capsys)
    assert "could not be read" in text
    assert reason in text
    assert f"Not cancelling MDE action {action_id} on device {HOST} ({WS1})" in text


async def test_a_lookup_that_hangs_is_given_up_and_leaves_the_action(simulator: Simulator, sim_conn: str) -> None:
    """A supervisor that does not answer: the check gives up after its bound (here 0.2 s) and does not cancel."""
    verdict = await kill_check.judge_kill(TaskInstance(), Supervisor(hang=True), lookup_seconds=0.2)
    assert not verdict.confirmed
    assert verdict.state is None
    assert "TimeoutError" in verdict.reason


async def test_a_trigger_without_its_task_instance_does_not_cancel(
    simulator: Simulator, sim_conn: str, supervisor: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    supervisor(Supervisor({"collect": "failed"}))
    action_id = _submit(sim_conn)
    trigger = MachineActionTrigger(action_id, sim_conn, poll_interval=0.2, cancel_on_kill=True)
    await trigger.on_kill()
    assert _cancels(simulator) == 0
    assert "not given its task instance" in _log(capsys)


async def test_an_action_that_already_ended_is_not_cancelled(
    simulator: Simulator, sim_conn: str, supervisor: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a reassignment the new triggerer may have resumed the task (the action ended): nothing to cancel."""
    supervisor(Supervisor({"collect": "running"}))
    action = LiveResponseHook(sim_conn).run_live_response(WS1, [RunScript("triage.ps1")], "done")
    LiveResponseHook(sim_conn).wait_for_action(action.id, poll_interval=0.2, deadline=time.time() + 60)
    await _trigger(action.id, sim_conn).on_kill()
    assert _cancels(simulator) == 0
    assert "already ended Succeeded, nothing to cancel" in _log(capsys)


async def test_without_cancel_on_kill_nothing_is_asked_or_cancelled(
    simulator: Simulator, sim_conn: str, supervisor: Any
) -> None:
    channel = supervisor(Supervisor({"collect": "failed"}))
    action_id = _submit(sim_conn)
    trigger = MachineActionTrigger(action_id, sim_conn, poll_interval=0.2)
    trigger.task_instance = TaskInstance()  # type: ignore[assignment]
    await trigger.on_kill()
    assert channel.asked == []
    assert _cancels(simulator) == 0


async def test_no_token_or_link_in_the_kill_log(
    simulator: Simulator, sim_conn: str, supervisor: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    supervisor(Supervisor({"collect": "deferred"}))
    action_id = _submit(sim_conn)
    await _trigger(action_id, sim_conn).on_kill()
    supervisor(Supervisor({"collect": "failed"}))
    await _trigger(action_id, sim_conn).on_kill()
    assert _cancels(simulator) == 1
    text = _log(capsys)
    assert action_id in text
    assert "Bearer" not in text
    assert "eyJ" not in text  # a JWT's header
    assert "sig=" not in text


async def test_the_first_trigger_of_a_process_warms_the_state_lookup(
    simulator: Simulator, sim_conn: str, supervisor: Any, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """On Airflow 3.3 one background lookup per process, when a trigger first runs; on 3.1 (no on_kill) none."""
    from airflow.triggers.base import BaseTrigger

    monkeypatch.setattr(kill_check, "_warm_up", None)
    channel = supervisor(Supervisor({"collect": "deferred"}))
    action_id = _submit(sim_conn)
    for _ in range(2):  # two triggers start in the same process
        trigger = _trigger(action_id, sim_conn)
        trigger.poll_interval = 0.1
        events = trigger.run()
        with pytest.raises(TimeoutError):  # the action is still running: no event yet
            await asyncio.wait_for(anext(events), timeout=1.0)
        await events.aclose()
    if hasattr(BaseTrigger, "on_kill"):
        assert kill_check._warm_up is not None
        await kill_check._warm_up
        assert len(channel.asked) == 1
        assert "Task instance states are readable here (collect_evidence.collect in run" in _log(capsys)
    else:
        assert kill_check._warm_up is None
        assert channel.asked == []
    assert _cancels(simulator) == 0


async def test_a_warm_up_that_fails_says_so(
    supervisor: Any, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    import logging

    from airflow.triggers.base import BaseTrigger

    if not hasattr(BaseTrigger, "on_kill"):
        pytest.skip("Airflow 3.1 triggers have no on_kill, so there is nothing to warm up")
    monkeypatch.setattr(kill_check, "_warm_up", None)
    supervisor(Supervisor(answer=ConnectionResetError("supervisor went away")))
    kill_check.warm_up(TaskInstance(), logging.getLogger("kill-check-test"))
    assert kill_check._warm_up is not None
    await kill_check._warm_up
    assert "cannot read task instance states (ConnectionResetError" in caplog.text


async def test_a_trigger_without_cancel_on_kill_does_not_warm_up(
    simulator: Simulator, sim_conn: str, supervisor: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(kill_check, "_warm_up", None)
    channel = supervisor(Supervisor({"collect": "deferred"}))
    trigger = MachineActionTrigger(_submit(sim_conn), sim_conn, poll_interval=0.1)
    trigger.task_instance = TaskInstance()  # type: ignore[assignment]
    events = trigger.run()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(events), timeout=0.5)
    await events.aclose()
    assert kill_check._warm_up is None
    assert channel.asked == []
