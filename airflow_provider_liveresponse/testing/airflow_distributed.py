"""A distributed Airflow for system tests: CeleryExecutor with a Redis broker, Postgres, and every component twice.

:class:`DistributedAirflow` is the deployment security teams run, on one machine: the API server, the DAG
processor, ``schedulers`` schedulers, ``triggerers`` triggerers and ``workers`` Celery workers, each its own
process group, on a :class:`~airflow_provider_liveresponse.testing.servers.PostgresServer` metadata database and
a :class:`~airflow_provider_liveresponse.testing.servers.RedisServer` broker (the Celery result backend is the
same Postgres). It can kill, pause and restart any component (:meth:`kill`, :meth:`pause`, :meth:`resume`,
:meth:`start_component`) and reads the metadata database with psycopg2.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.testing.airflow_system import AirflowError, AirflowServer, free_port

if TYPE_CHECKING:
    from airflow_provider_liveresponse.testing.servers import PostgresServer, RedisServer

#: A Celery worker's log line once it consumes tasks (``worker-1@host ready.``).
WORKER_READY = re.compile(r"\S+@\S+ ready\.")


class DistributedAirflow(AirflowServer):
    """One CeleryExecutor deployment in ``home`` on ``postgres`` and ``redis`` (both already started).

    Settings that make a killed component's work come back within a test's minutes, not Airflow's defaults of
    hours: ``[scheduler] task_instance_heartbeat_timeout`` (a task whose worker died is failed, and retried, after
    it), ``task_queued_timeout`` (a task whose Celery message was lost is queued again), and Redis's visibility
    timeout (an unacknowledged message goes to another worker). ``env`` adds to and overrides them.
    """

    def __init__(
        self,
        home: Path,
        postgres: PostgresServer,
        redis: RedisServer,
        *,
        env: dict[str, str] | None = None,
        schedulers: int = 2,
        triggerers: int = 2,
        workers: int = 2,
        worker_concurrency: int = 4,
        heartbeat_timeout: int = 45,
    ) -> None:
        self.postgres = postgres
        self.redis = redis
        deployment = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(max(32, workers * worker_concurrency * 2)),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "3",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "10",
            "AIRFLOW__CELERY__BROKER_URL": redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "300",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(heartbeat_timeout),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "180",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "60",
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret(64),
            **(env or {}),
        }
        super().__init__(home, env=deployment, triggerers=triggerers)
        for number in range(2, schedulers + 1):
            self.commands[f"scheduler-{number}"] = "scheduler"
        for number in range(1, workers + 1):
            name = f"worker-{number}"
            self.commands[name] = f"celery worker --celery-hostname {name}@%h --concurrency {worker_concurrency}"
            self.component_env[name] = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
        self.workers = [f"worker-{number}" for number in range(1, workers + 1)]
        self.schedulers = ["scheduler", *(f"scheduler-{number}" for number in range(2, schedulers + 1))]
        self.triggerers = [name for name, command in self.commands.items() if command == "triggerer"]
        import psycopg2

        self.query_errors = (psycopg2.Error,)

    def wait_workers(self, timeout: float, names: list[str] | None = None) -> None:
        """Wait until each Celery worker (of ``names``, default all) logged that it is ready."""
        deadline = time.monotonic() + timeout
        pending = list(names or self.workers)
        while pending and time.monotonic() < deadline:
            self._check_alive()
            pending = [name for name in pending if not WORKER_READY.search(self.component_log(name))]
            time.sleep(0.5)
        if pending:
            raise AirflowError(f"Celery workers {pending} were not ready after {timeout:.0f} s\n{self.tails()}")

    def component_log(self, name: str) -> str:
        """Everything a component has written so far."""
        path = self.component_logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Read the metadata database (Postgres; ``?`` placeholders, as for SQLite)."""
        from psycopg2.extras import RealDictCursor

        with self.postgres.connect() as connection, connection.cursor(cursor_factory=RealDictCursor) as cursor:
            cursor.execute(sql.replace("?", "%s"), params)
            return [dict(row) for row in cursor.fetchall()] if cursor.description else []

    def worker_of(self, ti_id: str) -> str | None:
        """The Celery worker whose process group runs the task instance try ``ti_id`` (its process title is
        ``airflow worker -- <ti id>``), or None."""
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if ti_id not in text:
                    continue
                stat = (cmdline.parent / "stat").read_text()
            except OSError:
                continue
            group = int(stat[stat.rindex(")") + 2 :].split()[2])
            for name in self.workers:
                process = self.processes.get(name)
                if process is not None and process.pid == group:
                    return name
        return None


def _secret(length: int) -> str:
    import secrets

    return secrets.token_hex(length // 2 + 1)[:length]
