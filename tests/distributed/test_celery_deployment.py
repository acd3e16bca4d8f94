"""A sweep on the Airflow that security teams deploy, with its components killed while it runs.

The deployment (:class:`~airflow_provider_liveresponse.testing.airflow_distributed.DistributedAirflow`): Airflow
3.3 with the CeleryExecutor, a Redis broker and Postgres (both started from their PyPI wheels), two Celery workers,
two schedulers, two triggerers, the API server and the DAG processor, against the MDE simulator at MDE's limits.

Two sweeps of 100 devices each, one after the other:

- ``example_liveresponse_fleet`` (one FleetLiveResponseOperator task) over a tag of 100 devices, evidence to a
  local folder. Chaos: the Celery worker running the sweep is SIGKILLed once a third of the devices are submitted
  (their evidence streaming beside the submissions), then started again; Airflow fails the task on its missed
  heartbeats and the retry, on either worker, reattaches to what MDE already has.
- ``distributed_mapped``: per-device mapped tasks, a deferrable ``LiveResponseOperator`` (pool of 25 slots that
  counts deferred tasks) then a ``LiveResponseToObjectStorageOperator``, over 100 other devices. Chaos: a worker
  SIGKILLed while tasks submit; the triggerer holding the most triggers SIGSTOPped past
  ``[triggerer] triggerer_health_check_threshold`` (the other takes its triggers, Airflow 3.3 kills its copies
  when it is continued: ``on_kill``), then SIGCONTed; one scheduler SIGKILLed for good; the other triggerer
  restarted; and the worker streaming a 300 MiB result SIGKILLed mid-transfer.

Checked: both runs succeed (retries allowed); exactly one action per device; no action cancelled; every manifest
verified against the simulator's digests; no object under a final name that a manifest does not vouch for; read
calls of the triggers' pollers per polling interval at most the number of triggerers; the whole deployment's
submissions per minute and reads per hour (printed); no token, client secret or result link in any log, XCom,
trigger row or anywhere in Postgres (``pg_dump`` of the whole database).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from packaging.version import Version

from airflow_provider_liveresponse.simulator.fleet import device_id
from airflow_provider_liveresponse.testing.airflow_system import Observations, Observer, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_liveresponse.simulator.server import Simulator
    from airflow_provider_liveresponse.testing.airflow_distributed import DistributedAirflow
    from airflow_provider_liveresponse.testing.servers import PostgresServer


def _airflow_version() -> Version:
    from airflow import __version__

    return Version(__version__)


pytestmark = [
    pytest.mark.distributed,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        _airflow_version() < Version("3.3"), reason="the distributed test runs on the newest Airflow line"
    ),
]

ROOT = Path(__file__).resolve().parents[2]
FLEET_DAG = "example_liveresponse_fleet"
MAPPED_DAG = "distributed_mapped"
POOL = "mde_live_response"
DEVICES = 100
#: Simulated seconds per real second: MDE's 10 submissions a minute are 100 a real minute.
SPEED = 10.0
#: The DAGs' polling interval, in simulated seconds (MDE_POLL_INTERVAL is this over SPEED).
POLL_INTERVAL = 30.0
HEALTH_THRESHOLD = 30
TRIGGERERS = 2
#: DistributedAirflow's Celery workers and the task slots of each.
WORKERS = 2
WORKER_CONCURRENCY = 4
#: The limiter's database on the deployment's Postgres server (the MDE connection's submission_limiter_conn_id).
LIMITER_DATABASE = "liveresponse_limiter"
#: A file to write the deployment's usage figures to, as JSON (set by ``bash scripts/bench.sh --only distributed``).
FIGURES_ENV = "LIVERESPONSE_DISTRIBUTED_FIGURES"
#: Simulated seconds each mapped device's script runs: sessions outlive the chaos steps that need deferred tasks.
SESSION_SECONDS = "150"
BIG_FILE = r"C:\evidence\memory.dmp"
BIG_SIZE = 300 * 1024 * 1024
SMALL_SIZE = 64 * 1024
MAPPED_HOSTS = [f"ws-{n:04d}.contoso.local" for n in range(1, DEVICES + 1)]

MAPPED_DAG_FILE = f'''
import datetime as dt
import os

from airflow.sdk import DAG

from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator
from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
    LiveResponseToObjectStorageOperator,
)

MACHINES = {[device_id(host) for host in MAPPED_HOSTS]!r}


def action_id(summary):
    return summary["id"]


with DAG(
    "{MAPPED_DAG}",
    schedule=None,
    catchup=False,
    max_active_tasks=64,
    default_args={{"retries": 3, "retry_delay": dt.timedelta(seconds=5)}},
):
    collect = LiveResponseOperator.partial(
        task_id="collect",
        commands=[RunScript("sleep.ps1", args={SESSION_SECONDS!r}), GetFile({BIG_FILE!r})],
        comment="IR-DIST: mapped triage",
        deferrable=True,
        poll_interval=float(os.environ["MDE_POLL_INTERVAL"]),
        pool="{POOL}",
    ).expand(machine_id=MACHINES)
    LiveResponseToObjectStorageOperator.partial(
        task_id="store", destination=os.environ["DISTRIBUTED_EVIDENCE"] + "/mapped"
    ).expand(action_id=collect.output.map(action_id))
'''


@dataclass
class Chaos:
    """What was done to the deployment, when (seconds since the run was triggered), and what it saw."""

    sim: Simulator
    events: list[tuple[float, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    #: The simulated moments at which a triggerer came back (SIGCONT) or started again.
    triggerer_returns: list[float] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.events.append((time.monotonic() - self.started, what))
        print(f"[chaos +{self.events[-1][0]:.0f} s] {what}", flush=True)

    def triggerer_returned(self, what: str) -> None:
        self.triggerer_returns.append(self.sim.clock.time())
        self.note(what)


@dataclass
class Sweep:
    """One DAG run and what was seen while it ran."""

    dag_id: str
    run_id: str
    state: str
    sim_start: float
    sim_end: float
    chaos: Chaos
    observations: Observations
    task_instances: list[dict[str, Any]]


@dataclass
class Deployment:
    """The simulator, Postgres and the distributed Airflow, and both sweeps once they ran."""

    sim: Simulator
    postgres: PostgresServer
    server: DistributedAirflow
    evidence: Path
    sweeps: dict[str, Sweep] = field(default_factory=dict)
    fleet_hosts: list[str] = field(default_factory=list)
    pg_dump: str = ""
    startup_seconds: float = 0.0
    turns: dict[str, float] = field(default_factory=dict)


def _start_run(server: DistributedAirflow, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    wait_until(f"{dag_id} to be parsed", lambda: server.api("GET", f"/dags/{dag_id}"), 300, server)
    server.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    created = server.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
    return str(created["dag_run_id"])


def _run_state(server: DistributedAirflow, dag_id: str, run_id: str) -> str:
    return str(server.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"])


def _tis(server: DistributedAirflow, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return server.query(
        "SELECT id::text AS id, task_id, map_index, state, try_number, trigger_id FROM task_instance "
        "WHERE dag_id = ? AND run_id = ? ORDER BY task_id, map_index",
        dag_id,
        run_id,
    )


def _wait_run(server: DistributedAirflow, dag_id: str, run_id: str, timeout: float) -> str:
    return str(
        wait_until(
            f"{dag_id} {run_id} to end",
            lambda: (state := _run_state(server, dag_id, run_id)) in ("success", "failed") and state,
            timeout,
            server,
        )
    )


def _kill_worker_running(deployment: Deployment, chaos: Chaos, ti_id: str, why: str) -> str:
    """SIGKILL the Celery worker whose process group runs ``ti_id``, then start it again."""
    server = deployment.server
    worker = wait_until(f"the worker running {ti_id}", lambda: server.worker_of(ti_id), 60, server)
    server.kill(worker)
    chaos.note(f"SIGKILL {worker} ({why})")
    time.sleep(2)
    server.start_component(worker)
    chaos.note(f"{worker} started again")
    return str(worker)


# -- the fleet sweep ---------------------------------------------------------------------------------------------
def _fleet_conf(evidence: Path) -> dict[str, Any]:
    """MDE's limits, a 15-minute pickup timeout, on the worker's real clock (the simulator runs SPEED times faster)."""
    return {
        "machine_tag": "sweep",
        "case": "IR-DIST",
        "destination": (evidence / "fleet").as_uri(),
        "pickup_timeout": 900 / SPEED,
        "offline_retries": 0,
        "submissions_per_minute": 10 * SPEED,
        "max_concurrent_sessions": 25,
        "read_calls_per_minute": int(100 * SPEED),
        "read_calls_per_hour": int(1500 * SPEED),
    }


def _fleet_sweep(deployment: Deployment) -> Sweep:
    server, sim = deployment.server, deployment.sim
    fleet_ids = {device_id(host) for host in deployment.fleet_hosts}
    chaos = Chaos(sim)
    sim_start = sim.clock.time()
    with Observer(server, POOL, interval=1.0) as seen:
        run_id = _start_run(server, FLEET_DAG, _fleet_conf(deployment.evidence))
        chaos.started = time.monotonic()
        wait_until(
            "a third of the fleet submitted",
            lambda: sum(a.machine_id in fleet_ids for a in list(sim.state.actions.values())) >= DEVICES // 3,
            600,
            server,
        )
        (sweep_ti,) = [ti for ti in _tis(server, FLEET_DAG, run_id) if ti["task_id"] == "sweep"]
        _kill_worker_running(deployment, chaos, sweep_ti["id"], "it runs the fleet sweep, a third submitted")
        state = _wait_run(server, FLEET_DAG, run_id, 900)
        chaos.note(f"fleet run ended: {state}")
    return Sweep(FLEET_DAG, run_id, state, sim_start, sim.clock.time(), chaos, seen, _tis(server, FLEET_DAG, run_id))


# -- the mapped sweep --------------------------------------------------------------------------------------------
def _deferred_triggers(server: DistributedAirflow, run_id: str) -> dict[int, int]:
    """Trigger id -> triggerer job id, for the run's deferred task instances whose trigger is assigned."""
    rows = server.query(
        'SELECT t.id, t.triggerer_id FROM task_instance AS ti JOIN "trigger" AS t ON t.id = ti.trigger_id '
        "WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.state = 'deferred' AND t.triggerer_id IS NOT NULL",
        MAPPED_DAG,
        run_id,
    )
    return {int(row["id"]): int(row["triggerer_id"]) for row in rows}


