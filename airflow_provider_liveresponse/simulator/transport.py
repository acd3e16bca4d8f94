"""Connection-level tricks for faults: find the TCP connection of a request and drop it without a response.

uvicorn does not put the transport in the ASGI scope, so the simulator runs uvicorn with a protocol class
(uvicorn's documented ``http=`` option) that records each connection's transport by its address pair.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from starlette.types import Scope

_Key = tuple[Any, Any]
_transports: dict[_Key, asyncio.Transport] = {}
_lock = threading.Lock()


def _address(value: Any) -> Any:
    if isinstance(value, (tuple, list)) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return value


class TrackingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, recording its transport so a fault can abort the connection.

    It writes no access log: the simulator's counters say what was called.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._sim_key = (_address(transport.get_extra_info("sockname")), _address(transport.get_extra_info("peername")))
        with _lock:
            _transports[self._sim_key] = transport

    def connection_lost(self, exc: Exception | None) -> None:
        with _lock:
            if _transports.get(self._sim_key) is self.transport:
                del _transports[self._sim_key]
        super().connection_lost(exc)


def _transport_of(scope: Scope) -> asyncio.Transport | None:
    key = (_address(scope.get("server")), _address(scope.get("client")))
    with _lock:
        return _transports.get(key)


async def drop_connection(scope: Scope) -> None:
    """Close the request's connection at once, without sending (the rest of) a response."""
    transport = _transport_of(scope)
    if transport is not None:
        transport.abort()
    # Let connection_lost run, so uvicorn knows the peer is gone before the app returns.
    for _ in range(3):
        await asyncio.sleep(0)


async def close_connection(scope: Scope, wait_seconds: float = 5.0) -> None:
    """Close the request's connection after what was already sent is flushed (a response cut short)."""
    transport = _transport_of(scope)
    if transport is None:
        return
    transport.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    key = (_address(scope.get("server")), _address(scope.get("client")))
    while loop.time() < deadline:
        with _lock:
            if key not in _transports:
                return
        await asyncio.sleep(0.01)


def abort_all(ports: set[int]) -> None:
    """Abort every open connection to a server on one of ``ports`` (run in the servers' event loop)."""
    with _lock:
        doomed = [
            transport for (local, _), transport in _transports.items() if isinstance(local, tuple) and local[1] in ports
        ]
    for transport in doomed:
        transport.abort()
