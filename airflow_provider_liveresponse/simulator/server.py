"""The :class:`Simulator`: the API + identity host and the blob host, served over HTTPS by uvicorn in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_liveresponse.simulator.api import Api
from airflow_provider_liveresponse.simulator.blobs import BlobHost
from airflow_provider_liveresponse.simulator.clock import SimulatedClock
from airflow_provider_liveresponse.simulator.control import Control
from airflow_provider_liveresponse.simulator.errors import error_response
from airflow_provider_liveresponse.simulator.estate import FleetSpec
from airflow_provider_liveresponse.simulator.identity import Identity
from airflow_provider_liveresponse.simulator.limits import profile_limits
from airflow_provider_liveresponse.simulator.state import SimulatorState
from airflow_provider_liveresponse.simulator.tls import create_tls_files

if TYPE_CHECKING:
    from types import TracebackType

    import uvicorn
    from starlette.requests import Request

#: Fixed, documented credentials of the simulated tenant and app registration.
DEFAULT_TENANT_ID = "8d2f1a36-5c4b-4e1f-9a7d-2b6c3e4f5a10"
DEFAULT_CLIENT_ID = "0f4c6a1e-2b3d-4c5e-8f9a-1b2c3d4e5f60"
DEFAULT_CLIENT_SECRET = "sim~secret.Q8Rz2vXb7LkN4pT"  # noqa: S105 - a public test credential
CONN_TYPE = "mde_live_response"
CONN_ENV = "AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT"


THREAD_PREFIX = "mde-simulator"


class _QuietStartStop(logging.Filter):
    """Drops uvicorn's INFO lines (started, shutting down) logged from simulator threads; keeps warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not (record.threadName or "").startswith(THREAD_PREFIX)


