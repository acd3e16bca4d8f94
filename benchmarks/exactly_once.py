"""Fault campaign 1, exactly once: DAG runs whose worker is SIGKILLed at one of five points, then retried.

The DAG is the collect-then-store pair of the examples: ``LiveResponseOperator`` (``triage.ps1`` and a GetFile
of the zip it writes; poke mode, so that a worker waits) then ``LiveResponseToObjectStorageOperator`` to
``file://``. Each run (its own logical date and device) is started in a worker that dies at one point:

- ``before_submit``: on entering ``LiveResponseHook.run_live_response`` (nothing sent yet);
- ``during_submit``, in two halves: odd runs die 0.1 s after the POST ``runliveresponse`` leaves, while the
  simulator holds the request for 0.4 s (it then finds the client gone and creates nothing); even runs send a
  request that MDE commits and whose answer is lost (``commit_then_drop``), and die on the broken connection
  (the action exists, the worker never heard of it);
- ``after_submit_before_xcom``: in ``xcom_push("action_id")``, the action created, its id not yet recorded;
- ``while_waiting``: at the poke loop's first sleep;
- ``during_transfer``: in the transfer's write loop, a temporary object half written;

then the same logical date runs again in a new worker (``dag.test()`` clears the run and runs both tasks again,
as a retry of each would). Each run must end with both tasks successful, exactly one action created on the
simulator for it (found by its run id in the action's comment), the stored file equal to the simulator's
source, and no object under a final name with other content, checked after the kill and after the retry.

Workers are forks of one process that imported Airflow and parsed the DAG once (:mod:`benchmarks.forked_worker`),
so a killed worker costs a fork and one ``dag.test()``, not an interpreter and Airflow's imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.testing.simulated_connection import running_simulator
from benchmarks.core import Result, benchmark
from benchmarks.forked_worker import KILL_POINTS
from benchmarks.secrets_audit import add_place, add_simulator
from benchmarks.support import CONN_ID

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_liveresponse.simulator.server import Simulator

ROOT = Path(__file__).resolve().parents[1]
#: Simulated seconds per real second: a triage session (about 30 simulated seconds) takes a fifth of a second.
SPEED = 150.0
#: Real seconds the simulator holds its answer to the submit whose worker dies during the request.
SUBMIT_DELAY = 0.4
DAG_ID = "bench_exactly_once"
DAG_SOURCE = f"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator
from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
    LiveResponseToObjectStorageOperator,
)

with DAG({DAG_ID!r}, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
    collect = LiveResponseOperator(
        task_id="collect",
        machine_id="{{{{ params.machine_id }}}}",
        commands=[RunScript("triage.ps1"), GetFile(r"C:\\Windows\\Temp\\triage.zip")],
        poll_interval=0.1,
        deferrable=False,
        mde_conn_id={CONN_ID!r},
    )
    store = LiveResponseToObjectStorageOperator(
        task_id="store",
        action_id=collect.output["action_id"],
        destination="{{{{ params.destination }}}}",
        mde_conn_id={CONN_ID!r},
    )
    collect >> store
"""


