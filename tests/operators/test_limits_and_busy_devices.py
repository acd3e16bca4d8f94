"""MDE's limits in real DAG runs: 429 storms (deferring or waiting), and devices busy with another session."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.models import RunScript
from airflow_provider_liveresponse.operators import live_response as live_response_module
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator, _Deadlines
from airflow_provider_liveresponse.simulator.fleet import device_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_liveresponse.simulator import Simulator

WS1 = device_id("ws-0001.contoso.local")
HOSTS = [device_id(f"ws-{n:04d}.contoso.local") for n in range(140, 148)]


def _storm(simulator: Simulator) -> None:
    # MDE's real limits, tightened (2 runs a simulated minute, 3 sessions at once, for 8 devices), and the
    # next 6 submits refused with 429 and a Retry-After of 30 simulated seconds whatever the timing.
    simulator.state.set_limits(run_calls_per_minute=2, concurrent_sessions=3, concurrency_retry_after_seconds=30)
    simulator.state.faults.set("runliveresponse", throttle_next=6, throttle_retry_after=30)


@pytest.mark.scale
@pytest.mark.parametrize(
    ("deferrable", "in_worker"),
    [(True, 0.0), (True, 30.0), (False, 0.0)],
    ids=["deferrable-defers", "deferrable-short-waits-in-worker", "not-deferrable"],
)
def test_a_429_storm_ends_with_every_device_collected_once(
    simulator: Simulator,
    sim_conn: str,
    dags: Any,
    task_output: Callable[[], str],
    deferrable: bool,
    in_worker: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # dag.test() runs the deferrals one after another; the 15 s floor (tested below) would make this minutes.
    monkeypatch.setattr(live_response_module, "MIN_THROTTLE_DEFERRAL", 1.0)
    _storm(simulator)
    run = dags.run(
        f"""
        LiveResponseOperator.partial(
            task_id="fleet",
            commands=[RunScript("sleep.ps1", args="20")],
            wait_for_completion=False,
            deferrable={deferrable},
            throttle_wait_in_worker={in_worker},
        ).expand(machine_id={HOSTS!r})
        """
    )
    assert set(dags.states(run).values()) == {"success"}
    assert simulator.state.counters["actions_created"] == len(HOSTS)
    assert simulator.state.counters["throttled:runliveresponse"] >= 6
    out = task_output()
    if deferrable and not in_worker:
        assert "deferring" in out
        assert "MDE throttled the call (429" in out
    else:
        # The simulator's Retry-After (30 simulated seconds) is well under a real second here: waited in the worker.
        assert "MDE throttled POST" in out
        assert "MDE throttled the call (429" not in out


@pytest.mark.parametrize(
    ("retry_after", "in_worker", "expected"), [(2.0, 0.0, 15.0), (None, 0.0, 60.0), (3.0, 40.0, 40.0)]
)
def test_a_throttle_deferral_lasts_at_least_15_seconds(
    retry_after: float | None, in_worker: float, expected: float
) -> None:
    from airflow.exceptions import TaskDeferred

    operator = LiveResponseOperator(
        task_id="collect", machine_id=WS1, commands=[RunScript("triage.ps1")], throttle_wait_in_worker=in_worker
    )
    before = dt.datetime.now(dt.UTC)
    with pytest.raises(TaskDeferred) as deferred:
        operator._defer_for_throttle(retry_after, _Deadlines(time.time() + 3600))
    _, kwargs = deferred.value.trigger.serialize()
    assert abs((kwargs["moment"] - before).total_seconds() - expected) < 2
    assert deferred.value.method_name == "resume_submit"


@pytest.mark.parametrize("deferrable", [True, False])
def test_a_busy_device_is_waited_for_then_collected(
    real_time_sim: Simulator,
    dags: Any,
    task_output: Callable[[], str],
    deferrable: bool,
) -> None:
    hook = LiveResponseHook()
    other = hook.run_live_response(WS1, [RunScript("sleep.ps1", args="590")], "analyst session")

    def analyst_ends_the_session_once_the_task_is_refused() -> None:
        deadline = time.monotonic() + 120
        while real_time_sim.state.counters["calls:runliveresponse"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the task is now waiting for the session
        hook.cancel_machine_action(other.id, "analyst: done")

    analyst = threading.Thread(target=analyst_ends_the_session_once_the_task_is_refused, daemon=True)
    analyst.start()
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{WS1}",
            commands=[RunScript("sleep.ps1", args="1")],
            poll_interval=0.2,
            busy_timeout=120,
            deferrable={deferrable},
        )
        """
    )
    analyst.join(timeout=10)
    assert dags.states(run) == {("collect", -1): "success"}
    assert f"is busy with action {other.id}" in task_output()
    assert real_time_sim.state.counters["actions_created"] == 2
    assert dags.xcom(run, "collect", "action_id") != other.id


