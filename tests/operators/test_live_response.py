"""LiveResponseOperator in real DAG runs (dag.test) against the simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.simulator.fleet import device_id

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator import Simulator

WS1 = device_id("ws-0001.contoso.local")


def test_collects_by_host_name_and_pushes_the_action_id(simulator: Simulator, sim_conn: str, dags: Any) -> None:
    run = dags.run(
        """
        LiveResponseOperator(
            task_id="collect",
            computer_dns_name="ws-0001.contoso.local",
            commands=[RunScript("triage.ps1"), GetFile(r"C:\\Windows\\Temp\\triage.zip")],
            poll_interval=0.2,
            deferrable=False,
        )
        """
    )
    assert dags.states(run) == {("collect", -1): "success"}
    action_id = dags.xcom(run, "collect", "action_id")
    assert action_id in {a for a in simulator.state.actions}
    result = dags.xcom(run, "collect")
    assert result["status"] == "Succeeded"
    assert result["machine_id"] == WS1
    assert [c["status"] for c in result["commands"]] == ["Completed", "Completed"]
    assert dags.xcom(run, "collect", "_link_MachineActionLink").endswith(action_id)
    assert simulator.state.counters["actions_created"] == 1


def test_deferrable_waits_in_the_trigger(simulator: Simulator, sim_conn: str, dags: Any) -> None:
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{WS1}",
            commands=[RunScript("sleep.ps1", args="120")],
            comment="deferred",
            poll_interval=0.2,
            deferrable=True,
        )
        """
    )
    assert dags.states(run) == {("collect", -1): "success"}
    assert dags.xcom(run, "collect")["status"] == "Succeeded"


@pytest.mark.scale
def test_mapped_over_30_devices(simulator: Simulator, sim_conn: str, dags: Any) -> None:
    hosts = [device_id(f"ws-{n:04d}.contoso.local") for n in range(100, 130)]
    simulator.state.set_limits(run_calls_per_minute=1000)
    run = dags.run(
        f"""
        LiveResponseOperator.partial(
            task_id="fleet",
            commands=[GetFile(r"C:\\Windows\\System32\\drivers\\etc\\hosts")],
            poll_interval=0.2,
            deferrable=True,
        ).expand(machine_id={hosts!r})
        """
    )
    states = dags.states(run)
    assert len(states) == 30
    assert set(states.values()) == {"success"}
    assert simulator.state.counters["actions_created"] == 30


def test_a_failing_command_fails_the_task_with_a_clear_message(
    simulator: Simulator, sim_conn: str, dags: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{WS1}",
            commands=[RunScript("fail.ps1"), GetFile(r"C:\\Windows\\Temp\\triage.zip")],
            poll_interval=0.2,
            deferrable=False,
        )
        """
    )
    assert dags.states(run) == {("collect", -1): "failed"}
    text = capsys.readouterr().out
    assert "ended Failed" in text
    assert "Script 'fail.ps1' failed with exit code 1" in text
    assert "command 0 (RunScript fail.ps1) failed" in text
    assert "commands not run: 1 (GetFile C:\\Windows\\Temp\\triage.zip)" in text


def test_an_offline_device_times_out(simulator: Simulator, sim_conn: str, dags: Any, capsys: Any) -> None:
    simulator.state.set_limits(queue_seconds=30)
    offline = device_id("laptop-0001.contoso.local")
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{offline}",
            commands=[GetFile(r"C:\\Windows\\Temp\\memory.dmp")],
            poll_interval=0.2,
            deferrable=True,
        )
        """
    )
    assert dags.states(run) == {("collect", -1): "failed"}
    text = capsys.readouterr().out
    assert "ended TimeOut" in text
    assert "device stayed offline" in text


def test_bad_input_fails_before_any_call(simulator: Simulator, sim_conn: str, dags: Any, capsys: Any) -> None:
    run = dags.run(
        """
        LiveResponseOperator(
            task_id="collect",
            machine_id="not-a-device",
            commands=[{"type": "GetFile", "params": [{"key": "path", "value": "C:\\\\x"}]}],
        )
        """
    )
    assert dags.states(run) == {("collect", -1): "failed"}
    assert "did you mean 'Path'" in capsys.readouterr().out
    assert sum(v for k, v in simulator.state.counters.items() if k.startswith("calls:")) == 0


def test_jinja_in_a_command_is_rendered(simulator: Simulator, sim_conn: str, dags: Any) -> None:
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{WS1}",
            commands=[RunScript("minidump.ps1", args="{{{{ params.process }}}}")],
            poll_interval=0.2,
            deferrable=False,
        )
        """,
        run_conf={"process": "lsass"},
    )
    assert dags.states(run) == {("collect", -1): "success"}
    (action,) = simulator.state.actions.values()
    assert action.commands[0].params[1] == {"key": "Args", "value": "lsass"}
