"""Benchmark 4 (worker economy) on a real Airflow, and the deployment helpers benchmark 3 (:mod:`.fleet_scale`)
uses: API server, scheduler, triggerer and
DAG processor as separate processes (SQLite, LocalExecutor), started by the system test's harness
(:mod:`airflow_provider_liveresponse.testing.airflow_system`), DAGs triggered through the REST API, against the
MDE simulator.

``workers``: one 10-minute action (``sleep.ps1`` with ``Args=590``, plus pickup) waited for by a deferrable
task and, at the same time on another device, by a poke-mode task; the simulator runs at 60x (the action takes
about 10 real seconds). The metadata database is sampled every 0.1 s and each task instance's time in
``running`` (the state that holds a worker slot) is summed: worker-slot seconds per action, in real seconds.

Both feed campaign 5 (secrets) with their logs, XComs, rendered fields, trigger rows and metadata database.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.core import Result, benchmark
from benchmarks.secrets_audit import add_place, add_simulator

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import ModuleType

    from airflow_provider_liveresponse.simulator.server import Simulator

ROOT = Path(__file__).resolve().parents[1]
POOL = "mde_live_response"
WORKERS_SPEED = 60.0


def _harness() -> ModuleType:
    from airflow_provider_liveresponse.testing import airflow_system

    return airflow_system


@contextlib.contextmanager
def _deployment(base: Path, sim: Simulator, poll_interval: float, dags: dict[str, str]) -> Iterator[Any]:
    system = _harness()
    server = system.AirflowServer(
        base / "airflow-home",
        env={"AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT": sim.connection_json(), "MDE_POLL_INTERVAL": str(poll_interval)},
        parallelism=8,
    )
    try:
        server.dags_folder.mkdir(parents=True, exist_ok=True)
        for name, source in dags.items():
            (server.dags_folder / name).write_text(source)
        server.prepare()
        server.cli("pools", "set", POOL, "25", "MDE live response (benchmark)", "--include-deferred")
        server.start()
        server.wait_healthy(240)
        yield server
    finally:
        server.stop()
        _collect(server, sim)


def _collect(server: Any, sim: Simulator) -> None:
    """Logs, XComs, rendered fields, triggers and the database of a deployment, for campaign 5."""
    for path in server.logs_folder.rglob("*"):
        if path.is_file():
            add_place("Airflow log", str(path.relative_to(server.home)), path.read_bytes())
    if server.db_file.is_file():
        for table in ("xcom", "rendered_task_instance_fields", "trigger"):
            with contextlib.suppress(Exception):
                add_place(table, "real Airflow", repr(server.query(f'SELECT * FROM "{table}"')))
        with contextlib.suppress(Exception):
            for row in server.query('SELECT kwargs FROM "trigger"'):
                add_place("trigger (decrypted)", "real Airflow", server.decrypt(row["kwargs"]))
        add_place("metadata database", "real Airflow", server.db_file.read_bytes())


def _wait_parsed(server: Any, dag_id: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {dag["dag_id"] for dag in server.api("GET", "/dags", params={"limit": 100})["dags"]}
        if dag_id in found:
            return
        time.sleep(1)
    raise RuntimeError(f"the DAG processor did not parse {dag_id} in {timeout:.0f} s")


def _trigger(server: Any, dag_id: str, conf: dict[str, Any]) -> str:
    server.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    created = server.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    return str(created["dag_run_id"])


def _wait_run(server: Any, dag_id: str, run_id: str, timeout: float) -> str:
    from urllib.parse import quote

    deadline = time.monotonic() + timeout
    state = "queued"
    while time.monotonic() < deadline:
        state = server.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"]
        if state in ("success", "failed"):
            return str(state)
        time.sleep(0.5)
    return str(state)


def _task_instances(server: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from urllib.parse import quote

    path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
    found: list[dict[str, Any]] = []
    while True:
        page = server.api("GET", path, params={"limit": 100, "offset": len(found)})["task_instances"]
        found.extend(page)
        if len(page) < 100:
            return found


WORKERS_DAG = """
from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_liveresponse.models import RunScript
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator

