"""System test: the example DAGs on a real running Airflow (API server, scheduler, triggerer, DAG processor;
SQLite, LocalExecutor), triggered through the REST API, against the MDE simulator.

The fixture ``system_run`` (conftest.py) runs everything once and stops Airflow; each test checks one
promise on what was recorded. Run with ``pytest -m system`` (``scripts/test.sh`` does, on the newest Airflow).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.system.system_scenario import EXAMPLE_DAG_IDS, FLEET_HOSTS, FLEET_SESSIONS, POOL, POOL_SLOTS

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from tests.system.system_scenario import SystemRun

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

TRIGGER_CLASSPATH = "airflow_provider_liveresponse.triggers.machine_action.MachineActionTrigger"
#: The live-response tasks in the pool (the collect DAG's and the library DAG's; the fleet sweep paces itself).
POOL_TASKS = 2


def _pool_tasks(run: SystemRun) -> list[tuple[str, dict[str, Any]]]:
    return [(dag_id, ti) for dag_id, tis in run.task_instances.items() for ti in tis if ti["pool"] == POOL]


def _xcom(run: SystemRun, dag_id: str, task_id: str, map_index: int, key: str = "return_value") -> Any:
    return run.xcoms[(dag_id, task_id, map_index, key)]


def _secrets(run: SystemRun) -> dict[str, str]:
    """Every secret the simulator handed out (and the client secret), in each form it could be written in."""
    state = run.sim.state
    found = {"client secret": run.sim.client_secret}
    for n, token in enumerate(state.issued_tokens):
        found[f"access token #{n}"] = token
        found[f"access token #{n} signature"] = token.rsplit(".", 1)[-1]
    for n, link in enumerate(state.issued_links):
        query = urlsplit(link).query
        signature = parse_qs(query)["sig"][0]
        found[f"link #{n} query"] = query
        found[f"link #{n} signature"] = signature
        found[f"link #{n} signature, URL-encoded"] = quote(signature, safe="")
    return found


def _leaks(run: SystemRun, places: Iterable[tuple[str, str | bytes]]) -> list[str]:
    secrets = _secrets(run)
    leaks = []
    for where, text in places:
        data = text.encode() if isinstance(text, str) else text
        leaks.extend(f"{name} in {where}" for name, secret in secrets.items() if secret.encode() in data)
    return leaks


def test_every_example_dag_run_succeeds(system_run: SystemRun) -> None:
    assert system_run.run_states == dict.fromkeys(EXAMPLE_DAG_IDS, "success"), system_run.diagnostics()
    states = {ti["state"] for tis in system_run.task_instances.values() for ti in tis}
    assert states == {"success"}, system_run.diagnostics()
    outcome = _xcom(system_run, "example_liveresponse_fleet", "sweep", -1)
    assert outcome["counts"]["collected"] == len(FLEET_HOSTS)
    assert {row["target"] for row in outcome["devices"]} == set(FLEET_HOSTS)
    transcript = _xcom(system_run, "example_liveresponse_library", "read_transcript", -1)
    assert transcript["exit_code"] == 0


def test_a_task_was_retried_only_after_airflows_defer_race(system_run: SystemRun) -> None:
    """The deployment allows one retry for Airflow's own race (``DEFER_RACE``); any other retry is a failure. A
    live-response task's retry reattaches to its action (the pool test checks that no session ran twice)."""
    retried = system_run.retried()
    other = [(dag_id, ti) for dag_id, ti in retried if not system_run.failed_by_defer_race(dag_id, ti)]
    assert other == [], system_run.diagnostics(other)
    if retried:
        names = ", ".join(f"{dag_id}.{ti['task_id']}[{ti['map_index']}]" for dag_id, ti in retried)
        warnings.warn(
            f"Airflow's scheduler failed a resumed deferred task once, then it was retried: {names}", stacklevel=1
        )


def test_live_response_tasks_waited_in_the_triggerer(system_run: SystemRun) -> None:
    """Each live-response task instance was seen ``deferred``, held by a MachineActionTrigger for its own action
    that the triggerer job had taken, whose log shows it firing, and then resumed to success: no worker waited
    for MDE."""
    tasks = _pool_tasks(system_run)
    assert len(tasks) >= POOL_TASKS
    assert system_run.triggerer_job_ids
    for dag_id, ti in tasks:
        key = (dag_id, system_run.run_ids[dag_id], ti["task_id"], ti["map_index"])
        history = system_run.observations.states.get(key, [])
        assert "deferred" in history, f"{key} was never seen deferred: {history}"
        assert history[-1] == "success"
        action_id = _xcom(system_run, dag_id, ti["task_id"], ti["map_index"], "action_id")
        triggers = [t for t in system_run.observations.triggers.values() if t.task == key]
        ours = [t for t in triggers if t.classpath == TRIGGER_CLASSPATH]
        assert ours, f"{key} was deferred without a MachineActionTrigger: {triggers}"
        kwargs = [json.loads(system_run.server.decrypt(t.kwargs)) for t in ours]
        assert any(str(k.get("action_id")).lower() == str(action_id).lower() for k in kwargs), kwargs
        assert any(t.triggerer_id in system_run.triggerer_job_ids for t in ours), ours
        # The triggerer's own part of the task's log: it watched the action and fired the event.
        trigger_logs = [
            path
            for path in system_run.task_logs(dag_id, ti["task_id"], ti["map_index"])
            if any(path.name.endswith(f".trigger.{job}.log") for job in system_run.triggerer_job_ids)
        ]
        assert trigger_logs, f"no triggerer log for {key}"
        text = "".join(path.read_text() for path in trigger_logs)
        assert "Trigger fired event" in text
        assert action_id in text