def _triggerer_jobs(server: DistributedAirflow) -> dict[int, Any]:
    rows = server.query("SELECT id, latest_heartbeat FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
    return {int(row["id"]): row["latest_heartbeat"] for row in rows}


def _partial_under(path: Path) -> int:
    """Bytes written so far below ``path`` (temporary files included)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _mapped_sweep(deployment: Deployment) -> Sweep:
    server, sim = deployment.server, deployment.sim
    chaos = Chaos(sim)
    sim_start = sim.clock.time()
    with Observer(server, POOL, interval=1.0) as seen:
        run_id = _start_run(server, MAPPED_DAG)
        chaos.started = time.monotonic()

        # 1. A worker dies while tasks submit.
        running = wait_until(
            "collect tasks running",
            lambda: [
                ti for ti in _tis(server, MAPPED_DAG, run_id) if ti["task_id"] == "collect" and ti["state"] == "running"
            ],
            600,
            server,
        )
        _kill_worker_running(deployment, chaos, running[0]["id"], "collect tasks are submitting")

        # 2. The triggerer holding the most triggers stops past the health threshold, then continues.
        held = wait_until(
            "15 deferred tasks", lambda: len(t := _deferred_triggers(server, run_id)) >= 15 and t, 600, server
        )
        job, count = Counter(held.values()).most_common(1)[0]
        holder = next((name for name, known in server.triggerer_jobs.items() if known == job), None)
        assert holder is not None, f"triggerer job {job} is not one this test started: {server.triggerer_jobs}"
        stopped = {trigger for trigger, owner in held.items() if owner == job}
        server.pause(holder)
        chaos.note(f"SIGSTOP {holder} (job {job}, holding {count} triggers)")
        try:
            taken = wait_until(
                f"the other triggerer to take {holder}'s triggers",
                lambda: [
                    trigger
                    for trigger, owner in _deferred_triggers(server, run_id).items()
                    if trigger in stopped and owner != job
                ],
                HEALTH_THRESHOLD + 120,
                server,
            )
            chaos.note(f"{len(taken)} of {holder}'s triggers were taken by the other triggerer")
        finally:
            server.resume(holder)
            chaos.triggerer_returned(f"SIGCONT {holder}")

        # 3. One scheduler dies for good.
        server.kill("scheduler-2")
        chaos.note("SIGKILL scheduler-2 (not started again)")

        # 4. The other triggerer is restarted (SIGTERM, as a rolling deploy does).
        other = next(name for name in server.triggerers if name != holder)
        server.kill(other, sig=signal.SIGTERM)
        chaos.note(f"SIGTERM {other}; it stopped")
        server.start_component(other)
        chaos.triggerer_returned(f"{other} started again")

        # 5. The worker streaming the 300 MiB result dies mid-transfer.
        target = deployment.evidence / "mapped" / device_id(MAPPED_HOSTS[0])
        store = wait_until(
            "the big result's transfer to stream",
            lambda: (
                [
                    ti
                    for ti in _tis(server, MAPPED_DAG, run_id)
                    if ti["task_id"] == "store" and ti["map_index"] == 0 and ti["state"] == "running"
                ]
                and _partial_under(target) > 16 * 1024 * 1024
            ),
            900,
            server,
        )
        assert store
        (store_ti,) = [
            ti for ti in _tis(server, MAPPED_DAG, run_id) if ti["task_id"] == "store" and ti["map_index"] == 0
        ]
        written = _partial_under(target)
        _kill_worker_running(
            deployment, chaos, store_ti["id"], f"it streams the 300 MiB result, {written >> 20} MiB written"
        )

        state = _wait_run(server, MAPPED_DAG, run_id, 1200)
        chaos.note(f"mapped run ended: {state}")
    return Sweep(MAPPED_DAG, run_id, state, sim_start, sim.clock.time(), chaos, seen, _tis(server, MAPPED_DAG, run_id))


# -- the deployment ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Start everything, run both sweeps with their chaos, stop everything; what the checks need."""
    from airflow_provider_liveresponse.simulator.estate import FleetSpec
    from airflow_provider_liveresponse.simulator.server import Simulator
    from airflow_provider_liveresponse.testing.airflow_distributed import DistributedAirflow
    from airflow_provider_liveresponse.testing.servers import PostgresServer, RedisServer

    base: Path = tmp_path_factory.mktemp("distributed")
    evidence = base / "evidence"
    evidence.mkdir()
    started = time.monotonic()
    sim = Simulator(speed=SPEED, state_dir=base / "simulator", fleet=FleetSpec(devices=DEVICES)).start()
    postgres = PostgresServer(base / "postgres")
    redis = RedisServer(base / "redis")
    server: DistributedAirflow | None = None
    try:
        postgres.start()
        redis.start()
        for number, host in enumerate(MAPPED_HOSTS):
            sim.state.add_device_file(device_id(host), BIG_FILE, BIG_SIZE if number == 0 else SMALL_SIZE)
        spec = FleetSpec(devices=DEVICES)
        fleet_hosts = [spec.host_name(k) for k in range(1, DEVICES + 1)]
        server = DistributedAirflow(
            base / "airflow-home",
            postgres,
            redis,
            triggerers=TRIGGERERS,
            workers=WORKERS,
            worker_concurrency=WORKER_CONCURRENCY,
            env={
                "AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT": _connection(sim),
                "AIRFLOW_CONN_LR_LIMITER": _limiter_connection(postgres),
                "MDE_POLL_INTERVAL": str(POLL_INTERVAL / SPEED),
                "DISTRIBUTED_EVIDENCE": evidence.as_uri(),
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_THRESHOLD),
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            },
        )
        server.prepare()
        server.cli("pools", "set", POOL, "25", "MDE live response", "--include-deferred")
        (server.dags_folder / f"{FLEET_DAG}.py").write_text((ROOT / "example_dags" / f"{FLEET_DAG}.py").read_text())
        (server.dags_folder / f"{MAPPED_DAG}.py").write_text(MAPPED_DAG_FILE)
        server.start(job_timeout=240)
        server.wait_healthy(300)
        server.wait_workers(300)
        run = Deployment(sim, postgres, server, evidence, fleet_hosts=fleet_hosts)
        run.startup_seconds = time.monotonic() - started
        print(f"deployment up in {run.startup_seconds:.0f} s", flush=True)
        run.sweeps[FLEET_DAG] = _fleet_sweep(run)
        run.sweeps[MAPPED_DAG] = _mapped_sweep(run)
        run.pg_dump = _pg_dump(postgres)
        run.turns = _turns_row(postgres)
        yield run
    finally:
        if server is not None:
            report = server.stop()
            assert not report.left, f"processes outlived Airflow: {report.left}"
        redis.stop()
        postgres.stop()
        sim.stop()


