"""Deployment-wide submission turns (hooks/submission_turns.py): on SQLite files and a real Postgres, from several
processes at once, on a handed clock; and through the hook against the simulator."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError, LiveResponseError
from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.hooks.submission_turns import JITTER, PER_MINUTE, SLACK, TABLE, SubmissionTurns
from airflow_provider_liveresponse.models import RunScript
from airflow_provider_liveresponse.simulator.fleet import device_id

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_provider_liveresponse.simulator.server import Simulator

SPACING = (60 + JITTER) / PER_MINUTE
TENANT = "api.security.microsoft.com/contoso"


class Clock:
    """A handed clock: ``sleep`` moves it on (plus ``late`` seconds the first ``late_times`` times)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.late = 0.0
        self.late_times = 0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.late_times:
            self.late_times -= 1
            self.now += self.late


def turns_on(url: str, clock: Clock, tenant: str = TENANT, speed: float = 1.0) -> SubmissionTurns:
    return SubmissionTurns(create_engine(url), tenant, speed=speed, clock=clock.time, sleep=clock.sleep)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'turns.db'}"


def test_turns_are_spaced_for_every_process_that_shares_the_database(sqlite_url: str) -> None:
    clock = Clock()
    worker_1, worker_2 = turns_on(sqlite_url, clock), turns_on(sqlite_url, clock)
    turns = [worker_1.reserve("a"), worker_2.reserve("b"), worker_2.reserve("c"), worker_1.reserve("d")]
    start = clock.now
    assert turns == pytest.approx([start, start + SPACING, start + 2 * SPACING, start + 3 * SPACING])
    # Eleven turns in a row span more than a minute plus the slack and the latency spread MDE may see.
    assert pytest.approx(60 + JITTER) == 10 * SPACING
    assert 10 * SPACING - SLACK > 60
    assert worker_1.counts()["turns"] == 4


def test_tenants_take_turns_apart(sqlite_url: str) -> None:
    clock = Clock()
    first = turns_on(sqlite_url, clock)
    other = turns_on(sqlite_url, clock, tenant="api-gov.securitycenter.microsoft.us/x")
    assert first.reserve("a") == other.reserve("b") == clock.now


def test_an_idle_tenant_gets_its_turn_at_once_and_a_fast_simulator_shortens_the_spacing(sqlite_url: str) -> None:
    clock = Clock()
    turns = turns_on(sqlite_url, clock, speed=10)
    assert turns.reserve("a") == clock.now
    clock.now += 3600
    assert turns.reserve("b") == clock.now
    assert turns.reserve("c") == pytest.approx(clock.now + SPACING / 10)


def test_take_waits_for_the_turn(sqlite_url: str) -> None:
    clock = Clock()
    turns = turns_on(sqlite_url, clock)
    start = clock.now
    assert [turns.take("a") for _ in range(3)] == pytest.approx([start, start + SPACING, start + 2 * SPACING])
    assert clock.sleeps == pytest.approx([SPACING, SPACING])


