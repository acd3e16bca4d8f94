"""The system test's scenario: the example DAGs run once on a real Airflow against the simulator, observed.

:func:`run_the_examples` starts the MDE simulator and a real Airflow (API server, scheduler, triggerer, DAG
processor; SQLite, LocalExecutor) in a fresh ``AIRFLOW_HOME``, creates the pool, triggers every example DAG
through the REST API, waits for the runs while sampling the metadata database, gathers what the checks need
(task instances, XComs, rendered fields, logs, the simulator's records), stops Airflow, and yields it all.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_liveresponse.simulator.pytest_plugin import FIXTURE_SPEED, FIXTURE_TOKEN_LIFETIME
from airflow_provider_liveresponse.testing.airflow_system import (
    DEFER_RACE,
    AirflowError,
    AirflowServer,
    Observations,
    Observer,
    StopReport,
)
from tests.system import scenario_followups as followups

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_liveresponse.simulator.server import Simulator

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
EXAMPLE_DAG_IDS = (
    "example_liveresponse_fleet",
    "example_liveresponse_collect",
    "example_liveresponse_library",
    followups.APPROVAL_DAG_ID,
)
POOL = "mde_live_response"
POOL_SLOTS = 3
FLEET_HOSTS = [f"ws-{n:04d}.contoso.local" for n in range(1, 7)]
#: The fleet sweep's own cap on concurrent sessions (it does not use the pool: one task drives every device).
FLEET_SESSIONS = 2
#: Simulated seconds per real second. Slow enough that a triage session (about 30 simulated seconds) lasts
#: about ten real seconds, longer than the spread of worker start-ups on a busy machine, so the sessions of
#: tasks started together overlap and the pool has something to cap.
SPEED = 3.0
#: How often the example DAGs poll MDE while they wait (their ``MDE_POLL_INTERVAL``), in real seconds.
POLL_INTERVAL = 1.0
STARTUP_TIMEOUT = 180.0
PARSE_TIMEOUT = 120.0
RUN_TIMEOUT = 240.0
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


@dataclass
class SystemRun:
    """Everything the system tests check, gathered while Airflow ran."""

    sim: Simulator
    server: AirflowServer
    evidence: Path
    #: dag_id -> the run's final state as the REST API reported it (``running`` if it did not end in time).
    run_states: dict[str, str] = field(default_factory=dict)
    run_ids: dict[str, str] = field(default_factory=dict)
    #: dag_id -> the run's task instances from the REST API (with rendered fields).
    task_instances: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: (dag_id, task_id, map_index, key) -> the XCom's stored value (JSON-ready data) from the REST API.
    xcoms: dict[tuple[str, str, int, str], Any] = field(default_factory=dict)
    observations: Observations = field(default_factory=Observations)
    triggerer_job_ids: set[int] = field(default_factory=set)
    stop_report: StopReport = field(default_factory=StopReport)
    elapsed: dict[str, float] = field(default_factory=dict)
    followups: followups.Followups = field(default_factory=followups.Followups)

    def diagnostics(self, tasks: list[tuple[str, dict[str, Any]]] | None = None) -> str:
        """Run states, the log files of ``tasks`` (default: every task instance that did not succeed), and the
        last lines of each component's output."""
        if tasks is None:
            tasks = [(d, ti) for d, tis in self.task_instances.items() for ti in tis if ti["state"] != "success"]
        lines = [f"runs: {self.run_states}"]
        for dag_id, ti in tasks:
            lines.append(f"--- {dag_id}.{ti['task_id']}[{ti['map_index']}] is {ti['state']}, try {ti['try_number']}")
            for log in sorted(self.task_logs(dag_id, ti["task_id"], ti["map_index"])):
                lines.append(f"----- {log.relative_to(self.server.logs_folder)}")
                lines.append(log.read_text(errors="replace")[-6000:])
        lines.append(self.server.tails())
        return "\n".join(lines)

    def retried(self) -> list[tuple[str, dict[str, Any]]]:
        """Task instances that needed more than one try, with their DAG ids."""
        return [(dag_id, ti) for dag_id, tis in self.task_instances.items() for ti in tis if ti["try_number"] > 1]

    def failed_by_defer_race(self, dag_id: str, ti: dict[str, Any]) -> bool:
        """Whether the scheduler's log shows :data:`DEFER_RACE` failing this task instance."""
        log = (self.server.component_logs / "scheduler.log").read_text(errors="replace")
        pattern = DEFER_RACE.format(
            dag_id=re.escape(dag_id),
            task_id=re.escape(ti["task_id"]),
            run_id=re.escape(self.run_ids[dag_id]),
            map_index=f" map_index={ti['map_index']}" if ti["map_index"] >= 0 else "",
        )
        return re.search(pattern, log) is not None

    def task_logs(self, dag_id: str, task_id: str, map_index: int) -> list[Path]:
        """The log files of one task instance (worker tries and triggerer parts)."""
        folder = self.server.logs_folder / f"dag_id={dag_id}" / f"run_id={self.run_ids[dag_id]}" / f"task_id={task_id}"
        if map_index >= 0:
            folder = folder / f"map_index={map_index}"
        return [path for path in folder.glob("*") if path.is_file()]