def _connection(sim: Simulator) -> str:
    """The simulator's connection with the README's recipe for this deployment: each of the two triggerers may use
    half of MDE's read limits (no fleet sweep runs beside the mapped tasks), and every worker's submissions take
    their turns in a Postgres database (:data:`LIMITER_DATABASE`)."""
    conn = sim.connection_dict()
    conn["extra"]["read_share"] = 1 / TRIGGERERS
    conn["extra"]["submission_limiter_conn_id"] = "lr_limiter"
    return json.dumps(conn)


def _limiter_connection(postgres: PostgresServer) -> str:
    """A postgres connection to a database of its own on the deployment's Postgres server, as the README says."""
    with postgres.connect("postgres") as db:
        db.autocommit = True
        with db.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {LIMITER_DATABASE}")
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": postgres.port,
            "login": postgres.user,
            "schema": LIMITER_DATABASE,
        }
    )


def _turns_row(postgres: PostgresServer) -> dict[str, float]:
    """The limiter's row of the simulator's tenant: turns handed out and 429s shared."""
    with postgres.connect(LIMITER_DATABASE) as db, db.cursor() as cursor:
        cursor.execute("SELECT turns, throttles FROM liveresponse_submission_turns")
        rows = cursor.fetchall()
    assert len(rows) == 1, rows
    return {"turns": rows[0][0], "throttles": rows[0][1]}


