"""System test: the example DAGs on a real running Airflow (API server, scheduler, triggerer, DAG processor;
SQLite, LocalExecutor), triggered through the REST API, against the MDE simulator.

The fixture ``system_run`` (conftest.py) runs everything once and stops Airflow; each test checks one
promise on what was recorded. Run with ``pytest -m system`` (``scripts/test.sh`` does, on the newest Airflow).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.system.system_scenario import EXAMPLE_DAG_IDS, FLEET_HOSTS, POOL, POOL_SLOTS

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from tests.system.system_scenario import SystemRun

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

TRIGGER_CLASSPATH = "airflow_provider_liveresponse.triggers.machine_action.MachineActionTrigger"
#: The live-response sessions the runs start: one per fleet device, the collect DAG's and the library DAG's.
SESSIONS = len(FLEET_HOSTS) + 2


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
    summary = _xcom(system_run, "example_liveresponse_fleet", "summary", -1)
    assert summary["collected"] == len(FLEET_HOSTS)
    assert summary["failed"] == []
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
    assert len(tasks) == SESSIONS
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


def test_the_pool_capped_concurrent_sessions_at_its_size(system_run: SystemRun) -> None:
    counters = system_run.sim.state.counters
    assert counters["actions_created"] == SESSIONS
    # Eight sessions through three slots: MDE saw three at once, never more.
    assert counters["max_concurrent_sessions"] == POOL_SLOTS
    assert 0 < system_run.observations.pool_peak <= POOL_SLOTS


def _stored_manifests(run: SystemRun) -> list[tuple[Path, dict[str, Any]]]:
    manifests = []
    for dag_id, folder in (("example_liveresponse_collect", "collect"), ("example_liveresponse_fleet", "fleet")):
        for ti in run.task_instances[dag_id]:
            if ti["task_id"].endswith("store"):
                manifest = _xcom(run, dag_id, ti["task_id"], ti["map_index"])
                action = manifest["action"]
                manifests.append((run.evidence / folder / action["machine_id"] / action["id"], manifest))
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
    assert len(task_logs) >= SESSIONS, logs
    places = [(str(path.relative_to(system_run.server.home)), path.read_bytes()) for path in logs]
    assert _leaks(system_run, places) == []


def test_no_secret_in_the_xcoms(system_run: SystemRun) -> None:
    assert len(system_run.xcoms) > SESSIONS
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
    assert len(triggers) >= SESSIONS
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
