"""The system scenario's follow-ups (issue 15): the approval answered through the REST API, and the evidence index
built because an asset event arrived.

- ``example_liveresponse_approval`` is triggered with the other examples; while the runs go, :class:`Approver`
  waits for its Human-in-the-loop request and answers *Approve* through ``PATCH .../hitlDetails``, as a person in
  the UI would, keeping what the request showed.
- ``example_liveresponse_evidence_index`` is never triggered: :func:`start` only unpauses it. The collect DAG's
  transfer has ``outlets=[EVIDENCE]``; its event is what makes the scheduler start the index DAG.
  :func:`finish` waits for that run and gathers it, its task instances and the index it wrote.

:mod:`system_scenario` calls :func:`env`, :func:`confs`, :func:`start` and :func:`finish`; the checks are in
``test_followups.py``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_liveresponse.testing.airflow_system import AirflowError

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.testing.airflow_system import AirflowServer

APPROVAL_DAG_ID = "example_liveresponse_approval"
INDEX_DAG_ID = "example_liveresponse_evidence_index"
APPROVAL_HOSTS = ["ws-0021.contoso.local"]
APPROVAL_CASE = "IR-SYS-APPROVAL"
#: Real seconds to wait for the index DAG to be parsed, and for its run to end after the others ended.
INDEX_TIMEOUT = 120.0


@dataclass
class Followups:
    """What the follow-ups saw."""

    #: The approval's Human-in-the-loop detail as the REST API listed it before the answer (subject, body...).
    asked: dict[str, Any] = field(default_factory=dict)
    #: The REST API's answer to the PATCH (chosen_options, responded_by, responded_at).
    answer: dict[str, Any] = field(default_factory=dict)
    approver_error: str | None = None
    #: Every answer stored (more than one when Airflow retried the approval task and it asked again).
    answers: list[dict[str, Any]] = field(default_factory=list)
    #: The API server's 5xx answers to a PATCH that was then sent again.
    server_errors: list[str] = field(default_factory=list)
    #: Every run of the index DAG (REST API records: run_type, state, conf...).
    index_runs: list[dict[str, Any]] = field(default_factory=list)
    #: run_id -> its task instances.
    index_task_instances: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: run_id -> the asset events that triggered it (REST API records: source_dag_id, extra...).
    index_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: The rows of the index file, after the runs.
    index_rows: list[dict[str, Any]] = field(default_factory=list)
    approver: Approver | None = None


def env(evidence: Path) -> dict[str, str]:
    """The deployment's environment for the follow-ups: the index inside the run's evidence folder."""
    return {"MDE_EVIDENCE_INDEX": index_file(evidence).as_uri(), "MDE_APPROVAL_HOURS": "1"}


def index_file(evidence: Path) -> Path:
    """Where the index DAG writes the index (:func:`env`)."""
    return evidence / "index.jsonl"


def confs(evidence: Path) -> dict[str, dict[str, Any]]:
    """The approval DAG's run config."""
    return {
        APPROVAL_DAG_ID: {
            "hosts": APPROVAL_HOSTS,
            "script": "triage.ps1",
            "args": "-Case IR-SYS-APPROVAL",
            "case": APPROVAL_CASE,
            "destination": f"file://{evidence}/approval",
        }
    }