def _copy_example_dags(target: Path) -> None:
    missing = [dag_id for dag_id in EXAMPLE_DAG_IDS if not (EXAMPLES / f"{dag_id}.py").is_file()]
    if missing:
        raise AssertionError(f"example DAGs missing from {EXAMPLES}: {missing}")
    shutil.copytree(EXAMPLES, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


def _wait_for_dags(server: AirflowServer) -> None:
    deadline = time.monotonic() + PARSE_TIMEOUT
    found: set[str] = set()
    while time.monotonic() < deadline:
        errors = server.api("GET", "/importErrors")
        if errors["total_entries"]:
            raise AirflowError(f"the example DAGs have import errors: {errors['import_errors']}")
        dags = server.api("GET", "/dags", params={"dag_id_pattern": "example_liveresponse", "limit": 100})
        found = {dag["dag_id"] for dag in dags["dags"]}
        if found >= set(EXAMPLE_DAG_IDS):
            return
        time.sleep(1)
    raise AirflowError(f"the DAG processor did not parse the example DAGs in time (found {sorted(found)})")


def _wait_for_runs(server: AirflowServer, run_ids: dict[str, str]) -> dict[str, str]:
    deadline = time.monotonic() + RUN_TIMEOUT
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {
            dag_id: server.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"]
            for dag_id, run_id in run_ids.items()
        }
        if set(states.values()) <= TERMINAL_RUN_STATES:
            return states
        time.sleep(2)
    return states


def _gather(run: SystemRun) -> None:
    server = run.server
    for dag_id, run_id in run.run_ids.items():
        prefix = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
        run.task_instances[dag_id] = server.api("GET", f"{prefix}/taskInstances", params={"limit": 100})[
            "task_instances"
        ]
        entries = server.api("GET", f"{prefix}/taskInstances/~/xcomEntries", params={"limit": 100})["xcom_entries"]
        for entry in entries:
            task_id, map_index, key = entry["task_id"], int(entry["map_index"]), entry["key"]
            path = f"{prefix}/taskInstances/{task_id}/xcomEntries/{quote(key, safe='')}"
            value = server.api("GET", path, params={"map_index": map_index})["value"]
            run.xcoms[(dag_id, task_id, map_index, key)] = value
    rows = server.query("SELECT id FROM job WHERE job_type = 'TriggererJob'")
    run.triggerer_job_ids = {int(row["id"]) for row in rows}


@contextlib.contextmanager
def run_the_examples(base: Path) -> Iterator[SystemRun]:
    """Run the example DAGs on a real Airflow in ``base``; yields the record once Airflow has stopped."""
    from airflow_provider_liveresponse.simulator.server import Simulator

    started = time.monotonic()
    sim = Simulator(
        speed=SPEED, token_lifetime=FIXTURE_TOKEN_LIFETIME * SPEED / FIXTURE_SPEED, state_dir=base / "simulator"
    ).start()
    server = AirflowServer(
        base / "airflow-home",
        env={
            "AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT": sim.connection_json(),
            "MDE_POLL_INTERVAL": str(POLL_INTERVAL),
            # One retry, at once: Airflow 3.3.2's scheduler can fail a deferred task whose trigger fired before
            # it processed the worker's exit (see DEFER_RACE). The tests accept a retry for that cause only.
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
            **followups.env(base / "evidence"),
        },
    )
    run = SystemRun(sim=sim, server=server, evidence=base / "evidence")
    try:
        try:
            _run_the_examples(run, started)
        finally:
            run.stop_report = server.stop()
            run.elapsed["stopped"] = time.monotonic() - started
        yield run
    finally:
        sim.stop()


def _run_the_examples(run: SystemRun, started: float) -> None:
    server = run.server
    _copy_example_dags(server.dags_folder)
    server.prepare()
    server.cli("pools", "set", POOL, str(POOL_SLOTS), "MDE live response (system test)", "--include-deferred")
    server.start()
    server.wait_healthy(STARTUP_TIMEOUT)
    run.elapsed["healthy"] = time.monotonic() - started
    _wait_for_dags(server)
    run.elapsed["parsed"] = time.monotonic() - started
    confs: dict[str, dict[str, Any]] = {
        "example_liveresponse_fleet": {
            "hosts": FLEET_HOSTS,
            "case": "IR-SYS-FLEET",
            "destination": f"file://{run.evidence}/fleet",
            # MDE's limits on the simulator's clock: the sweep paces itself on the worker's (real) clock.
            "submissions_per_minute": 10 * SPEED,
            "max_concurrent_sessions": FLEET_SESSIONS,
            "read_calls_per_minute": int(100 * SPEED),
            "read_calls_per_hour": int(1500 * SPEED),
            "pickup_timeout": 900 / SPEED,
        },
        "example_liveresponse_collect": {
            "host": "ws-0011.contoso.local",
            "case": "IR-SYS-COLLECT",
            "destination": f"file://{run.evidence}/collect",
        },
        "example_liveresponse_library": {"host": "ws-0012.contoso.local", "args": "Established"},
        **followups.confs(run.evidence),
    }
    with Observer(server, POOL) as observations:
        run.observations = observations
        run.followups = followups.start(server)
        for dag_id in EXAMPLE_DAG_IDS:
            server.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
            created = server.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": confs[dag_id]})
            run.run_ids[dag_id] = created["dag_run_id"]
        run.run_states = _wait_for_runs(server, run.run_ids)
        followups.finish(server, run.followups, run.evidence)
    run.elapsed["runs_ended"] = time.monotonic() - started
    _gather(run)