def test_a_late_turn_is_given_back_and_another_taken(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    turns = turns_on(sqlite_url, clock)
    start = clock.now
    turns.reserve("someone else")
    clock.late, clock.late_times = 2 * SLACK, 1  # the process woke up 2 s after its turn (a GC pause, a loaded host)
    turn = turns.take("Live response on machine m1")
    assert turn == pytest.approx(start + 2 * SPACING)
    assert clock.now - turn <= SLACK
    assert turns.counts()["turns"] == 3
    assert "Live response on machine m1: its submission turn came 2.00 s late" in caplog.text
    assert "taking another" in caplog.text


def test_a_429_pauses_every_process_until_retry_after(sqlite_url: str) -> None:
    clock = Clock()
    worker_1, worker_2 = turns_on(sqlite_url, clock), turns_on(sqlite_url, clock)
    worker_1.reserve("a")
    worker_1.throttled("a", 45.0)
    assert worker_2.reserve("b") == pytest.approx(clock.now + 45.0)
    worker_2.throttled("b", 10.0)  # a shorter pause does not cut the longer one
    assert worker_1.counts()["paused_until"] == pytest.approx(clock.now + 45.0)
    assert worker_1.counts()["throttles"] == 2
    worker_1.throttled("c", None)  # no Retry-After: one spacing
    clock.now += 100
    worker_1.throttled("c", None)
    assert worker_1.counts()["paused_until"] == pytest.approx(clock.now + SPACING)


def test_an_unreachable_database_sends_nothing_and_says_what_to_check(tmp_path: Path) -> None:
    turns = turns_on(f"sqlite:///{tmp_path / 'missing' / 'turns.db'}", Clock())
    with pytest.raises(LiveResponseError) as info:
        turns.take("Live response on machine m1")
    message = str(info.value)
    assert message.startswith("Live response on machine m1 was not sent: the submission limiter database")
    assert "OperationalError" in message
    assert "Nothing was submitted" in message
    assert "submission_limiter_conn_id" in message


# -- several processes at once -------------------------------------------------------------------------------


def _reserve_many(url: str, now: float, count: int, results: Any) -> None:
    clock = Clock(now)  # every process reads the same instant: only the database orders them
    turns = turns_on(url, clock)
    results.put([turns.reserve(f"process turn {k}") for k in range(count)])


def _race(url: str, processes: int = 4, each: int = 25) -> list[float]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    now = 2_000_000.0
    workers = [context.Process(target=_reserve_many, args=(url, now, each, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    taken = [turn for _ in workers for turn in results.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return sorted(taken)


def _assert_one_schedule(taken: list[float], start: float = 2_000_000.0) -> None:
    """Every turn handed out once: exactly the schedule start, start + spacing, ... with no turn twice."""
    assert taken == pytest.approx([start + k * SPACING for k in range(len(taken))])


def test_processes_racing_on_one_sqlite_file_never_share_a_turn(sqlite_url: str) -> None:
    taken = _race(sqlite_url)
    assert len(taken) == 100
    _assert_one_schedule(taken)
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        assert db.execute(f"SELECT turns FROM {TABLE}").fetchone() == (100,)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("psycopg2")
    from airflow_provider_liveresponse.testing.servers import PostgresServer

    server = PostgresServer(tmp_path_factory.mktemp("postgres"), database="limiter").start()
    try:
        yield server.url
    finally:
        server.stop()


def test_processes_racing_on_postgres_never_share_a_turn(postgres: str) -> None:
    taken = _race(postgres)
    assert len(taken) == 100
    _assert_one_schedule(taken)
    assert turns_on(postgres, Clock()).counts()["turns"] == 100


# -- through the hook ----------------------------------------------------------------------------------------


def _limited_connection(monkeypatch: pytest.MonkeyPatch, simulator: Simulator, limiter: Path) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_LR_LIMITER", json.dumps({"conn_type": "sqlite", "host": str(limiter)}))
    extra = {**simulator.connection_extra(), "submission_limiter_conn_id": "lr_limiter"}
    data = {"conn_type": "mde_live_response", "login": simulator.client_id, "password": simulator.client_secret}
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIMITED", json.dumps({**data, "extra": extra}))
    return "mde_limited"


def test_every_submission_and_every_resend_after_a_429_takes_a_turn(
    simulator: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn_id = _limited_connection(monkeypatch, simulator, tmp_path / "limiter.db")
    clock = Clock()
    hook = LiveResponseHook(conn_id, sleep=clock.sleep)
    turns = hook.submission_turns
    assert turns is not None
    turns.clock, turns.sleep = clock.time, clock.sleep
    speed = simulator.clock.speed
    machines = [device_id(f"ws-000{k}.contoso.local") for k in (1, 2, 3)]

    for machine in machines[:2]:
        hook.run_live_response(machine, [RunScript("triage.ps1")], comment="turns")
    assert clock.sleeps == pytest.approx([SPACING / speed])

    simulator.state.faults.set("runliveresponse", throttle_next=1)
    paused_from = clock.now
    hook.run_live_response(machines[2], [RunScript("triage.ps1")], comment="turns after a 429")
    counts = turns.counts()
    assert counts["turns"] == 4  # 2 + the 429'd attempt + its resend
    assert counts["throttles"] == 1
    assert counts["paused_until"] > paused_from
    assert counts["last_turn"] >= counts["paused_until"]  # the resend waited for the pause every process sees
    assert simulator.state.counters["actions_created"] == 3

    other_process = turns_on(f"sqlite:///{tmp_path / 'limiter.db'}", clock, hook.settings.tenant_key, speed)
    assert other_process.reserve("next") == pytest.approx(max(clock.now, counts["last_turn"] + SPACING / speed))


def test_reads_take_no_turn(simulator: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conn_id = _limited_connection(monkeypatch, simulator, tmp_path / "limiter.db")
    hook = LiveResponseHook(conn_id, sleep=lambda s: None)
    hook.get_machine(device_id("ws-0001.contoso.local"))
    assert not (tmp_path / "limiter.db").exists()


def test_a_limiter_connection_of_another_type_is_refused_before_any_submission(
    simulator: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn_id = _limited_connection(monkeypatch, simulator, tmp_path / "limiter.db")
    monkeypatch.setenv("AIRFLOW_CONN_LR_LIMITER", json.dumps({"conn_type": "http", "host": "example.com"}))
    hook = LiveResponseHook(conn_id, sleep=lambda s: None)
    with pytest.raises(LiveResponseConfigError, match=r"Connection 'lr_limiter' .* is of type 'http'"):
        hook.run_live_response(device_id("ws-0001.contoso.local"), [RunScript("triage.ps1")], comment="x")
    assert simulator.state.counters["calls:runliveresponse"] == 0
