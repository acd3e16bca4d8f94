"""Exactly once: retries, killed workers and lost answers reattach to the action already created."""

from __future__ import annotations

import datetime as dt
import signal
from typing import TYPE_CHECKING, Any

import airflow
from packaging.version import Version

from airflow_provider_liveresponse.simulator.fleet import device_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_liveresponse.simulator import Simulator

WS1 = device_id("ws-0001.contoso.local")
HAS_TASK_STATE_STORE = Version(airflow.__version__).release >= (3, 3)
LOGICAL_DATE = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)

# Runs in the worker process before the DAG: the process dies (SIGKILL, no cleanup) right after MDE has
# accepted the submit and before the action id reaches XCom.
KILL_BEFORE_XCOM = """
import os, signal
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
_push = RuntimeTaskInstance.xcom_push
def xcom_push(self, key, value, *args, **kwargs):
    if key == "action_id":
        os.kill(os.getpid(), signal.SIGKILL)
    return _push(self, key, value, *args, **kwargs)
RuntimeTaskInstance.xcom_push = xcom_push
LOGICAL_DATE = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
"""

COLLECT = f"""
LiveResponseOperator(
    task_id="collect",
    machine_id="{WS1}",
    commands=[RunScript("triage.ps1"), GetFile(r"C:\\Windows\\Temp\\triage.zip")],
    poll_interval=0.2,
    deferrable=False,
)
"""


def test_a_worker_killed_after_submit_is_reattached_by_the_next_run_of_the_task(
    simulator: Simulator, sim_conn: str, dags: Any, task_output: Callable[[], str]
) -> None:
    path = dags.write(COLLECT)
    worker = dags.run_in_subprocess(path, KILL_BEFORE_XCOM)
    assert worker.returncode == -signal.SIGKILL, worker.stderr[-3000:]
    assert simulator.state.counters["actions_created"] == 1
    (first,) = simulator.state.actions

    # The same task of the same DAG run, in a new worker process.
    run = dags.load(path).test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE)

    assert dags.states(run) == {("collect", -1): "success"}
    assert simulator.state.counters["actions_created"] == 1
    assert dags.xcom(run, "collect", "action_id") == first
    assert dags.xcom(run, "collect")["status"] == "Succeeded"
    assert f"Reattaching to action {first}" in task_output()


def test_an_airflow_retry_after_a_failure_past_submit_reattaches(
    simulator: Simulator, sim_conn: str, dags: Any, task_output: Callable[[], str], monkeypatch: Any
) -> None:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    push = RuntimeTaskInstance.xcom_push
    failures = []

    def xcom_push(self: Any, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "action_id" and not failures:
            failures.append(value)
            raise ConnectionError("worker lost the API server")
        return push(self, key, value, *args, **kwargs)

    monkeypatch.setattr(RuntimeTaskInstance, "xcom_push", xcom_push)
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{WS1}",
            commands=[RunScript("triage.ps1")],
            poll_interval=0.2,
            deferrable=False,
            retries=1,
            retry_delay=dt.timedelta(0),
        )
        """
    )
    assert dags.states(run) == {("collect", -1): "success"}
    assert simulator.state.counters["actions_created"] == 1
    assert dags.xcom(run, "collect", "action_id") == failures[0]
    out = task_output()
    how = "recorded by an earlier try" if HAS_TASK_STATE_STORE else "submitted by an earlier try"
    assert f"Reattaching to action {failures[0]}" in out
    assert how in out


def test_a_retry_after_the_action_failed_submits_again(
    simulator: Simulator, sim_conn: str, dags: Any, task_output: Callable[[], str]
) -> None:
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{WS1}",
            commands=[RunScript("fail.ps1")],
            poll_interval=0.2,
            deferrable=False,
            retries=1,
            retry_delay=dt.timedelta(0),
        )
        """
    )
    assert dags.states(run) == {("collect", -1): "failed"}
    # One action per try: the failed action is not reused, and no try submits twice.
    assert simulator.state.counters["actions_created"] == 2
    comments = sorted(a.comment for a in simulator.state.actions.values())
    assert comments[0].endswith(".1]")
    assert comments[1].endswith(".2]")
    assert "ended Failed: this retry runs the commands again" in task_output()


def test_a_lost_submit_answer_does_not_submit_twice(simulator: Simulator, sim_conn: str, dags: Any) -> None:
    simulator.state.faults.set("runliveresponse", commit_then_drop_next=1)
    run = dags.run(COLLECT)
    assert dags.states(run) == {("collect", -1): "success"}
    assert simulator.state.counters["actions_created"] == 1
    assert dags.xcom(run, "collect", "action_id") in simulator.state.actions
