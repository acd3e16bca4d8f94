"""A trigger reassigned between two real triggerers does not cancel its action; a user's kill still does.

Airflow 3.3 kills a trigger on its old triggerer when that triggerer comes back after another one took its
triggers (apache/airflow#73454), and ``MachineActionTrigger.on_kill`` must then leave the action running. Here
a real Airflow 3.3 (two triggerers, SQLite, LocalExecutor) runs a deferred ``LiveResponseOperator``
(``cancel_on_kill=True``, the default) whose device is offline, so its action stays ``Pending``. The triggerer
holding the trigger is stopped (SIGSTOP of its process group) past ``[triggerer]
triggerer_health_check_threshold``; the other one takes the trigger; the first is continued (SIGCONT) and kills
its copy. Checked: the simulator's cancel endpoint is never called, the old triggerer's log says why nothing was
cancelled, and the task succeeds in its first try once the device comes online. Then a user marks a second
deferred task failed through the REST API, and its action is cancelled.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
import requests
from packaging.version import Version

from airflow_provider_liveresponse.simulator.fleet import device_id
from airflow_provider_liveresponse.simulator.pytest_plugin import FIXTURE_SPEED, FIXTURE_TOKEN_LIFETIME
from airflow_provider_liveresponse.testing.airflow_system import AirflowServer, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_provider_liveresponse.simulator.server import Simulator


def _airflow_version() -> Version:
    from airflow import __version__

    return Version(__version__)


pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        _airflow_version() < Version("3.3"), reason="triggers have on_kill from Airflow 3.3 (apache/airflow#65590)"
    ),
]

REASSIGNED_HOST = "ws-0001.contoso.local"
KILLED_HOST = "ws-0002.contoso.local"
WARM_HOSTS = ("ws-0003.contoso.local", "ws-0004.contoso.local")
HEALTH_THRESHOLD = 10
SPEED = 10.0
DAG_FILE = f'''
from airflow.sdk import DAG
from airflow_provider_liveresponse.models import RunScript
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator

for dag_id, machine_id in (("kill_probe_reassigned", "{device_id(REASSIGNED_HOST)}"),
                           ("kill_probe_user", "{device_id(KILLED_HOST)}")):
    with DAG(dag_id, schedule=None, catchup=False):
        LiveResponseOperator(
            task_id="collect", machine_id=machine_id, commands=[RunScript("triage.ps1")],
            deferrable=True, poll_interval=1.0, retries=0,
        )

with DAG("kill_probe_warm_up", schedule=None, catchup=False):
    for task_id, machine_id in (("collect_a", "{device_id(WARM_HOSTS[0])}"),
                                ("collect_b", "{device_id(WARM_HOSTS[1])}")):
        LiveResponseOperator(
            task_id=task_id, machine_id=machine_id, commands=[RunScript("triage.ps1")],
            deferrable=True, poll_interval=1.0, retries=0,
        )
'''


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowServer, Simulator]]:
    """The simulator (the probes' devices offline) and a real Airflow with two warmed-up triggerers.

    Each triggerer holds one trigger at most (``capacity`` 1), a 10 s health threshold and a 1 s heartbeat.
    """
    from airflow_provider_liveresponse.simulator.server import Simulator

    base: Path = tmp_path_factory.mktemp("reassignment")
    sim = Simulator(
        speed=SPEED, token_lifetime=FIXTURE_TOKEN_LIFETIME * SPEED / FIXTURE_SPEED, state_dir=base / "simulator"
    ).start()
    server = AirflowServer(
        base / "airflow-home",
        triggerers=2,
        env={
            "AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT": sim.connection_json(),
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_THRESHOLD),
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__CAPACITY": "1",
        },
    )
    try:
        for host in (REASSIGNED_HOST, KILLED_HOST, *WARM_HOSTS):
            _set_online(sim, host, online=False)
        server.prepare()
        (server.dags_folder / "kill_probes.py").write_text(DAG_FILE)
        server.start()
        server.wait_healthy(180)
        _warm_up(server, sim)
        yield server, sim
    finally:
        report = server.stop()
        sim.stop()
        assert not report.left, f"processes outlived Airflow: {report.left}"


def _warm_up(server: AirflowServer, sim: Simulator) -> None:
    """One deferred task per triggerer, until both triggerers' supervisors answer state lookups, then both end.

    A triggerer's supervisor builds its in-process Execution API on the first Task SDK request, and on a busy
    machine that blocked its heartbeat for 30 s (three health thresholds here): the trigger's first run pays it
    (kill_check.warm_up). Doing it here, for both, keeps the reassignment below the one the test makes.
    """
    started = time.monotonic()
    dag_id = "kill_probe_warm_up"
    run_id = _start_run(server, dag_id)
    jobs = set(server.triggerer_jobs.values())
    wait_until(
        "both triggerers to read a task instance state",
        lambda: all("Task instance states are readable here" in _trigger_log(server, dag_id, job) for job in jobs),
        240,
        server,
    )
    for host in WARM_HOSTS:
        _set_online(sim, host, online=True)
    prefix = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
    state = wait_until("the warm-up run to end", lambda: _ended(server.api("GET", prefix)["state"]), 120, server)
    assert state == "success", server.tails(80)
    wait_until("both triggerers to heartbeat", lambda: _heartbeats_fresh(server), 60, server)
    print(f"warm-up: {time.monotonic() - started:.1f} s")


def _ended(state: str) -> str:
    return state if state in ("success", "failed") else ""


def _heartbeats_fresh(server: AirflowServer, within: float = 3.0) -> bool:
    """Whether every triggerer heartbeat in the last ``within`` seconds (the job table's UTC times)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = server.query("SELECT latest_heartbeat FROM job WHERE job_type = 'TriggererJob' AND end_date IS NULL")
    beats = [datetime.fromisoformat(str(row["latest_heartbeat"])) for row in rows]
    return len(beats) == len(server.triggerer_jobs) and all((now - beat).total_seconds() < within for beat in beats)


def _set_online(sim: Simulator, host: str, *, online: bool) -> None:
    response = requests.patch(
        f"{sim.control_url}/devices/{device_id(host)}", json={"online": online}, verify=str(sim.ca_file), timeout=30
    )
    response.raise_for_status()


def _start_run(server: AirflowServer, dag_id: str) -> str:
    wait_until(f"{dag_id} to be parsed", lambda: server.api("GET", f"/dags/{dag_id}"), 120, server)
    server.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    return str(server.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None})["dag_run_id"])