with DAG("bench_worker_economy", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
    for task_id, host, deferrable in (("deferrable", "ws-0201", True), ("poke", "ws-0202", False)):
        LiveResponseOperator(
            task_id=task_id,
            computer_dns_name=f"{host}.contoso.local",
            commands=[RunScript("sleep.ps1", args="590")],
            poll_interval=POLL,
            deferrable=deferrable,
            retries=0,
        )
"""


class _RunningTime:
    """Sums the real seconds each task instance of a DAG run spends in ``running``, sampled from the database."""

    def __init__(self, server: Any, dag_id: str, interval: float = 0.1) -> None:
        self.server = server
        self.dag_id = dag_id
        self.interval = interval
        self.seconds: dict[str, float] = {}
        self.deferred: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _RunningTime:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            step, last = now - last, now
            try:
                rows = self.server.query("SELECT task_id, state FROM task_instance WHERE dag_id = ?", self.dag_id)
            except Exception:
                continue
            for row in rows:
                if row["state"] == "running":
                    self.seconds[row["task_id"]] = self.seconds.get(row["task_id"], 0.0) + step
                elif row["state"] == "deferred":
                    self.deferred[row["task_id"]] = self.deferred.get(row["task_id"], 0.0) + step


@benchmark(
    "workers",
    "Worker economy (4): worker-slot seconds per 10-minute action, deferrable vs poke mode",
    sizes=(590,),
    sizes_mean="seconds the script sleeps (simulated)",
)
def workers(sizes: Sequence[int], quick: bool) -> Result:
    from airflow_provider_liveresponse.simulator.server import Simulator

    result = Result()
    seconds = sizes[0]
    poll = 1.0
    source = WORKERS_DAG.replace("POLL", repr(poll)).replace('args="590"', f'args="{seconds}"')
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as scratch_text:
        scratch = Path(scratch_text)
        sim = Simulator(speed=WORKERS_SPEED, state_dir=scratch / "simulator").start()
        try:
            with _deployment(scratch, sim, poll, {"bench_worker_economy.py": source}) as server:
                _wait_parsed(server, "bench_worker_economy")
                with _RunningTime(server, "bench_worker_economy") as sampled:
                    sim_start = sim.clock.time()
                    run_id = _trigger(server, "bench_worker_economy", {})
                    state = _wait_run(server, "bench_worker_economy", run_id, seconds / WORKERS_SPEED * 5 + 300)
                    action_real = (sim.clock.time() - sim_start) / WORKERS_SPEED
                tis = {ti["task_id"]: ti for ti in _task_instances(server, "bench_worker_economy", run_id)}
            add_simulator(sim, "workers")
        finally:
            sim.stop()
    table = result.table(
        f"One {seconds + 5:g} s action (simulated; {(seconds + 5) / WORKERS_SPEED:.0f} real s at {WORKERS_SPEED:g}x), "
        f"poll every {poll:g} real s",
        ["mode", "state", "running (worker slot)", "deferred (triggerer)", "real seconds of the run"],
    )
    for mode in ("deferrable", "poke"):
        table.add(
            mode,
            tis[mode]["state"],
            f"{sampled.seconds.get(mode, 0.0):.1f} s",
            f"{sampled.deferred.get(mode, 0.0):.1f} s",
            f"{action_real:.0f}",
        )
    deferrable, poke = sampled.seconds.get("deferrable", 0.0), sampled.seconds.get("poke", 0.0)
    ratio = deferrable / poke if poke else float("nan")
    result.check(
        "worker-slot seconds, deferrable / poke",
        f"{deferrable:.1f} s / {poke:.1f} s = {ratio:.2f}",
        "deferrable well below poke (< 0.5)",
        state == "success" and ratio < 0.5,
    )
    result.notes.append(
        "real seconds: at 1x a deferrable task holds a worker for the same few seconds (submit, then resume), "
        "a poke task for the whole action (about 600 s); sampled every 0.1 s"
    )
    return result