class _NoAccessLog(logging.Filter):
    """Drops uvicorn's access log lines of simulator threads: the simulator's counters say what was called."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").startswith(THREAD_PREFIX)


_QUIET = _QuietStartStop()
_NO_ACCESS_LOG = _NoAccessLog()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then (else Nagle adds 40 ms a call).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class Simulator:
    """A local Microsoft Defender for Endpoint: Entra ID token endpoint, MDE API, and blob storage, over HTTPS.

    Use as a context manager (or :meth:`start` / :meth:`stop`)::

        with Simulator(speed=60) as sim:
            requests.get(f"{sim.api_url}/api/machines", headers=..., verify=sim.ca_file)

    ``speed`` is simulated seconds per real second; ``state_dir`` holds the TLS files and result blobs (a
    temporary folder, removed on stop, when None); ``profile`` is ``seeds`` or ``current`` (see
    :mod:`.limits`), ``limits`` overrides single limits; ``token_lifetime`` is in simulated seconds;
    ``client_certificate`` (public PEM) enables certificate authentication (also :meth:`register_certificate`);
    ``fleet`` (a :class:`~.estate.FleetSpec` or its options as a dict) seeds a large fleet (also :meth:`add_fleet`).
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        state_dir: Path | str | None = None,
        profile: str = "seeds",
        tenant_id: str = DEFAULT_TENANT_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        seed: int = 0,
        token_lifetime: float = 3600,
        host: str = "127.0.0.1",
        port: int = 0,
        blob_host: str | None = None,
        blob_port: int = 0,
        limits: dict[str, Any] | None = None,
        client_certificate: str | bytes | None = None,
        fleet: FleetSpec | dict[str, Any] | None = None,
    ) -> None:
        self._temp_dir: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._temp_dir = tempfile.TemporaryDirectory(prefix="mde-sim-")
            state_dir = self._temp_dir.name
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port
        self.blob_host = blob_host or host
        self.blob_port = blob_port
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.profile = profile
        self.clock = SimulatedClock(speed)
        self.state = SimulatorState(
            self.clock,
            self.state_dir,
            seed=seed,
            limits=profile_limits(profile).updated(**(limits or {})),
            profile=profile,
        )
        self.identity = Identity(self.state, tenant_id, client_id, client_secret, token_lifetime)
        if client_certificate is not None:
            self.identity.register_certificate(client_certificate)
        #: What :meth:`add_fleet` seeded, in order (counts and offline host names of each fleet).
        self.fleets: list[dict[str, Any]] = []
        if fleet is not None:
            self.add_fleet(fleet)
        self.api = Api(self.state, self.identity)
        self.control = Control(self.state, self.identity)
        self.api_url = ""
        self.authority_url = ""
        self.blob_url = ""
        self.control_url = ""
        self.ca_file = self.state_dir / "tls" / "ca.pem"
        self._servers: list[uvicorn.Server] = []
        self._sockets: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- life --------------------------------------------------------------------------------------------------
    def start(self) -> Self:
        """Make the TLS files, bind both hosts and serve them from a background thread."""
        import uvicorn

        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        tls = create_tls_files(self.state_dir / "tls", extra_hosts=(self.host, self.blob_host))
        self.ca_file = tls.ca_file
        api_socket = _bind(self.host, self.port)
        blob_socket = _bind(self.blob_host, self.blob_port)
        self._sockets = [api_socket, blob_socket]
        self.port = api_socket.getsockname()[1]
        self.blob_port = blob_socket.getsockname()[1]
        self.api_url = f"https://{_url_host(self.host)}:{self.port}"
        self.authority_url = self.api_url
        self.control_url = f"{self.api_url}/_sim"
        self.blob_url = f"https://{_url_host(self.blob_host)}:{self.blob_port}"
        self.identity.authority_url = self.authority_url
        self.api.api_url = self.api_url
        self.api.blob_url = self.blob_url

        self._servers = []
        for app in (self._api_app(), BlobHost(self.state)):
            config = uvicorn.Config(
                app,
                ssl_certfile=str(tls.cert_file),
                ssl_keyfile=str(tls.key_file),
                http="httptools",
                ws="none",
                lifespan="off",
                log_config=None,
                access_log=False,
                timeout_keep_alive=30,
                timeout_graceful_shutdown=2,
            )
            self._servers.append(uvicorn.Server(config))
        error_logger = logging.getLogger("uvicorn.error")
        if _QUIET not in error_logger.filters:
            error_logger.addFilter(_QUIET)
        access_logger = logging.getLogger("uvicorn.access")
        if _NO_ACCESS_LOG not in access_logger.filters:
            access_logger.addFilter(_NO_ACCESS_LOG)
        self._thread = threading.Thread(target=self._serve, name=f"{THREAD_PREFIX}-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not all(server.started for server in self._servers):
            if self._failure is not None or not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the MDE simulator did not start: {self._failure!r}")
            time.sleep(0.005)
        return self

    def _serve(self) -> None:
        async def serve_all() -> None:
            pairs = zip(self._servers, self._sockets, strict=True)
            await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in pairs))

        from airflow_provider_liveresponse.simulator.transport import TrackingEventLoop

        loop = TrackingEventLoop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(serve_all())
        except BaseException as error:
            self._failure = error
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Stop both servers, wait for the thread, and remove a temporary state folder."""
        from airflow_provider_liveresponse.simulator.transport import abort_all

        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            # Idle keep-alive connections would hold up uvicorn's graceful shutdown (TLS waits for the peer).
            ports = {self.port, self.blob_port}
            deadline = time.monotonic() + 15
            while self._thread.is_alive() and time.monotonic() < deadline:
                loop = self._loop
                if loop is not None and not loop.is_closed():
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(abort_all, ports)
                self._thread.join(timeout=0.05)
            self._thread = None
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
            self._temp_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the servers are up."""
        return self._thread is not None and self._thread.is_alive()

    # -- the API host app ----------------------------------------------------------------------------------------
    def _api_app(self) -> Starlette:
        identity = self.identity

        async def discovery(request: Request) -> Response:
            with self.state.lock:
                self.state.counters["discovery_requests"] += 1
            return identity.openid_configuration(request.path_params["tenant"])

        async def token(request: Request) -> Response:
            return await identity.token(request, request.path_params["tenant"])

        async def keys(request: Request) -> Response:
            return JSONResponse({"keys": []})

        async def not_found(request: Request, exc: Exception) -> Response:
            status = getattr(exc, "status_code", 404)
            if status == 405:
                return error_response(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.url.path}")
            return error_response(404, "NotFound", f"No resource at {request.url.path}")

        routes = [
            *self.api.routes(),
            *self.control.routes(),
            Route("/{tenant}/v2.0/.well-known/openid-configuration", discovery, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", self.api.guarded("token", token, auth=False), methods=["POST"]),
            Route("/{tenant}/discovery/v2.0/keys", keys, methods=["GET"]),
        ]
        return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})

    # -- using it ----------------------------------------------------------------------------------------------
    def add_fleet(self, spec: FleetSpec | dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        """Seed a large fleet (``add_fleet(devices=5000, offline_fraction=0.1)``, see :mod:`.estate`); returns
        its counts (``online``, ``activeOffline``, ``inactive``), ``rbacGroupId`` and offline host names."""
        if spec is None or isinstance(spec, dict):
            spec = FleetSpec.from_options({**(spec or {}), **options})
        elif options:
            raise TypeError("give a FleetSpec or options, not both")
        summary = self.state.add_fleet(spec)
        self.fleets.append(summary)
        return summary

    def register_certificate(self, certificate_pem: str | bytes) -> str:
        """Accept a client certificate (public PEM) for certificate authentication; returns its SHA-1 thumbprint."""
        return self.identity.register_certificate(certificate_pem)

    @property
    def scope(self) -> str:
        """The commercial token scope."""
        return "https://api.securitycenter.microsoft.com/.default"

    def connection_extra(self) -> dict[str, Any]:
        """The Airflow connection's extra fields pointing at this simulator."""
        return {
            "tenant_id": self.tenant_id,
            "api_url": self.api_url,
            "authority_url": self.authority_url,
            "ca_bundle": str(self.ca_file),
            "cloud": "commercial",
            # Budgets of MDE's per-minute and per-hour limits (the triggers' polling) count on this clock.
            "simulator_speed": self.clock.speed,
        }

    def connection_dict(self) -> dict[str, Any]:
        """The Airflow connection as a dict (the JSON form)."""
        return {
            "conn_type": CONN_TYPE,
            "login": self.client_id,
            "password": self.client_secret,
            "extra": self.connection_extra(),
        }

    def connection_json(self) -> str:
        """The Airflow connection in JSON form (the value of an ``AIRFLOW_CONN_*`` variable)."""
        return json.dumps(self.connection_dict())

    def connection_uri(self) -> str:
        """The Airflow connection in URI form (``mde-live-response://client:secret@/?tenant_id=...``)."""
        login = quote(self.client_id, safe="")
        password = quote(self.client_secret, safe="")
        query = urlencode(self.connection_extra(), quote_via=quote)
        return f"{CONN_TYPE.replace('_', '-')}://{login}:{password}@/?{query}"

    def summary(self) -> dict[str, Any]:
        """What the CLI prints: how to connect."""
        return {
            "airflow_conn_env": {CONN_ENV: self.connection_json()},
            "connection_uri": self.connection_uri(),
            "ca_file": str(self.ca_file),
            "api_url": self.api_url,
            "authority_url": self.authority_url,
            "blob_url": self.blob_url,
            "control_url": self.control_url,
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "speed": self.clock.speed,
            "profile": self.profile,
            "page_size": self.state.limits.page_size,
            "fleets": [
                {key: value for key, value in fleet.items() if not key.endswith("Hosts")} for fleet in self.fleets
            ],
        }
