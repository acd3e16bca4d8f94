"""A real Airflow for system tests: API server, scheduler, triggerer and DAG processor as separate processes.

:class:`AirflowServer` prepares a fresh ``AIRFLOW_HOME`` (SQLite, LocalExecutor, no example DAGs, free loopback
ports), starts each component in its own process group and stops every group (SIGTERM, then SIGKILL), so no
task worker outlives it. It talks to the REST API (``/api/v2``) as the simple auth manager's generated admin.
With ``triggerers=2`` (or more) it runs that many triggerers (``triggerer``, ``triggerer-2``, ...), knows each
one's job id, and can stop and continue one (:meth:`AirflowServer.pause` / :meth:`AirflowServer.resume`, SIGSTOP
and SIGCONT to its process group, as a stopped container or a long GC pause would).

:class:`Observer` samples the metadata database (read-only) in a background thread while DAGs run: the states
every task instance went through, the triggers that held them, and the pool's occupancy. Triggers are deleted
once they fire, so they can only be seen while they live.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from collections.abc import Callable

#: A task instance: (dag_id, run_id, task_id, map_index).
TaskKey = tuple[str, str, str, int]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN = "admin"


#: What the scheduler logs when it fails a task that deferred, whose trigger fired, and that was already queued
#: or running again when the scheduler processed the exit of the worker that deferred: a race in Airflow's
#: scheduler (apache/airflow#66374 fixed it for ``scheduled`` only; #67287 is ``queued``, #72716 ``running``).
#: Each try has its own ``ti_id``, so the task instance is named by DAG, task, run and map index.
DEFER_RACE = (
    r"reported that the task instance <TaskInstance: {dag_id}\.{task_id} {run_id}{map_index} \[(queued|running)\] "
    r"ti_id=[0-9a-f-]+> finished with state success, but the task instance's state attribute is \1"
)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AirflowError(RuntimeError):
    """Airflow did not start, or a REST call failed."""


def wait_until(what: str, check: Callable[[], Any], timeout: float, server: AirflowServer) -> Any:
    """Call ``check`` every half second until it returns something true (an error counts as not yet), and return
    that; after ``timeout`` seconds raise :class:`AirflowError` naming ``what``, with the components' last lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        time.sleep(0.5)
    raise AirflowError(f"timed out after {timeout:.0f} s waiting for {what}\n{server.tails(60)}")