class Approver(threading.Thread):
    """Answers the approval DAG's requests through the REST API, as a person at the UI would.

    Every request is answered, not only the first: a try that Airflow retries (its own race, see ``DEFER_RACE``)
    asks again, and a person asked again approves again. An answer the API server could not store (a 5xx: on a
    busy machine SQLite's lock timeout) is sent again after a pause, as a person clicks again after an error.
    """

    #: Attempts at one answer, and the pause between them (real seconds).
    ATTEMPTS = 10
    PAUSE = 2.0
    #: Real seconds between seeing a request parked and answering it.
    READING = 5.0

    def __init__(self, server: AirflowServer, seen: Followups) -> None:
        super().__init__(daemon=True, name="approver")
        self.server = server
        self.seen = seen
        self.stop = threading.Event()
        self.answered: set[str] = set()
        self.first_seen: dict[str, float] = {}

    def run(self) -> None:
        try:
            while not self.stop.wait(1.0):
                listed = self.server.api("GET", f"/dags/{APPROVAL_DAG_ID}/dagRuns/~/hitlDetails")
                for detail in listed["hitl_details"]:
                    # A retry keeps the task instance's id: a try is its id and try number.
                    ti = detail["task_instance"]
                    key = f"{ti['id']}#{ti['try_number']}"
                    if detail["response_received"] or key in self.answered:
                        continue
                    # A person reads the request for a while; answering within a second of it made Airflow's
                    # defer race likely (the resumed try queued before the scheduler saw the first one exit).
                    if ti["state"] not in ("awaiting_input", "deferred"):
                        continue
                    seen_at = self.first_seen.setdefault(key, time.monotonic())
                    if time.monotonic() - seen_at < self.READING:
                        continue
                    self._answer(detail)
                    self.answered.add(key)
        except Exception as exc:  # checked by the tests
            self.seen.approver_error = f"{type(exc).__name__}: {exc}"

    def _answer(self, detail: dict[str, Any]) -> None:
        if not self.seen.asked:
            self.seen.asked = detail
        ti = detail["task_instance"]
        path = (
            f"/dags/{APPROVAL_DAG_ID}/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/"
            f"{ti['task_id']}/{ti['map_index']}/hitlDetails"
        )
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                answer = self.server.api("PATCH", path, json={"chosen_options": ["Approve"], "params_input": {}})
            except AirflowError as error:
                if " answered 5" not in str(error) or attempt == self.ATTEMPTS:
                    raise
                self.seen.server_errors.append(str(error)[:300])
                self.stop.wait(self.PAUSE)
                continue
            if not self.seen.answer:
                self.seen.answer = answer
            self.seen.answers.append(answer)
            return


def start(server: AirflowServer) -> Followups:
    """Unpause the index DAG (never trigger it) and start answering the approval; call before the runs start."""
    deadline = time.monotonic() + INDEX_TIMEOUT
    while True:
        dags = server.api("GET", "/dags", params={"dag_id_pattern": INDEX_DAG_ID})["dags"]
        if dags:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{INDEX_DAG_ID} was not parsed in time")
        time.sleep(1)
    server.api("PATCH", f"/dags/{INDEX_DAG_ID}", json={"is_paused": False})
    seen = Followups()
    seen.approver = Approver(server, seen)
    seen.approver.start()
    return seen


def finish(server: AirflowServer, seen: Followups, evidence: Path) -> None:
    """Stop the approver, wait for the index DAG's run to end, and gather it; call after the runs ended."""
    if seen.approver is not None:
        seen.approver.stop.set()
        seen.approver.join(timeout=30)
        seen.approver = None
    deadline = time.monotonic() + INDEX_TIMEOUT
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = server.api("GET", f"/dags/{INDEX_DAG_ID}/dagRuns", params={"limit": 100})["dag_runs"]
        if runs and all(r["state"] in ("success", "failed") for r in runs):
            break
        time.sleep(2)
    seen.index_runs = runs
    for dag_run in runs:
        prefix = f"/dags/{INDEX_DAG_ID}/dagRuns/{quote(dag_run['dag_run_id'], safe='')}"
        seen.index_task_instances[dag_run["dag_run_id"]] = server.api("GET", f"{prefix}/taskInstances")[
            "task_instances"
        ]
        seen.index_events[dag_run["dag_run_id"]] = server.api("GET", f"{prefix}/upstreamAssetEvents")["asset_events"]
    index = index_file(evidence)
    if index.is_file():
        seen.index_rows = [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