class Worker:
    """The forking worker process (see :mod:`benchmarks.forked_worker`)."""

    def __init__(self, dag_file: Path, log: Path) -> None:
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.forked_worker", str(dag_file)],
                cwd=ROOT,
                env=dict(os.environ),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=output,
                text=True,
            )
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"the forking worker did not start: {ready}")

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the forking worker exited ({self.process.wait()})")
        return dict(json.loads(line))

    def run(self, date: datetime, conf: dict[str, Any], kill: str | None, log: Path) -> dict[str, Any]:
        assert self.process.stdin is not None
        order = {"date": date.isoformat(), "conf": conf, "kill": kill, "log": str(log)}
        self.process.stdin.write(json.dumps(order) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def migrate_database() -> None:
    """Create this run's Airflow metadata database (``dag.test()`` needs one)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        timeout=600,
        env=dict(os.environ),
    )


def _final_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".partial")]


def _wrong_finals(sim: Simulator, evidence: Path) -> list[str]:
    """Objects under a final name whose content is not the source's (manifests must list matching files)."""
    wrong = []
    for path in _final_files(evidence):
        action_id = path.parent.name
        if path.name == "manifest.json":
            try:
                manifest = json.loads(path.read_text())
                files = manifest["files"]
            except (ValueError, KeyError):
                wrong.append(f"{path}: not a manifest")
                continue
            for entry in files:
                if entry["sha256"] != sim.state.result_digest(action_id, entry["command"]["index"])["raw"]["sha256"]:
                    wrong.append(f"{path}: lists {entry['path']} with another SHA-256")
            continue
        index = int(path.name.split("_", 1)[0])
        expected = sim.state.result_digest(action_id, index)["raw"]["sha256"]
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            wrong.append(f"{path}: SHA-256 differs from the source")
    return wrong


@benchmark(
    "exactly-once",
    "Fault campaign 1, exactly once: workers SIGKILLed at five points, then retried",
    sizes=(100,),
    quick_sizes=(10,),
    sizes_mean="runs per kill point",
)
def exactly_once(sizes: Sequence[int], quick: bool) -> Result:
    from airflow_provider_liveresponse.simulator.fleet import device_id

    result = Result()
    runs_per_point = sizes[0]
    started = time.monotonic()
    migrate_database()
    prepared = time.monotonic() - started
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(parents=True, exist_ok=True)
    dag_file = dags / f"{DAG_ID}.py"
    dag_file.write_text(DAG_SOURCE)
    per_point: dict[str, Counter[str]] = {point: Counter() for point in KILL_POINTS}
    problems: list[str] = []
    seconds: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="bench-exactly-once-") as scratch_text:
        scratch = Path(scratch_text)
        evidence = scratch / "evidence"
        logs = scratch / "logs"
        logs.mkdir()
        with running_simulator(CONN_ID, speed=SPEED, state_dir=scratch / "simulator") as sim:
            # Submissions are not what this campaign measures: MDE's 10 a minute would only slow it down.
            sim.state.set_limits(run_calls_per_minute=10**6, read_calls_per_minute=10**6, read_calls_per_hour=10**6)
            worker = Worker(dag_file, logs / "forking-worker.log")
            try:
                base = datetime(2025, 1, 1, tzinfo=UTC)
                number = 0
                for round_number in range(runs_per_point):
                    for point in KILL_POINTS:
                        number += 1
                        host = f"ws-{(number % 250) + 1:04d}.contoso.local"
                        date = base + timedelta(minutes=number)
                        conf = {"machine_id": device_id(host), "destination": f"file://{evidence}"}
                        outcome = _one_run(
                            sim, worker, point, date, conf, logs / f"{number:04d}-{point}.log", round_number % 2 == 1
                        )
                        per_point[point].update(outcome["counts"])
                        seconds["killed"] += outcome["killed_seconds"]
                        seconds["retry"] += outcome["retry_seconds"]
                        problems.extend(f"run {number} ({point}): {p}" for p in outcome["problems"])
                        if outcome["problems"] and len(problems) > 50:
                            break
                problems.extend(f"after the campaign: {w}" for w in _wrong_finals(sim, evidence))
                partials = [str(p) for p in evidence.rglob("*.partial")]
            finally:
                worker.close()
            for log in sorted(logs.glob("*.log")):
                add_place("worker log", log.name, log.read_bytes())
            _collect_database(sim)
            add_simulator(sim, "exactly-once")
            total_actions = sim.state.counters["actions_created"]
    elapsed = time.monotonic() - started
    table = result.table(
        f"Runs per kill point ({runs_per_point} each): actions created on the simulator per run, and outcomes",
        ["kill point", "runs", "worker killed", "actions: at the kill", "after the retry", "exactly 1", "retry ok"],
    )
    runs = 0
    exact = 0
    for point in KILL_POINTS:
        counts = per_point[point]
        runs += counts["runs"]
        exact += counts["exactly_one"]
        table.add(
            point,
            counts["runs"],
            counts["killed"],
            f"{counts['actions_at_kill']}",
            f"{counts['actions_after_retry']}",
            counts["exactly_one"],
            counts["retry_success"],
        )
    total = sum(per_point[p]["runs"] for p in KILL_POINTS)
    result.check(
        "runs with exactly one action created",
        f"{exact} / {total}",
        "every run",
        exact == total == runs_per_point * len(KILL_POINTS),
    )
    result.check(
        "runs whose worker died at its point and whose retry succeeded with the source's SHA-256",
        f"{sum(per_point[p]['killed_and_ok'] for p in KILL_POINTS)} / {total}",
        "every run",
        sum(per_point[p]["killed_and_ok"] for p in KILL_POINTS) == total,
    )
    result.check(
        "final names with other content than the source, or leftovers after the retries",
        str(len([p for p in problems if "final name" in p or "SHA-256" in p]) + len(partials)),
        "0",
        not problems and not partials and total_actions == exact,
    )
    for problem in problems[:20]:
        result.notes.append(problem)
    result.notes.append(
        f"{total} runs, {2 * total} worker processes (forks) in {elapsed:.0f} s ({elapsed / max(total, 1):.1f} s a "
        f"run: {seconds['killed'] / max(total, 1):.1f} s to the kill, {seconds['retry'] / max(total, 1):.1f} s for "
        f"the retry; database migration {prepared:.0f} s)"
    )
    return result