class AirflowServer:
    """One Airflow deployment in ``home``, run with this interpreter's Airflow.

    ``env`` adds to the components' environment (connections, settings of the DAGs). The parent's own
    ``AIRFLOW__*`` / ``AIRFLOW_CONN_*`` variables are not inherited: the deployment is configured here only.
    """

    def __init__(
        self, home: Path, *, env: dict[str, str] | None = None, parallelism: int = 4, triggerers: int = 1
    ) -> None:
        from cryptography.fernet import Fernet

        self.home = home
        self.dags_folder = home / "dags"
        self.logs_folder = home / "logs"
        self.component_logs = self.logs_folder / "components"
        self.db_file = home / "airflow.db"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.fernet_key = Fernet.generate_key().decode()
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and key != "AIRFLOW_HOME"
        }
        self.env: dict[str, str] = {
            **inherited,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_file}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(24).hex(),
            "AIRFLOW__API__SECRET_KEY": os.urandom(24).hex(),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs_folder),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        #: component name -> the ``airflow`` sub-command that runs it.
        self.commands: dict[str, str] = {name: name for name in COMPONENTS}
        #: component name -> what its environment adds (each extra triggerer serves its logs on its own port).
        self.component_env: dict[str, dict[str, str]] = {}
        for number in range(2, triggerers + 1):
            self.commands[f"triggerer-{number}"] = "triggerer"
            self.component_env[f"triggerer-{number}"] = {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
        #: triggerer component name -> its job id (known after :meth:`start` when there are several).
        self.triggerer_jobs: dict[str, int] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: What :meth:`query` raises when the database is busy or not there yet.
        self.query_errors: tuple[type[Exception], ...] = (sqlite3.Error,)
        self._session = requests.Session()
        self._token: str | None = None

    # -- life ------------------------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run ``airflow <args>`` against this deployment; its output (raises with it on failure)."""
        result = subprocess.run(  # noqa: S603 - this interpreter's airflow, arguments from the test
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AirflowError(f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result.stdout

    def prepare(self) -> None:
        """Create the folders and the metadata database.

        A SQLite database is switched to write-ahead logging (kept in the file, so every component's connection
        uses it): readers, such as :class:`Observer` sampling four times a second, then never block a writer.
        In SQLite's default journal a writer waits for the readers; on a busy machine the API server gave up
        after its 5 s lock timeout and answered 500 (``database is locked``) to a Human-in-the-loop answer.
        """
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        self.component_logs.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate")
        if self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:"):
            connection = sqlite3.connect(self.db_file, timeout=30)
            try:
                mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            finally:
                connection.close()
            if mode != "wal":
                raise AirflowError(f"SQLite kept journal_mode={mode} for {self.db_file}, not WAL")

    def start(self, job_timeout: float = 120) -> None:
        """Start every component, each in a new session (its own process group), output to its log file.

        With several triggerers, each one is started once the one before it has its job row, so that
        :attr:`triggerer_jobs` knows which job id is which process (they share a host name).
        """
        several = sum(command == "triggerer" for command in self.commands.values()) > 1
        for name, command in self.commands.items():
            known = self._triggerer_job_ids() if several and command == "triggerer" else set()
            self.start_component(name)
            if several and command == "triggerer":
                self.triggerer_jobs[name] = self._wait_for_new_job(known, name, job_timeout)

    def start_component(self, name: str) -> None:
        """Start one component (again, after :meth:`kill`), its output appended to its log file."""
        with (self.component_logs / f"{name}.log").open("ab") as out:
            self.processes[name] = subprocess.Popen(  # noqa: S603 - this interpreter's airflow
                [sys.executable, "-m", "airflow", *self.commands[name].split()],
                env={**self.env, **self.component_env.get(name, {})},
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL, timeout: float = 60) -> None:
        """Send ``sig`` to a component's whole process group (SIGKILL: as a container dies) and wait until the
        group is gone; the component can be started again with :meth:`start_component`."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (process.poll() is None or _group_members(process.pid)):
            time.sleep(0.2)
        if _group_members(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _triggerer_job_ids(self) -> set[int]:
        return {int(row["id"]) for row in self.query("SELECT id FROM job WHERE job_type = 'TriggererJob'")}

    def _wait_for_new_job(self, known: set[int], name: str, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(*self.query_errors):
                new = self._triggerer_job_ids() - known
                if new:
                    return max(new)
            time.sleep(0.5)
        raise AirflowError(f"{name} wrote no job row in {timeout:.0f} s\n{self.tails()}")

    def pause(self, name: str) -> None:
        """SIGSTOP a component's process group (all its processes stop, heartbeats included)."""
        os.killpg(self.processes[name].pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT a component's process group after :meth:`pause`."""
        os.killpg(self.processes[name].pid, signal.SIGCONT)

    def wait_healthy(self, timeout: float) -> dict[str, Any]:
        """Wait until the API server answers and the scheduler, triggerer and DAG processor heartbeat."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                response = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
                last = response.json() if response.ok else response.text
            except (requests.RequestException, ValueError) as error:
                last = repr(error)
            if isinstance(last, dict) and all(
                (last.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            ):
                return last
            time.sleep(1)
        raise AirflowError(f"Airflow was not healthy after {timeout:.0f} s; last health: {last}\n{self.tails()}")

    def _check_alive(self) -> None:
        dead = {name: process.returncode for name, process in self.processes.items() if process.poll() is not None}
        if dead:
            raise AirflowError(f"Airflow components exited: {dead}\n{self.tails()}")

    def stop(self, grace: float = 15) -> StopReport:
        """SIGTERM every component's process group, SIGKILL what is left after ``grace`` seconds, and report
        which components needed SIGKILL and which still had live processes after it (should be none)."""
        groups = {name: process.pid for name, process in self.processes.items()}
        for group in groups.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGCONT)  # a paused group cannot act on SIGTERM
                os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_group_members(group) for group in groups.values()):
            for process in self.processes.values():
                process.poll()  # reap the leaders
            time.sleep(0.2)
        report = StopReport(killed=sorted(name for name, group in groups.items() if _group_members(group)))
        for group in groups.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_group_members(group) for group in groups.values()):
            time.sleep(0.2)
        report.left = {name: _group_members(group) for name, group in groups.items() if _group_members(group)}
        return report

    def tails(self, lines: int = 40) -> str:
        """The last lines of every component's output."""
        parts = []
        for path in sorted(self.component_logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {path.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts)

    # -- REST API --------------------------------------------------------------------------------------------
    def admin_password(self) -> str:
        """The simple auth manager's generated password of ``admin`` (written by the API server at start)."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return str(json.loads(path.read_text())[ADMIN])

    def login(self) -> None:
        """Get a JWT for the REST API: ``POST /auth/token`` with the admin's user name and password."""
        response = self._session.post(
            f"{self.base_url}/auth/token", json={"username": ADMIN, "password": self.admin_password()}, timeout=30
        )
        if response.status_code != 201:
            raise AirflowError(f"POST /auth/token answered {response.status_code}: {response.text}")
        self._token = str(response.json()["access_token"])

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2{path}`` as the admin; the JSON answer (raises with the body on an error status)."""
        if self._token is None:
            self.login()
        headers = {"Authorization": f"Bearer {self._token}"}
        response = self._session.request(method, f"{self.base_url}/api/v2{path}", headers=headers, timeout=60, **kwargs)
        if not response.ok:
            raise AirflowError(f"{method} /api/v2{path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    # -- the metadata database -------------------------------------------------------------------------------
    def query(self, sql: str, *params: Any) -> list[Any]:
        """Read the metadata database directly (read-only, one short statement)."""
        connection = sqlite3.connect(f"file:{self.db_file}?mode=ro", uri=True, timeout=10)
        try:
            connection.row_factory = sqlite3.Row
            return list(connection.execute(sql, params))
        finally:
            connection.close()

    def decrypt(self, value: str) -> str:
        """A value Airflow encrypted with this deployment's Fernet key (trigger kwargs, ...)."""
        from cryptography.fernet import Fernet

        if value.startswith("{"):
            return value  # stored unencrypted
        return Fernet(self.fernet_key.encode()).decrypt(value.encode()).decode()


@dataclass
class StopReport:
    """Which components had to be killed (SIGKILL), and the live pids left in a component's group after that."""

    killed: list[str] = field(default_factory=list)
    left: dict[str, list[int]] = field(default_factory=dict)


def _group_members(group: int) -> list[int]:
    """Live (not zombie) processes of a process group, from ``/proc`` (elsewhere: whether any process is)."""
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [group]
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after its last ")".
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == group and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


@dataclass
class TriggerSighting:
    """A trigger row seen while it lived, with the task instance it held (if any)."""

    trigger_id: int
    created: str
    classpath: str
    kwargs: str
    triggerer_id: int | None
    task: TaskKey | None


@dataclass
class Observations:
    """What :class:`Observer` saw."""

    #: (dag_id, run_id, task_id, map_index) -> every state seen, in order, without repeats.
    states: dict[TaskKey, list[str]] = field(default_factory=dict)
    #: (trigger id, created) -> the trigger as last seen (SQLite reuses the ids of deleted rows).
    triggers: dict[tuple[int, str], TriggerSighting] = field(default_factory=dict)
    #: The most task instances of the pool seen at once in a slot-holding state.
    pool_peak: int = 0
    samples: int = 0
    errors: list[str] = field(default_factory=list)


_SAMPLE = """
SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.state, ti.pool,
       t.id AS trigger_id, t.created_date, t.classpath, t.kwargs, t.triggerer_id
FROM task_instance AS ti LEFT JOIN "trigger" AS t ON t.id = ti.trigger_id
"""
_TRIGGERS = 'SELECT id AS trigger_id, created_date, classpath, kwargs, triggerer_id FROM "trigger"'
#: States in which a task instance holds a slot of a pool that counts deferred tasks.
SLOT_STATES = frozenset({"queued", "running", "deferred"})


class Observer:
    """Samples task instance states, live triggers and a pool's occupancy every ``interval`` seconds."""

    def __init__(self, server: AirflowServer, pool: str, interval: float = 0.25) -> None:
        self.server = server
        self.pool = pool
        self.interval = interval
        self.seen = Observations()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="airflow-observer", daemon=True)

    def __enter__(self) -> Observations:
        self._thread.start()
        return self.seen

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.sample()  # one last look

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Take one sample (a locked or busy database skips it)."""
        try:
            rows = self.server.query(_SAMPLE)
            triggers = self.server.query(_TRIGGERS)
        except self.server.query_errors as error:
            self.seen.errors.append(repr(error))
            return
        seen = self.seen
        seen.samples += 1
        occupied = 0
        for row in rows:
            key = (row["dag_id"], row["run_id"], row["task_id"], int(row["map_index"]))
            state = str(row["state"])
            history = seen.states.setdefault(key, [])
            if not history or history[-1] != state:
                history.append(state)
            if row["pool"] == self.pool and state in SLOT_STATES:
                occupied += 1
            if row["trigger_id"] is not None:
                self._see_trigger(row, key)
        for row in triggers:
            self._see_trigger(row, None)
        seen.pool_peak = max(seen.pool_peak, occupied)

    def _see_trigger(self, row: Any, task: TaskKey | None) -> None:
        key = (int(row["trigger_id"]), str(row["created_date"]))
        known = self.seen.triggers.get(key)
        if known is None:
            self.seen.triggers[key] = TriggerSighting(
                key[0], key[1], row["classpath"], row["kwargs"], row["triggerer_id"], task
            )
            return
        # A trigger is created unassigned, then a triggerer takes it: keep whatever was seen of both.
        known.triggerer_id = row["triggerer_id"] if row["triggerer_id"] is not None else known.triggerer_id
        known.task = task or known.task