@pytest.mark.parametrize("deferrable", [True, False])
def test_a_device_busy_past_busy_timeout_fails_naming_the_blocking_action(
    simulator: Simulator,
    sim_conn: str,
    dags: Any,
    task_output: Callable[[], str],
    deferrable: bool,
) -> None:
    other = LiveResponseHook(sim_conn).run_live_response(WS1, [RunScript("sleep.ps1", args="590")], "analyst session")
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{WS1}",
            commands=[RunScript("triage.ps1")],
            poll_interval=0.2,
            busy_timeout=1,
            deferrable={deferrable},
        )
        """
    )
    assert dags.states(run) == {("collect", -1): "failed"}
    out = task_output()
    assert f"stayed busy with another live-response session, action {other.id}" in out
    assert "analyst session" in out
    assert "cancel_stale_after" in out
    # Never somebody else's session, unless told to.
    assert str(simulator.state.actions[other.id].status) in ("Pending", "InProgress")
    assert simulator.state.counters["actions_created"] == 1


@pytest.fixture
def real_time_sim(simulator_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """A simulator whose clock runs at real speed, so that action ages mean real seconds."""
    from airflow_provider_liveresponse.auth import reset_token_providers

    sim = simulator_factory(speed=1.0)
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", sim.connection_json())
    reset_token_providers()
    return sim


def test_cancel_stale_after_cancels_an_old_pending_session_only(real_time_sim: Simulator, dags: Any) -> None:
    offline = device_id("laptop-0002.contoso.local")
    stale = LiveResponseHook().run_live_response(offline, [RunScript("triage.ps1")], "queued last week")
    time.sleep(1.5)
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{offline}",
            commands=[RunScript("triage.ps1")],
            wait_for_completion=False,
            cancel_stale_after=1,
        )
        """
    )
    assert dags.states(run) == {("collect", -1): "success"}
    assert str(real_time_sim.state.actions[stale.id].status) == "Cancelled"
    new_id = dags.xcom(run, "collect", "action_id")
    assert new_id != stale.id
    assert str(real_time_sim.state.actions[new_id].status) == "Pending"


def test_cancel_stale_after_leaves_a_young_session_alone(real_time_sim: Simulator, dags: Any) -> None:
    offline = device_id("laptop-0002.contoso.local")
    young = LiveResponseHook().run_live_response(offline, [RunScript("triage.ps1")], "queued just now")
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{offline}",
            commands=[RunScript("triage.ps1")],
            wait_for_completion=False,
            cancel_stale_after=3600,
            busy_timeout=0.5,
            poll_interval=0.1,
        )
        """
    )
    assert dags.states(run) == {("collect", -1): "failed"}
    assert str(real_time_sim.state.actions[young.id].status) == "Pending"


def test_a_throttled_task_fails_clearly_past_its_retry_budget(
    real_time_sim: Simulator, dags: Any, task_output: Callable[[], str]
) -> None:
    real_time_sim.state.set_limits(run_calls_per_minute=1)
    LiveResponseHook().run_live_response(WS1, [RunScript("sleep.ps1", args="5")], "fills the minute")
    run = dags.run(
        f"""
        LiveResponseOperator(
            task_id="collect",
            machine_id="{HOSTS[0]}",
            commands=[RunScript("triage.ps1")],
            deferrable=False,
            max_retry_wait=0.1,
        )
        """
    )
    assert dags.states(run) == {("collect", -1): "failed"}
    out = task_output()
    assert "was throttled by MDE for longer than the retry budget" in out
    assert real_time_sim.state.counters["actions_created"] == 1
