"""Deployment-wide pacing of ``runliveresponse``: turns taken in a SQL database that every worker reaches.

MDE allows a tenant 10 submissions a minute, counted over every process of a deployment. Per-device mapped tasks
submit from many Celery workers or pods at once, and a limiter in one process cannot see the others. When the MDE
connection's extra field ``submission_limiter_conn_id`` names an Airflow connection to a database (Postgres, or
SQLite for the processes of one machine), every POST of ``runliveresponse`` (and every resend after a 429) first
takes a *turn* there: one row per tenant holds the last turn handed out and a pause, and a turn is reserved in
one short transaction under that row's lock, so two processes never get the same turn:

- turns are ``(60 + JITTER) / 10`` seconds of MDE's clock apart; a turn is used within ``SLACK`` seconds of its
  time or given back (the submission takes a new one), so any 11 consecutive submissions leave over 61 seconds
  apart and reach MDE at least a minute apart while their latencies differ by less than a second;
- a 429 pauses every process: the Retry-After is written to the row, and no turn is handed out before it ends.

The table is created on first use. Times are the workers' wall clocks (UNIX seconds), so the workers' clocks must
agree to well under a second (NTP). When the database cannot be reached the submission is not sent: the task
fails before any API call, with a message that says what to check, and its retry takes a turn again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError, LiveResponseError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

#: MDE's submissions a minute per tenant.
PER_MINUTE = 10
#: Seconds of MDE's clock that every 10 turns' minute is stretched by (so 9.7 turns a minute at most): room for a
#: late turn (``SLACK``) and for the spread of request latencies and of the workers' clocks.
JITTER = 2.0
#: A turn not used within this many seconds of MDE's clock after its time is given back.
SLACK = 1.0
TABLE = "liveresponse_submission_turns"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS liveresponse_submission_turns ("
    " tenant VARCHAR(300) PRIMARY KEY,"
    " last_turn DOUBLE PRECISION NOT NULL,"
    " paused_until DOUBLE PRECISION NOT NULL,"
    " turns BIGINT NOT NULL,"
    " throttles BIGINT NOT NULL)"
)
_DRIVERS = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2", "sqlite": "sqlite"}


class SubmissionTurns:
    """Turns for submissions to one tenant, shared through ``engine`` by every process that uses it.

    :param engine: a SQLAlchemy engine on the shared database.
    :param tenant: the key of the tenant's row (the API host and tenant id).
    :param speed: how many times faster than real time MDE's clock runs (1; the bundled simulator sets more).
    :param clock: wall-clock seconds (tests hand in their own); ``sleep`` waits.
    """

    def __init__(
        self,
        engine: Engine,
        tenant: str,
        *,
        speed: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        where: str = "the submission limiter database",
    ) -> None:
        self.engine = engine
        self.tenant = tenant
        self.spacing = (60.0 + JITTER) / PER_MINUTE / validation.duration(speed, "speed")
        self.slack = SLACK / speed
        self.clock = clock
        self.sleep = sleep
        self.where = where
        self._ready = False

    def take(self, what: str) -> float:
        """Wait for a turn and return its time; ``what`` (the submission) names it in the log and in errors."""
        given_back = 0
        while True:
            turn = self.reserve(what)
            delay = turn - self.clock()
            if delay > 0:
                if delay > 5 * self.spacing:
                    log.info("%s: waiting %.1f s for its submission turn (shared by the deployment)", what, delay)
                self.sleep(delay)
            late = self.clock() - turn
            if late <= self.slack:
                return turn
            given_back += 1
            log.warning(
                "%s: its submission turn came %.2f s late (more than %.2f s); taking another so that MDE never "
                "sees more than %d in a minute (%d given back)",
                what,
                late,
                self.slack,
                PER_MINUTE,
                given_back,
            )

    def reserve(self, what: str) -> float:
        """The next free turn, handed to this caller alone (one transaction under the tenant row's lock)."""
        from sqlalchemy import text

        self._ensure_table(what)
        try:
            with self.engine.begin() as db:
                # The UPDATE takes the row's lock first (Postgres: row lock; SQLite: the database's write lock),
                # so the read below and the write after it are one step for every other process.
                take_lock = text("UPDATE liveresponse_submission_turns SET turns = turns + 1 WHERE tenant = :tenant")
                if not db.execute(take_lock, {"tenant": self.tenant}).rowcount:
                    # The tenant's first turn: its row, inserted once whoever races for it, then locked.
                    db.execute(
                        text(
                            "INSERT INTO liveresponse_submission_turns "
                            "(tenant, last_turn, paused_until, turns, throttles) VALUES (:tenant, 0, 0, 0, 0) "
                            "ON CONFLICT (tenant) DO NOTHING"
                        ),
                        {"tenant": self.tenant},
                    )
                    db.execute(take_lock, {"tenant": self.tenant})
                now = self.clock()  # read under the lock: a wait for it does not make the turn late
                last, paused = db.execute(
                    text("SELECT last_turn, paused_until FROM liveresponse_submission_turns WHERE tenant = :tenant"),
                    {"tenant": self.tenant},
                ).one()
                turn = max(now, float(paused), float(last) + self.spacing)
                db.execute(
                    text("UPDATE liveresponse_submission_turns SET last_turn = :turn WHERE tenant = :tenant"),
                    {"turn": turn, "tenant": self.tenant},
                )
        except Exception as exc:
            raise self._unreachable(what, exc) from None
        return turn

    def throttled(self, what: str, retry_after: float | None) -> None:
        """MDE answered 429: no process gets a turn before Retry-After (one turn's spacing when it gave none)."""
        from sqlalchemy import text

        pause = retry_after if retry_after is not None and retry_after > 0 else self.spacing
        until = self.clock() + pause
        try:
            with self.engine.begin() as db:
                db.execute(
                    text(
                        "UPDATE liveresponse_submission_turns SET throttles = throttles + 1, "
                        "paused_until = CASE WHEN paused_until < :until THEN :until ELSE paused_until END "
                        "WHERE tenant = :tenant"
                    ),
                    {"until": until, "tenant": self.tenant},
                )
        except Exception as exc:
            # The call's own retry still waits Retry-After; only the other processes miss the pause.
            log.warning("%s: could not share MDE's 429 pause: %s", what, self._unreachable(what, exc))

    def counts(self) -> dict[str, float]:
        """The tenant row: turns handed out, 429s shared, the last turn and the pause (for figures and tests)."""
        from sqlalchemy import text

        self._ensure_table("counts")
        with self.engine.connect() as db:
            row = db.execute(
                text(
                    "SELECT turns, throttles, last_turn, paused_until FROM liveresponse_submission_turns "
                    "WHERE tenant = :tenant"
                ),
                {"tenant": self.tenant},
            ).one_or_none()
        if row is None:
            return {"turns": 0, "throttles": 0, "last_turn": 0.0, "paused_until": 0.0}
        return {"turns": row[0], "throttles": row[1], "last_turn": float(row[2]), "paused_until": float(row[3])}

    def _ensure_table(self, what: str) -> None:
        if self._ready:
            return
        from sqlalchemy import text

        for attempt in (1, 2):
            try:
                with self.engine.begin() as db:
                    db.execute(text(_SCHEMA))
                break
            except Exception as exc:
                # Two processes creating the table at once: Postgres refuses the second (pg_type's unique key).
                if attempt == 2:
                    raise self._unreachable(what, exc) from None
        self._ready = True

    def _unreachable(self, what: str, exc: BaseException) -> LiveResponseError:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return LiveResponseError(
            f"{what} was not sent: {self.where} did not hand out a submission turn ({type(exc).__name__}: "
            f"{reason[:300]}). Nothing was submitted; the task's retry tries again. Check that every worker "
            "reaches that database, or remove the MDE connection's extra field submission_limiter_conn_id to pace "
            "submissions by MDE's 429 answers alone."
        )


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(conn_id: str) -> Engine:
    """A SQLAlchemy engine on the Airflow connection ``conn_id`` (postgres or sqlite), one per database and
    process (the connection is read each time, so a changed connection gets its own engine)."""
    from sqlalchemy import create_engine

    url, options = _engine_url(conn_id)
    key = str(url) if isinstance(url, str) else url.render_as_string(hide_password=False)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_engine(url, **options)
        return engine


def _engine_url(conn_id: str) -> tuple[Any, dict[str, Any]]:
    from sqlalchemy.engine import URL

    from airflow_provider_liveresponse.secrets import mask

    conn = _get_connection(conn_id)
    conn_type = (conn.conn_type or "").lower()
    driver = _DRIVERS.get(conn_type)
    if driver is None:
        raise LiveResponseConfigError(
            f"Connection {conn_id!r} (the MDE connection's extra field submission_limiter_conn_id) is of type "
            f"{conn.conn_type!r}; the submission limiter needs a database every worker reaches: type postgres "
            "(host, port, login, password, schema = the database), or sqlite (host = the file) for the processes "
            "of one machine."
        )
    if driver == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise LiveResponseConfigError(
                f"Connection {conn_id!r} (submission_limiter_conn_id) is a sqlite connection without a file: "
                "set host to the database file's path."
            )
        # A busy database waits for the lock (a turn's transaction takes milliseconds) instead of failing.
        return f"sqlite:///{path}", {"connect_args": {"timeout": 30}}
    if conn.password:
        mask(conn.password)
    url = URL.create(
        driver,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )
    return url, {"pool_pre_ping": True, "pool_size": 1, "max_overflow": 2, "connect_args": {"connect_timeout": 10}}


def _get_connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise LiveResponseConfigError(
            f"Connection {conn_id!r}, named by the MDE connection's extra field submission_limiter_conn_id, could "
            f"not be read ({type(exc).__name__}). Create it (a postgres connection every worker reaches), or "
            "remove that extra field."
        ) from None


__all__ = ["JITTER", "PER_MINUTE", "SLACK", "SubmissionTurns", "engine_for"]