def _pg_dump(postgres: PostgresServer) -> str:
    """The whole metadata database as SQL text."""
    done = subprocess.run(
        [
            str(postgres.bin / "pg_dump"),
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres.port),
            "-U",
            postgres.user,
            "--data-only",
            postgres.database,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- the checks --------------------------------------------------------------------------------------------------
def test_both_sweeps_succeed(deployment: Deployment) -> None:
    for sweep in deployment.sweeps.values():
        print(f"{sweep.dag_id}: {sweep.state}; chaos: {sweep.chaos.events}")
        assert sweep.state == "success", deployment.server.tails(80)
        assert {ti["state"] for ti in sweep.task_instances} == {"success"}
    fleet = deployment.sweeps[FLEET_DAG]
    (sweep_ti,) = fleet.task_instances
    assert sweep_ti["try_number"] >= 2  # the killed try, then the retry that finished
    mapped = deployment.sweeps[MAPPED_DAG]
    assert len([ti for ti in mapped.task_instances if ti["task_id"] == "collect"]) == DEVICES
    assert any(ti["try_number"] >= 2 for ti in mapped.task_instances if ti["task_id"] == "store")


def test_exactly_one_action_per_device_and_none_cancelled(deployment: Deployment) -> None:
    sim = deployment.sim
    per_device = Counter(action.machine_id for action in sim.state.actions.values())
    devices = [device_id(host) for host in (*deployment.fleet_hosts, *MAPPED_HOSTS)]
    assert {machine: per_device[machine] for machine in devices if per_device[machine] != 1} == {}
    assert sum(per_device.values()) == 2 * DEVICES
    assert sim.state.counters.get("calls:cancel", 0) == 0
    assert {str(action.status) for action in sim.state.actions.values()} == {"Succeeded"}


def test_every_manifest_verifies_and_nothing_else_is_under_a_final_name(deployment: Deployment) -> None:
    for part in ("fleet", "mapped"):
        root = deployment.evidence / part
        done = subprocess.run(
            [sys.executable, "-m", "airflow_provider_liveresponse", "verify", root.as_uri(), "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        report = json.loads(done.stdout)
        assert done.returncode == 0, done.stdout + done.stderr
        manifests = list(root.rglob("manifest.json"))
        assert len(manifests) == DEVICES
        vouched: set[Path] = set(manifests)
        for manifest in manifests:
            document = json.loads(manifest.read_text())
            action_id = document["action"]["id"]
            for entry in document["files"]:
                vouched.add(manifest.parent / entry["path"])
                # The simulator's own digests of what it served: the evidence is what the device had.
                expected = deployment.sim.state.result_digest(action_id, entry["command"]["index"])
                assert entry["content"]["sha256"] == expected["raw"]["sha256"], (manifest, entry["path"])
        stored = {path for path in root.rglob("*") if path.is_file()}
        assert stored - vouched == set(), f"{part}: files no manifest vouches for: {sorted(stored - vouched)[:10]}"
        assert len(report.get("manifests", [])) == DEVICES


def test_the_pollers_read_at_most_once_per_interval_per_triggerer(deployment: Deployment) -> None:
    mapped = deployment.sweeps[MAPPED_DAG]
    polls = sorted(
        moment
        for moment, text in deployment.sim.state.action_listings
        if mapped.sim_start <= moment <= mapped.sim_end and text.startswith("id in (")
    )
    assert polls, "no poller listings seen"
    from airflow_provider_liveresponse.simulator.usage import peak_in_window

    # Each triggerer's poller lists every action it waits for (at most 25 here: one page) once per interval. A
    # triggerer that comes back (SIGCONT, or started again) polls at once, its interval being over: the interval
    # after a return may hold that one poll more. Here the two returns are seconds apart (SIGCONT, then the other
    # triggerer's restart), so one interval may hold both.
    window = POLL_INTERVAL * 0.9
    returns = mapped.chaos.triggerer_returns
    assert len(returns) == 2
    near_return = [any(back - window <= moment <= back + POLL_INTERVAL for back in returns) for moment in polls]
    steady = [moment for moment, near in zip(polls, near_return, strict=True) if not near]
    peak = peak_in_window(steady, window)
    around = peak_in_window(polls, window)
    print(
        f"poller listings: {len(polls)}; the most in any {window:g} simulated s: {peak} "
        f"({around} counting the interval after each of the {len(returns)} returns of a triggerer)"
    )
    assert peak <= TRIGGERERS
    assert around <= TRIGGERERS + len(returns)


def test_the_deployment_stays_inside_the_tenants_limits(deployment: Deployment) -> None:
    sim = deployment.sim
    start = min(s.sim_start for s in deployment.sweeps.values())
    usage = sim.state.usage.report(sim.clock.time(), since=start)["apis"]
    rows = []
    for api, figures in usage.items():
        rows.append(
            f"{api}: {figures['calls']} calls, {figures['throttled']} 429s, "
            f"peak {figures['peak_per_minute']} a minute, {figures['peak_per_hour']} an hour"
        )
    print("whole deployment, simulated time:\n  " + "\n  ".join(rows))
    for api in ("machineactions", "link", "machines"):
        assert usage[api]["peak_per_hour"] <= 1500, rows
        assert usage[api]["throttled"] == 0, rows
    submissions = usage["runliveresponse"]
    turns = deployment.turns
    print(
        f"submission turns (Postgres, shared by {WORKERS} workers x {WORKER_CONCURRENCY} slots): "
        f"{turns['turns']} handed out for {submissions['calls']} submissions, {turns['throttles']} 429s shared"
    )
    # Every POST of every worker took a turn first (a turn given back, or taken by a worker that was killed before
    # it sent, is one more turn than submissions).
    assert turns["turns"] >= submissions["calls"] > 0, rows
    assert turns["throttles"] == submissions["throttled"], rows
    # Turns keep the deployment at 10 a minute; MDE may still count one early when a request's latency is off by
    # more than a simulated second (a tenth of a real second here, under chaos on a shared machine): at most 2%.
    assert submissions["throttled"] <= 0.02 * submissions["calls"], rows
    figures = os.environ.get(FIGURES_ENV)
    if figures:  # benchmarks/distributed.py reads them
        Path(figures).write_text(json.dumps({"apis": usage, "turns": turns}))


def _secrets(sim: Simulator) -> list[str]:
    found = [sim.client_secret, *sim.state.issued_tokens]
    for link in sim.state.issued_links:
        found.append(link)
        found.extend(value for key, value in parse_qsl(urlsplit(link).query) if key.lower() == "sig")
    return [value for value in found if value]


def test_no_secret_in_logs_xcom_triggers_or_postgres(deployment: Deployment) -> None:
    sim, server = deployment.sim, deployment.server
    secrets = _secrets(sim)
    assert len(secrets) > 2 * DEVICES  # a link per result at least
    places: dict[str, str] = {"pg_dump": deployment.pg_dump}
    for path in server.logs_folder.rglob("*"):
        if path.is_file():
            places[str(path.relative_to(server.home))] = path.read_text(errors="replace")
    for sweep in deployment.sweeps.values():
        for sighting in sweep.observations.triggers.values():
            places[f"trigger {sighting.trigger_id}"] = server.decrypt(sighting.kwargs)
    assert len(places) > 100
    leaks = [(where, secret[:12]) for where, text in places.items() for secret in secrets if secret in text]
    assert leaks == []
