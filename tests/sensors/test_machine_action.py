"""MachineActionSensor: waits for an action in poke, reschedule or deferrable mode, fails the way
LiveResponseOperator does (one completion path), and takes the provider's parameter names."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseApiError, LiveResponseConfigError, LiveResponseError
from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator
from airflow_provider_liveresponse.sensors.machine_action import MachineActionSensor
from airflow_provider_liveresponse.simulator.fleet import device_id
from airflow_provider_liveresponse.simulator.lifecycle import Result

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_liveresponse.models import MachineAction
    from airflow_provider_liveresponse.simulator import Simulator

WS1 = device_id("ws-0001.contoso.local")
ACTION_ID = "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10"
SCRIPT_ERROR = "Compress-Archive : Access to the path 'C:\\Windows\\Temp\\triage.zip' is denied."


def _script_exited_3_then_collect_failed(simulator: Simulator, conn_id: str) -> MachineAction:
    """An action whose RunScript completed with exit code 3 (MDE reports the command Completed) and whose
    GetFile then failed: the action ended Failed."""
    action = LiveResponseHook(conn_id).run_live_response(
        WS1, [RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\not-written.zip")], "exit code"
    )
    simulator.state.advance_clock(120)
    transcript = {"script_name": "triage.ps1", "exit_code": 3, "script_output": "", "script_errors": SCRIPT_ERROR}
    simulator.state.actions[action.id].commands[0].result = Result(
        kind="transcript", transcript=json.dumps(transcript).encode()
    )
    ended = LiveResponseHook(conn_id).get_machine_action(action.id)
    assert (str(ended.status), str(ended.commands[0].command_status)) == ("Failed", "Completed")
    return ended


def test_the_sensor_waits_for_an_action(simulator: Simulator, sim_conn: str, dags: Any) -> None:
    run = dags.run(
        f"""
        submit = LiveResponseOperator(
            task_id="submit",
            machine_id="{WS1}",
            commands=[RunScript("triage.ps1")],
            wait_for_completion=False,
        )
        wait = MachineActionSensor(
            task_id="wait",
            action_id="{{{{ ti.xcom_pull(task_ids='submit', key='action_id') }}}}",
            poll_interval=0.2,
            deferrable=True,
        )
        submit >> wait
        """
    )
    assert dags.states(run) == {("submit", -1): "success", ("wait", -1): "success"}
    assert dags.xcom(run, "wait")["status"] == "Succeeded"


@pytest.mark.parametrize("deferrable", [True, False])
def test_the_sensor_reports_the_scripts_exit_code_and_first_error_line(
    simulator: Simulator, sim_conn: str, dags: Any, task_output: Callable[[], str], deferrable: bool
) -> None:
    action = _script_exited_3_then_collect_failed(simulator, sim_conn)
    run = dags.run(
        f'MachineActionSensor(task_id="wait", action_id="{action.id}", poll_interval=0.2, deferrable={deferrable})'
    )
    assert dags.states(run) == {("wait", -1): "failed"}
    out = task_output()
    assert f"script triage.ps1 (command 0) exited 3: {SCRIPT_ERROR}" in out
    assert "command 1 (GetFile C:\\Windows\\Temp\\not-written.zip) failed" in out


def test_the_sensor_and_the_operator_describe_a_failed_action_alike(simulator: Simulator, sim_conn: str) -> None:
    action = _script_exited_3_then_collect_failed(simulator, sim_conn)
    event = {
        "status": "error",
        "message": "from the trigger",
        "action_id": action.id,
        "end_time": None,
        "action": action.model_dump(mode="json", by_alias=True),
    }
    operator = LiveResponseOperator(task_id="collect", machine_id=WS1, commands=[RunScript("triage.ps1")])
    sensor = MachineActionSensor(task_id="wait", action_id=action.id)
    with pytest.raises(LiveResponseError) as by_operator:
        operator.execute_complete({}, event)  # type: ignore[arg-type]
    with pytest.raises(LiveResponseError) as by_sensor:
        sensor.execute_complete({}, event)  # type: ignore[arg-type]
    with pytest.raises(LiveResponseError) as by_poke:
        sensor.poke({})  # type: ignore[arg-type]
    assert str(by_sensor.value) == str(by_operator.value) == str(by_poke.value)
    assert "exited 3" in str(by_sensor.value)


@pytest.mark.parametrize("deferrable", [True, False])
def test_the_sensor_fails_clearly_on_a_cancelled_action(
    simulator: Simulator, sim_conn: str, dags: Any, task_output: Callable[[], str], deferrable: bool
) -> None:
    hook = LiveResponseHook(sim_conn)
    action = hook.run_live_response(WS1, [RunScript("sleep.ps1", args="300")], "to be cancelled")
    hook.cancel_machine_action(action.id, "analyst: not needed")
    run = dags.run(
        f"""
        MachineActionSensor(
            task_id="wait", action_id="{action.id}", poll_interval=0.2, deferrable={deferrable}
        )
        """
    )
    assert dags.states(run) == {("wait", -1): "failed"}
    assert "ended Cancelled" in task_output()


def test_the_sensor_in_reschedule_mode_fails_clearly_on_a_timed_out_action(
    simulator: Simulator, sim_conn: str, dags: Any, task_output: Callable[[], str]
) -> None:
    simulator.state.set_limits(queue_seconds=30)
    action = LiveResponseHook(sim_conn).run_live_response(
        device_id("laptop-0003.contoso.local"), [RunScript("triage.ps1")], "offline device"
    )
    run = dags.run(
        f"""
        MachineActionSensor(task_id="wait", action_id="{action.id}", poke_interval=0.2, mode="reschedule")
        """
    )
    assert dags.states(run) == {("wait", -1): "failed"}
    text = task_output()
    assert "ended TimeOut" in text
    assert "device stayed offline" in text


# -- parameter names -------------------------------------------------------------------------------------------


def test_poll_interval_is_the_sensors_poke_interval() -> None:
    sensor = MachineActionSensor(task_id="wait", action_id=ACTION_ID, poll_interval=5)
    assert (sensor.poll_interval, sensor.poke_interval) == (5.0, 5.0)


def test_poke_interval_still_works_as_airflow_users_know_it() -> None:
    sensor = MachineActionSensor(task_id="wait", action_id=ACTION_ID, poke_interval=7)
    assert (sensor.poll_interval, sensor.poke_interval) == (7.0, 7.0)


def test_the_interval_defaults_to_30_seconds() -> None:
    assert MachineActionSensor(task_id="wait", action_id=ACTION_ID).poke_interval == 30.0


def test_poll_interval_and_poke_interval_together_fail_naming_both() -> None:
    with pytest.raises(LiveResponseConfigError, match="give poll_interval or poke_interval, not both"):
        MachineActionSensor(task_id="wait", action_id=ACTION_ID, poll_interval=5, poke_interval=5)


def test_max_retry_wait_bounds_the_sensors_reads(simulator: Simulator, sim_conn: str) -> None:
    action = LiveResponseHook(sim_conn).run_live_response(WS1, [RunScript("slow.ps1")], "throttled reads")
    simulator.state.faults.set("get_action", throttle_next=3, throttle_retry_after=60)
    sensor = MachineActionSensor(task_id="wait", action_id=action.id, max_retry_wait=0.1)
    with pytest.raises(LiveResponseApiError, match="longer than the retry budget"):
        sensor.poke({})  # type: ignore[arg-type]
    assert simulator.state.counters["throttled:get_action"] == 1
