"""Connection-level tricks for faults: find the TCP connection of a request and drop it without a response.

uvicorn does not put the transport in the ASGI scope, so the simulator serves from a :class:`TrackingEventLoop`:
an asyncio event loop whose servers wrap each connection's protocol (uvicorn's, whichever ``http=`` picks) in one
that records the connection's transport by its address pair. Only asyncio's and uvicorn's public APIs are used.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.types import Scope

_Key = tuple[Any, Any]
_transports: dict[_Key, asyncio.Transport] = {}
_lock = threading.Lock()


def _address(value: Any) -> Any:
    if isinstance(value, (tuple, list)) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return value


class _TrackingProtocol(asyncio.Protocol):
    """A server's protocol for one connection, recording its transport so a fault can abort the connection."""

    def __init__(self, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        inner = factory()
        if not isinstance(inner, asyncio.Protocol):
            raise TypeError(f"the simulator serves streaming protocols only, got {type(inner).__name__}")
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._key: _Key | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)
        if not isinstance(transport, asyncio.Transport):
            return
        self._transport = transport
        self._key = (_address(transport.get_extra_info("sockname")), _address(transport.get_extra_info("peername")))
        with _lock:
            _transports[self._key] = transport

    def connection_lost(self, exc: Exception | None) -> None:
        with _lock:
            if self._key is not None and _transports.get(self._key) is self._transport:
                del _transports[self._key]
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class TrackingEventLoop(asyncio.SelectorEventLoop):
    """The simulator's event loop: each connection to a server it starts has its transport recorded."""

    async def create_server(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], *args: Any, **kwargs: Any
    ) -> asyncio.Server:
        return await super().create_server(functools.partial(_TrackingProtocol, protocol_factory), *args, **kwargs)


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
