"""Cancelled actions fail clearly; killed tasks cancel their action (worker and triggerer side)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.models import RunScript
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator
from airflow_provider_liveresponse.simulator.fleet import device_id
from airflow_provider_liveresponse.triggers.machine_action import MachineActionTrigger

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator import Simulator

WS1 = device_id("ws-0001.contoso.local")


def _cancel_when_submitted(simulator: Simulator, conn_id: str) -> threading.Thread:
    """An analyst cancels the task's action in the portal shortly after it was submitted."""

    def cancel() -> None:
        deadline = time.monotonic() + 60
        while not simulator.state.actions and time.monotonic() < deadline:
            time.sleep(0.05)
        (action_id,) = list(simulator.state.actions)
        LiveResponseHook(conn_id).cancel_machine_action(action_id, "analyst: wrong device")

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("deferrable", [True, False])
def test_a_cancelled_action_fails_the_task_clearly(
    simulator: Simulator, sim_conn: str, dags: Any, capsys: pytest.CaptureFixture[str], deferrable: bool
) -> None:
    canceller = _cancel_when_submitted(simulator, sim_conn)
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{WS1}",
            commands=[RunScript("sleep.ps1", args="300")],
            poll_interval=0.2,
            deferrable={deferrable},
        )
        """
    )
    canceller.join(timeout=60)
    assert dags.states(run) == {("collect", -1): "failed"}
    (action_id,) = list(simulator.state.actions)
    text = "".join(capsys.readouterr())
    assert f"action {action_id}" in text
    assert "ended Cancelled" in text


def _operator(**kwargs: Any) -> LiveResponseOperator:
    return LiveResponseOperator(task_id="collect", machine_id=WS1, commands=[RunScript("triage.ps1")], **kwargs)


def test_on_kill_cancels_the_action(simulator: Simulator, sim_conn: str) -> None:
    action = LiveResponseHook(sim_conn).run_live_response(WS1, [RunScript("sleep.ps1", args="300")], "killed")
    operator = _operator()
    operator.action_id = action.id
    operator.on_kill()
    assert str(simulator.state.actions[action.id].status) == "Cancelled"


def test_on_kill_leaves_the_action_alone_without_cancel_on_kill(simulator: Simulator, sim_conn: str) -> None:
    action = LiveResponseHook(sim_conn).run_live_response(WS1, [RunScript("sleep.ps1", args="300")], "killed")
    operator = _operator(cancel_on_kill=False)
    operator.action_id = action.id
    operator.on_kill()
    assert str(simulator.state.actions[action.id].status) in ("Pending", "InProgress")


async def test_the_triggers_on_kill_cancels_the_action(
    simulator: Simulator, sim_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's kill (the task instance left ``deferred``; tests/triggers/test_on_kill.py has the other cases)."""
    from tests.triggers.supervisor_channel import Supervisor, TaskInstance, install

    install(monkeypatch, Supervisor({"collect": "failed"}))
    action = LiveResponseHook(sim_conn).run_live_response(WS1, [RunScript("sleep.ps1", args="300")], "deferred")
    trigger = MachineActionTrigger(action.id, sim_conn, poll_interval=0.2, cancel_on_kill=True)
    trigger.task_instance = TaskInstance()  # type: ignore[assignment]
    assert trigger.serialize()[1]["cancel_on_kill"] is True
    await trigger.on_kill()
    assert str(simulator.state.actions[action.id].status) == "Cancelled"
    # An action that already ended is not an error: the kill still completes.
    await trigger.on_kill()


async def test_the_triggers_on_kill_does_nothing_by_default(simulator: Simulator, sim_conn: str) -> None:
    action = LiveResponseHook(sim_conn).run_live_response(WS1, [RunScript("sleep.ps1", args="300")], "deferred")
    await MachineActionTrigger(action.id, sim_conn, poll_interval=0.2).on_kill()
    assert str(simulator.state.actions[action.id].status) in ("Pending", "InProgress")


def test_the_operator_defers_with_cancel_on_kill(simulator: Simulator, sim_conn: str) -> None:
    from airflow.exceptions import TaskDeferred

    action = LiveResponseHook(sim_conn).run_live_response(WS1, [RunScript("sleep.ps1", args="300")], "deferred")
    operator = _operator(deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator._wait(action, time.time() + 60)
    trigger = deferred.value.trigger
    assert isinstance(trigger, MachineActionTrigger)
    assert trigger.cancel_on_kill is True
    assert trigger.action_id == action.id