def _deferred_trigger(server: AirflowServer, dag_id: str) -> tuple[int, int]:
    """(trigger id, triggerer job id) once the task instance is deferred on an assigned trigger."""
    rows = server.query(
        'SELECT t.id, t.triggerer_id FROM task_instance AS ti JOIN "trigger" AS t ON t.id = ti.trigger_id '
        "WHERE ti.dag_id = ? AND ti.state = 'deferred' AND t.triggerer_id IS NOT NULL",
        dag_id,
    )
    return (int(rows[0]["id"]), int(rows[0]["triggerer_id"])) if rows else (0, 0)


def _task_instance(server: AirflowServer, dag_id: str, run_id: str) -> dict[str, Any]:
    return dict(server.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/collect"))


def _trigger_log(server: AirflowServer, dag_id: str, job_id: int) -> str:
    """The part of the task's log that triggerer ``job_id`` wrote (``<attempt log>.trigger.<job id>.log``)."""
    files = list((server.logs_folder / f"dag_id={dag_id}").rglob(f"*.trigger.{job_id}.log"))
    return "".join(path.read_text(errors="replace") for path in files)


def _action_id(sim: Simulator, host: str) -> str:
    (action_id,) = [a.id for a in list(sim.state.actions.values()) if a.machine_id == device_id(host)]
    return action_id


def test_a_reassigned_trigger_does_not_cancel_and_the_task_succeeds(
    deployment: tuple[AirflowServer, Simulator],
) -> None:
    server, sim = deployment
    dag_id = "kill_probe_reassigned"
    run_id = _start_run(server, dag_id)
    wait_until("the deferred trigger", lambda: _deferred_trigger(server, dag_id)[0], 180, server)
    trigger_id, first_job = _deferred_trigger(server, dag_id)
    action_id = _action_id(sim, REASSIGNED_HOST)
    holder = next(name for name, job in server.triggerer_jobs.items() if job == first_job)
    other_job = next(job for job in server.triggerer_jobs.values() if job != first_job)

    # Stop it once it runs the trigger and both triggerers are healthy.
    wait_until(
        f"the trigger to run on {holder}", lambda: "is Pending" in _trigger_log(server, dag_id, first_job), 60, server
    )
    wait_until("both triggerers to heartbeat", lambda: _heartbeats_fresh(server), 60, server)
    assert _deferred_trigger(server, dag_id) == (trigger_id, first_job)
    paused = time.monotonic()
    server.pause(holder)
    try:
        wait_until(
            f"triggerer job {other_job} to take trigger {trigger_id}",
            lambda: _deferred_trigger(server, dag_id) == (trigger_id, other_job),
            HEALTH_THRESHOLD + 60,
            server,
        )
        taken_after = time.monotonic() - paused
    finally:
        server.resume(holder)
    not_cancelled = wait_until(
        f"the old triggerer ({holder}, job {first_job}) to kill its copy and say why it did not cancel",
        lambda: re.search(r"Not cancelling MDE action \S+ on device .*", _trigger_log(server, dag_id, first_job)),
        90,
        server,
    )
    old_log = _trigger_log(server, dag_id, first_job)
    print(f"reassigned after {taken_after:.1f} s of SIGSTOP; the old triggerer logged: {not_cancelled.group(0)}")
    assert "Trigger cancelled by user action, invoking on_kill" in old_log  # Airflow did call on_kill
    assert (
        f"Not cancelling MDE action {action_id} on device {REASSIGNED_HOST} ({device_id(REASSIGNED_HOST)})" in old_log
    )
    assert "is still deferred" in old_log
    assert "cancel it in the Defender portal if the kill was yours" in old_log
    assert sim.state.counters.get("calls:cancel", 0) == 0
    assert str(sim.state.actions[action_id].status) == "Pending"

    _set_online(sim, REASSIGNED_HOST, online=True)
    ti = wait_until(
        "the task to end",
        lambda: (t := _task_instance(server, dag_id, run_id))["state"] in ("success", "failed") and t,
        120,
        server,
    )
    assert ti["state"] == "success", _trigger_log(server, dag_id, other_job) + server.tails(80)
    assert ti["try_number"] == 1  # no retry: the script ran on the device once
    assert str(sim.state.actions[action_id].status) == "Succeeded"
    assert len([a for a in sim.state.actions.values() if a.machine_id == device_id(REASSIGNED_HOST)]) == 1
    assert sim.state.counters.get("calls:cancel", 0) == 0
    assert "Bearer" not in old_log
    assert "eyJ" not in old_log


def test_a_users_kill_still_cancels(deployment: tuple[AirflowServer, Simulator]) -> None:
    server, sim = deployment
    dag_id = "kill_probe_user"
    run_id = _start_run(server, dag_id)
    wait_until("the deferred trigger", lambda: _deferred_trigger(server, dag_id)[0], 180, server)
    _, job = _deferred_trigger(server, dag_id)
    action_id = _action_id(sim, KILLED_HOST)
    cancels_before = sim.state.counters.get("calls:cancel", 0)
    server.api(
        "PATCH", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/collect", json={"new_state": "failed"}
    )
    wait_until(
        "the action to be cancelled", lambda: str(sim.state.actions[action_id].status) == "Cancelled", 60, server
    )
    log = wait_until(
        "the kill's log line", lambda: "cancelling MDE action" in _trigger_log(server, dag_id, job), 30, server
    )
    assert log
    text = _trigger_log(server, dag_id, job)
    assert f"left the deferral (it is now failed)): cancelling MDE action {action_id} on device {KILLED_HOST}" in text
    assert sim.state.counters.get("calls:cancel", 0) == cancels_before + 1
    assert _task_instance(server, dag_id, run_id)["state"] == "failed"
