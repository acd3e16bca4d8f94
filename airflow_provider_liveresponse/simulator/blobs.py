"""The blob host: serves result blobs behind signed, expiring links, like Azure Blob storage.

``GET``/``HEAD /mde-liveresponse/{action}/{index}/{name}?sv=..&st=..&se=..&sr=b&sp=r&sig=..``. A missing,
forged or expired signature gets 403 ``AuthenticationFailed`` (Azure's XML error body); a request carrying an
``Authorization`` header is counted (``blob_requests_with_authorization``) and refused with 401
``InvalidAuthenticationInfo``, as Azure refuses a token meant for another resource. Full reads send
``Content-Length``, ``Content-MD5``, ``x-ms-blob-content-md5`` and ``Content-Disposition`` (with an RFC 5987
``filename*`` for a name that is not ASCII); ``Range: bytes=a-b`` / ``a-`` / ``-n`` gets 206 with ``Content-Range``.
``HEAD`` answers as Azure's Get Blob Properties does: the headers of a full read (``Content-Length``,
``Content-MD5``), no body. The blob fault ``no_content_md5`` serves blobs without ``Content-MD5`` or
``x-ms-blob-content-md5``, as Azure serves a blob uploaded in blocks without one. Counters: ``blob_get_requests``,
``blob_head_requests`` and ``blob_body_bytes`` (body bytes sent), beside ``blob_requests``.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from email.utils import formatdate
from typing import TYPE_CHECKING
from urllib.parse import quote
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_liveresponse.simulator.api import BLOB_PREFIX
from airflow_provider_liveresponse.simulator.clock import parse_datetime
from airflow_provider_liveresponse.simulator.errors import ApiError
from airflow_provider_liveresponse.simulator.transport import close_connection, drop_connection

if TYPE_CHECKING:
    from collections.abc import Generator

    from starlette.types import Receive, Scope, Send

    from airflow_provider_liveresponse.simulator.results import Blob
    from airflow_provider_liveresponse.simulator.state import SimulatorState

_PATH = re.compile(r"^" + re.escape(BLOB_PREFIX) + r"/([0-9a-f-]{36})/(\d+)/[^/]+$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1024 * 1024
_AUTH_FAILED = (
    "Server failed to authenticate the request. "
    "Make sure the value of Authorization header is formed correctly including the signature."
)
_BEARER_REFUSED = (
    "Server failed to authenticate the request. Please refer to the information in the www-authenticate header."
)
_WWW_AUTHENTICATE = (
    "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize "
    "resource_id=https://storage.azure.com"
)
_FAULT_ERRORS = {
    500: ("InternalError", "Server encountered an internal error. Please try again after some time."),
    502: ("InternalError", "Bad gateway."),
    503: ("ServerBusy", "The server is busy."),
}


def _xml_error(
    status: int, code: str, message: str, detail: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    request_id = str(uuid.uuid4())
    text = f"{message}\nRequestId:{request_id}\nTime:{formatdate(usegmt=True)}"
    body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{escape(code)}</Code><Message>{escape(text)}</Message>'
    if detail:
        body += f"<AuthenticationErrorDetail>{escape(detail)}</AuthenticationErrorDetail>"
    body += "</Error>"
    all_headers = {"x-ms-error-code": code, "x-ms-request-id": request_id, "x-ms-version": "2021-08-06"}
    all_headers.update(headers or {})
    return Response(body, status_code=status, media_type="application/xml", headers=all_headers)


def content_disposition(name: str) -> str:
    """``attachment; filename="name"``; a name that is not printable ASCII gets an ASCII fallback (``_`` for
    each other character) and the exact name in ``filename*`` (RFC 6266 / RFC 5987), as HTTP headers are Latin-1."""
    fallback = "".join(char if " " <= char <= "~" and char not in '"\\' else "_" for char in name)
    if fallback == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _byte_range(header: str | None, size: int) -> tuple[int, int] | Response | None:
    """``(first, last)`` of a single satisfiable range, None for a full read, or a 416 response."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first_text, last_text = match.groups()
    if not first_text:
        length = int(last_text)
        if length == 0:
            return _unsatisfiable(size)
        return max(size - length, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        return _unsatisfiable(size)
    return first, min(last, size - 1)


def _unsatisfiable(size: int) -> Response:
    return _xml_error(
        416,
        "InvalidRange",
        "The range specified is invalid for the current size of the resource.",
        headers={"Content-Range": f"bytes */{size}"},
    )


class BlobHost:
    """The blob host's ASGI application."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._handle(request, send)
        if response is not None:
            await response(scope, receive, send)

    async def _handle(self, request: Request, send: Send) -> Response | None:
        state = self.state
        state.count_call("blob", request.headers.get("user-agent"))
        with state.lock:
            state.counters["blob_requests"] += 1
            if "authorization" in request.headers:
                state.counters["blob_requests_with_authorization"] += 1
        decision = state.faults.decide("blob")
        if decision.delay > 0:
            await asyncio.sleep(decision.delay)
        if decision.kind == "reset":
            await drop_connection(request.scope)
            return None
        if decision.kind == "error":
            code, message = _FAULT_ERRORS.get(decision.status, _FAULT_ERRORS[500])
            return _xml_error(decision.status, code, message)
        if request.method not in ("GET", "HEAD"):
            return _xml_error(405, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.")
        with state.lock:
            state.counters["blob_get_requests" if request.method == "GET" else "blob_head_requests"] += 1
        if "authorization" in request.headers:
            return _xml_error(
                401,
                "InvalidAuthenticationInfo",
                _BEARER_REFUSED,
                "Issuer validation failed. Issuer did not match.",
                {"WWW-Authenticate": _WWW_AUTHENTICATE},
            )
        path = request.url.path
        query = request.query_params
        expiry, signature = query.get("se", ""), query.get("sig", "")
        if not expiry or not signature or not state.results.verify(path, expiry, signature):
            return _xml_error(
                403,
                "AuthenticationFailed",
                _AUTH_FAILED,
                "Signature did not match. String to sign used was r\n\n" + escape(expiry) + "\n" + path,
            )
        now = state.clock.time()
        if parse_datetime(expiry) <= now:
            return _xml_error(
                403,
                "AuthenticationFailed",
                _AUTH_FAILED,
                f"Signed expiry time [{formatdate(parse_datetime(expiry), usegmt=True)}] must be after "
                f"the current time [{formatdate(now, usegmt=True)}]. Signature not valid in the specified time frame.",
            )
        match = _PATH.match(path)
        if match is None:
            return _xml_error(404, "BlobNotFound", "The specified blob does not exist.")
        try:
            blob = await asyncio.to_thread(state.blob, match.group(1), int(match.group(2)))
        except ApiError:
            return _xml_error(404, "BlobNotFound", "The specified blob does not exist.")
        chosen = _byte_range(request.headers.get("x-ms-range") or request.headers.get("range"), blob.size)
        if isinstance(chosen, Response):
            return chosen
        first, last = chosen if chosen is not None else (0, blob.size - 1)
        cut = state.faults.take_blob_cut(first, last) if request.method == "GET" else None
        await self._serve(request, send, blob, chosen, cut)
        return None

    async def _serve(
        self, request: Request, send: Send, blob: Blob, chosen: tuple[int, int] | None, cut: int | None
    ) -> None:
        size = blob.size
        headers = {
            "Content-Type": blob.content_type,
            "Content-Disposition": content_disposition(blob.download_name),
            "Accept-Ranges": "bytes",
            "ETag": f'"0x8D{blob.compressed.md5[:13].upper()}"',
            "x-ms-blob-content-md5": blob.compressed.md5_base64,
            "x-ms-blob-type": "BlockBlob",
            "x-ms-server-encrypted": "true",
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-version": "2021-08-06",
        }
        if self.state.faults.rule("blob").no_content_md5:
            del headers["x-ms-blob-content-md5"]
        elif chosen is None:
            headers["Content-MD5"] = blob.compressed.md5_base64
        if chosen is None:
            first, last, status = 0, size - 1, 200
        else:
            first, last = chosen
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        length = max(last - first + 1, 0)
        headers["Content-Length"] = str(length)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()],
            }
        )
        if request.method == "HEAD" or length == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if cut == 0:
            await close_connection(request.scope)
            return
        sent = 0
        chunks = _iter_bytes(blob, first, length)
        try:
            for chunk in chunks:
                if cut is not None and sent + len(chunk) > cut:
                    self._count_body(max(cut - sent, 0))
                    await send({"type": "http.response.body", "body": chunk[: max(cut - sent, 0)], "more_body": True})
                    await close_connection(request.scope)
                    return
                self._count_body(len(chunk))
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += len(chunk)
        finally:
            chunks.close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _count_body(self, count: int) -> None:
        with self.state.lock:
            self.state.counters["blob_body_bytes"] += count


def _iter_bytes(blob: Blob, first: int, length: int) -> Generator[bytes, None, None]:
    """The ``length`` bytes of ``blob`` from ``first``, in 1 MiB chunks (closing the file when done or dropped)."""
    if blob.file is None:
        data = blob.data[first : first + length]
        for offset in range(0, len(data), _CHUNK):
            yield data[offset : offset + _CHUNK]
        return
    with blob.file.open("rb") as handle:
        handle.seek(first)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