def _one_run(
    sim: Simulator, worker: Worker, point: str, date: datetime, conf: dict[str, Any], log: Path, committed: bool
) -> dict[str, Any]:
    counts: Counter[str] = Counter(runs=1)
    problems: list[str] = []
    run_id_part = date.isoformat()
    kill = point
    if point == "during_submit" and committed:
        kill = "during_submit_committed"
        sim.state.faults.set("runliveresponse", commit_then_drop_next=1)
    elif point == "during_submit":
        sim.state.faults.set("runliveresponse", delay_seconds=SUBMIT_DELAY, delay_next=1)
    killed = worker.run(date, conf, kill, log)
    sim.state.faults.clear("runliveresponse")
    if killed["exit"] != -9:
        problems.append(f"the worker was not killed (exit {killed['exit']}, states {killed['states']})")
    else:
        counts["killed"] += 1
    if point == "during_submit":
        # The request was received; let MDE finish creating the action, as it would while Airflow's retry_delay
        # passes, before the retry looks for it.
        time.sleep(SUBMIT_DELAY)
    evidence = Path(conf["destination"].removeprefix("file://"))
    problems.extend(f"after the kill: {w}" for w in _wrong_finals(sim, evidence))
    at_kill = _actions_of(sim, run_id_part)
    counts["actions_at_kill"] += len(at_kill)
    retry = worker.run(date, conf, None, log)
    after = _actions_of(sim, run_id_part)
    counts["actions_after_retry"] += len(after)
    if len(after) == 1:
        counts["exactly_one"] += 1
    else:
        problems.append(f"{len(after)} actions created: {after}")
    ok = retry["exit"] == 0 and retry["states"] == {"collect": "success", "store": "success"}
    if ok:
        counts["retry_success"] += 1
        (action_id,) = after
        expected = sorted(sim.state.result_digest(action_id, index)["raw"]["sha256"] for index in (0, 1))
        stored = [p for p in _final_files(evidence / conf["machine_id"] / action_id) if p.name != "manifest.json"]
        digests = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in stored)
        if digests == expected and counts["killed"]:
            counts["killed_and_ok"] += 1
        elif digests != expected:
            problems.append(f"stored {len(stored)} file(s) with SHA-256 {digests}, the source's {expected}")
    else:
        problems.append(f"the retry ended {retry['exit']} with states {retry['states']}; log {log}")
    problems.extend(f"after the retry: {w}" for w in _wrong_finals(sim, evidence / conf["machine_id"]))
    return {
        "counts": counts,
        "problems": problems,
        "killed_seconds": killed["seconds"],
        "retry_seconds": retry["seconds"],
    }


def _actions_of(sim: Simulator, logical_date: str) -> list[str]:
    """Actions whose comment names this run (the operator's default comment holds the run id)."""
    with sim.state.lock:
        return [a.id for a in sim.state.actions.values() if logical_date in (a.comment or "")]


def _collect_database(sim: Simulator) -> None:
    """XComs, rendered fields and the whole metadata database of the campaign's runs, for campaign 5."""
    import sqlite3

    from airflow.configuration import conf

    url = conf.get("database", "sql_alchemy_conn")
    if not url.startswith("sqlite:///"):
        return
    path = url.removeprefix("sqlite:///")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for table in ("xcom", "rendered_task_instance_fields", "trigger"):
            rows = connection.execute(f'SELECT * FROM "{table}"').fetchall()
            add_place(table, "exactly-once campaign", repr(rows))
    finally:
        connection.close()
    add_place("metadata database", path, Path(path).read_bytes())