def _peak(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def test_the_pool_and_the_sweep_capped_concurrent_sessions(system_run: SystemRun) -> None:
    """One action per session; the pool held its tasks to its slots; the sweep held its devices to its cap."""
    from airflow_provider_liveresponse.simulator.fleet import device_id
    from airflow_provider_liveresponse.simulator.usage import sessions_report

    state = system_run.sim.state
    per_device = Counter(action.machine_id for action in state.actions.values())
    assert per_device[device_id("ws-0011.contoso.local")] == per_device[device_id("ws-0012.contoso.local")] == 1
    assert 0 < system_run.observations.pool_peak <= POOL_SLOTS
    assert state.counters["max_concurrent_sessions"] <= POOL_SLOTS + FLEET_SESSIONS
    fleet_ids = {device_id(host) for host in FLEET_HOSTS}
    assert {per_device[machine] for machine in fleet_ids} == {1}
    report = sessions_report(state.actions.values(), system_run.sim.clock.time(), 0)
    fleet = [s for s in report["value"] if s["machineId"] in fleet_ids]
    assert sorted(s["machineId"] for s in fleet) == sorted(fleet_ids)  # one action per device
    held = [(s["pickedUp"], s["ended"]) for s in fleet]
    assert all(start is not None and end is not None for start, end in held)
    assert _peak(held) <= FLEET_SESSIONS


def test_the_sweep_is_one_task_outside_the_pool(system_run: SystemRun) -> None:
    """The fleet DAG is one task instance whatever the number of devices: no mapped tasks, no pool slot."""
    (ti,) = system_run.task_instances["example_liveresponse_fleet"]
    assert (ti["task_id"], ti["map_index"], ti["state"]) == ("sweep", -1, "success")
    assert ti["pool"] != POOL


def test_the_sweeps_evidence_verifies(system_run: SystemRun) -> None:
    folder = system_run.evidence / "fleet"
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_liveresponse", "verify", folder.as_uri()],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list(folder.glob("*/*/manifest.json"))) == len(FLEET_HOSTS)


def _stored_manifests(run: SystemRun) -> list[tuple[Path, dict[str, Any]]]:
    """The collect DAG's manifest (its store task's XCom) and each fleet device's (read from its folder)."""
    manifests = []
    for ti in run.task_instances["example_liveresponse_collect"]:
        if ti["task_id"].endswith("store"):
            manifest = _xcom(run, "example_liveresponse_collect", ti["task_id"], ti["map_index"])
            action = manifest["action"]
            manifests.append((run.evidence / "collect" / action["machine_id"] / action["id"], manifest))
    for path in sorted((run.evidence / "fleet").glob("*/*/manifest.json")):
        manifests.append((path.parent, json.loads(path.read_text())))
    return manifests


def test_the_stored_evidence_matches_the_simulators_blobs(system_run: SystemRun) -> None:
    manifests = _stored_manifests(system_run)
    assert len(manifests) == len(FLEET_HOSTS) + 1
    for folder, manifest in manifests:
        assert json.loads((folder / "manifest.json").read_text())["files"] == manifest["files"]
        assert len(manifest["files"]) == 2  # the script's transcript and the zip it wrote
        for entry in manifest["files"]:
            data = (folder / entry["path"]).read_bytes()
            expected = system_run.sim.state.result_digest(manifest["action"]["id"], entry["command"]["index"])
            assert len(data) == entry["size"] == expected["raw"]["size"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"] == expected["raw"]["sha256"]
            assert entry["blob"]["sha256"] == expected["compressed"]["sha256"]
    assert not list(system_run.evidence.rglob("*.partial"))


def test_no_secret_in_the_logs(system_run: SystemRun) -> None:
    logs = [path for path in system_run.server.logs_folder.rglob("*") if path.is_file()]
    task_logs = [path for path in logs if "dag_id=" in str(path)]
    assert len(task_logs) >= len(EXAMPLE_DAG_IDS), logs
    places = [(str(path.relative_to(system_run.server.home)), path.read_bytes()) for path in logs]
    assert _leaks(system_run, places) == []


def test_no_secret_in_the_xcoms(system_run: SystemRun) -> None:
    assert len(system_run.xcoms) > len(EXAMPLE_DAG_IDS)
    places = [(f"XCom {key}", json.dumps(value)) for key, value in system_run.xcoms.items()]
    assert _leaks(system_run, places) == []


def test_no_secret_in_the_rendered_fields(system_run: SystemRun) -> None:
    rendered = {
        (dag_id, ti["task_id"], ti["map_index"]): ti["rendered_fields"]
        for dag_id, tis in system_run.task_instances.items()
        for ti in tis
    }
    assert any(rendered.values())
    places = [(f"rendered fields of {key}", json.dumps(fields)) for key, fields in rendered.items()]
    assert _leaks(system_run, places) == []


def test_no_secret_in_the_trigger_table(system_run: SystemRun) -> None:
    triggers = list(system_run.observations.triggers.values())
    assert len(triggers) >= POOL_TASKS
    places = []
    for trigger in triggers:
        places.append((f"trigger {trigger.trigger_id} (stored)", trigger.kwargs))
        places.append((f"trigger {trigger.trigger_id} (decrypted)", system_run.server.decrypt(trigger.kwargs)))
    assert _leaks(system_run, places) == []


def test_no_secret_anywhere_in_the_metadata_database(system_run: SystemRun) -> None:
    assert _leaks(system_run, [("airflow.db", system_run.server.db_file.read_bytes())]) == []


def test_the_mde_token_never_went_to_the_blob_host(system_run: SystemRun) -> None:
    assert system_run.sim.state.issued_links
    assert system_run.sim.state.counters["blob_requests_with_authorization"] == 0


def test_stopping_airflow_left_no_process_behind(system_run: SystemRun) -> None:
    assert system_run.stop_report.left == {}
