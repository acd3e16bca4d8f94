"""System test, issue 15's follow-ups on the same real Airflow (the session's ``system_run``): the evidence-index
DAG ran because the collect DAG's transfer emitted an asset event (the scenario never triggers it), and the
approval DAG's sweep ran after an answer given through the REST API's Human-in-the-loop endpoint."""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.simulator.fleet import device_id
from tests.system.scenario_followups import APPROVAL_CASE, APPROVAL_DAG_ID, APPROVAL_HOSTS, INDEX_DAG_ID

if TYPE_CHECKING:
    from tests.system.system_scenario import SystemRun

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

COLLECT = "example_liveresponse_collect"


def test_the_index_dag_ran_because_the_collect_dags_event_arrived(system_run: SystemRun) -> None:
    seen = system_run.followups
    assert INDEX_DAG_ID not in system_run.run_ids  # never triggered by the scenario
    assert [(r["run_type"], r["state"]) for r in seen.index_runs] == [("asset_triggered", "success")], (
        system_run.diagnostics()
    )
    (index_run,) = seen.index_runs
    (event,) = seen.index_events[index_run["dag_run_id"]]
    manifest = system_run.xcoms[(COLLECT, "store", -1, "return_value")]
    assert (event["source_dag_id"], event["source_run_id"]) == (COLLECT, system_run.run_ids[COLLECT])
    assert event["extra"]["action_id"] == manifest["action"]["id"]
    assert [ti["state"] for ti in seen.index_task_instances[index_run["dag_run_id"]]] == ["success"]
    # The index holds one row per file of the collect run's manifest, with its digest.
    rows = [(r["action_id"], r["path"], r["sha256"]) for r in seen.index_rows]
    assert rows == [(manifest["action"]["id"], f["path"], f["sha256"]) for f in manifest["files"]]


def test_the_approval_was_answered_through_the_rest_api_before_the_sweep(system_run: SystemRun) -> None:
    seen = system_run.followups
    assert seen.approver_error is None
    assert seen.asked["subject"] == f"{APPROVAL_CASE}: run triage.ps1 on {len(APPROVAL_HOSTS)} device(s)?"
    assert all(host in seen.asked["body"] for host in APPROVAL_HOSTS)
    assert "`triage.ps1` with arguments `-Case IR-SYS-APPROVAL`" in seen.asked["body"]
    assert seen.answer["chosen_options"] == ["Approve"]
    assert seen.answers
    assert all(answer["chosen_options"] == ["Approve"] for answer in seen.answers)
    if len(seen.answers) > 1 or seen.server_errors:
        warnings.warn(
            f"The approval was answered {len(seen.answers)} time(s) (a retried try asks again); the API server "
            f"answered 5xx {len(seen.server_errors)} time(s) first: {seen.server_errors}",
            stacklevel=1,
        )
    states = {ti["task_id"]: ti["state"] for ti in system_run.task_instances[APPROVAL_DAG_ID]}
    assert states == {"plan": "success", "approve": "success", "sweep": "success"}, system_run.diagnostics()
    swept = [a for a in system_run.sim.state.actions.values() if APPROVAL_CASE in a.comment]
    assert sorted(a.machine_id for a in swept) == sorted(device_id(host) for host in APPROVAL_HOSTS)
    # The sweep started only after the answer.
    (sweep,) = [ti for ti in system_run.task_instances[APPROVAL_DAG_ID] if ti["task_id"] == "sweep"]
    assert datetime.fromisoformat(sweep["start_date"]) >= datetime.fromisoformat(seen.answer["responded_at"])
