"""A streaming reader of one live-response result blob that survives expired links and broken connections.

The blob host is Azure Blob storage behind a 30-minute SAS link. The reader asks for a fresh link when the
one it has is refused (403), resumes with ``Range`` from the last byte it delivered after a cut, computes
MD5 and SHA-256 while streaming, and at the end checks ``Content-Length`` and ``Content-MD5``. It never
sends the MDE token to the blob host.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from airflow_provider_liveresponse.digests import StreamDigest
from airflow_provider_liveresponse.exceptions import LiveResponseApiError, ResultIntegrityError
from airflow_provider_liveresponse.secrets import redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_HEX_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_FILENAME = re.compile(r"""filename\*?=(?:UTF-8'')?"?([^";]+)"?""", re.IGNORECASE)

_STREAM_ERRORS = (requests.ConnectionError, requests.Timeout, Urllib3HTTPError, OSError)


@dataclass(frozen=True)
class BlobProperties:
    """What the blob host says of a result blob without sending it (``HEAD``): its length and Content-MD5."""

    size: int | None
    """``Content-Length`` (bytes a full GET would send), None if not given."""
    md5: str | None
    """``Content-MD5`` as lower-case hex, None when the blob has none."""


def md5_hex(header: str) -> str:
    """A ``Content-MD5`` header (base64, as Azure sends it; hex tolerated) as lower-case hex."""
    text = header.strip()
    if _HEX_MD5.fullmatch(text):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except ValueError:
        return text.lower()


def read_blob_properties(
    link_factory: Callable[[], str],
    session: requests.Session,
    *,
    action_id: str,
    index: int,
    timeout: float | tuple[float, float] = (10.0, 120.0),
) -> BlobProperties:
    """``HEAD`` the blob behind a fresh link (a new one once if it is refused): no byte of the body is read.

    Raises :class:`LiveResponseApiError` (naming the link's path, never its signature) for any other answer.
    """
    for attempt in range(2):
        link = link_factory()
        try:
            response = session.head(link, timeout=timeout, allow_redirects=False)
        except _STREAM_ERRORS as exc:  # its text holds the whole link, signature included: name its type only
            raise LiveResponseApiError(
                f"The blob host did not answer for the properties of result {index} of action {action_id} at "
                f"{redact_url(link)} ({type(exc).__name__}). Check the network path to MDE's blob storage (proxy, "
                "firewall), then rerun the task",
                action_id=action_id,
                method="HEAD",
                path=redact_url(link),
            ) from None
        response.close()
        if response.status_code == 403 and attempt == 0:
            continue
        if response.status_code == 200:
            length = response.headers.get("Content-Length")
            md5 = response.headers.get("Content-MD5")
            return BlobProperties(int(length) if length is not None else None, md5_hex(md5) if md5 else None)
        raise LiveResponseApiError(
            f"The blob host refused the properties of result {index} of action {action_id} at {redact_url(link)}",
            status=response.status_code,
            action_id=action_id,
            method="HEAD",
            path=redact_url(link),
        )
    raise AssertionError("unreachable")  # pragma: no cover


class ResultReader(io.RawIOBase):
    """A read-only binary stream of one command's result blob (bytes as served: GetFile results are gzip).

    ``sha256``, ``md5``, ``size``, ``file_name`` and the counters describe the transfer; the integrity check
    runs when the last byte has been read.
    """

    def __init__(
        self,
        link_factory: Callable[[], str],
        session: requests.Session,
        *,
        action_id: str,
        index: int,
        timeout: float | tuple[float, float] = (10.0, 120.0),
        max_resumes: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self._link_factory = link_factory
        self._session = session
        self._timeout = timeout
        self._max_resumes = max_resumes
        self._sleep = sleep
        self.action_id = action_id
        self.index = index
        self._link: str | None = None
        self._response: requests.Response | None = None
        # Content-MD5 is MD5 by definition; SHA-256 is what the manifest records. Hashed beside the read.
        self._digest = StreamDigest()
        self.bytes_read = 0
        self.size: int | None = None
        self.content_md5: str | None = None
        self.content_type: str | None = None
        self.file_name: str | None = None
        self.links_requested = 0
        self.resumes = 0
        self._done = False
        self._open_first()

    # -- io.RawIOBase -------------------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        failures = 0
        while True:
            try:
                chunk = self._read_some(len(view))
            except _STREAM_ERRORS as exc:
                failures += 1
                self._resume(f"{type(exc).__name__}", failures)
                continue
            if chunk:
                view[: len(chunk)] = chunk
                self._digest.update(chunk)
                self.bytes_read += len(chunk)
                return len(chunk)
            if self.size is not None and self.bytes_read < self.size:
                failures += 1
                self._resume(f"connection closed at byte {self.bytes_read} of {self.size}", failures)
                continue
            self._finish()
            return 0

    def close(self) -> None:
        self._digest.close()
        if self._response is not None:
            self._response.close()
            self._response = None
        super().close()

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Yield the blob in chunks of at most ``chunk_size`` bytes."""
        buffer = bytearray(chunk_size)
        while True:
            count = self.readinto(buffer)
            if not count:
                return
            yield bytes(buffer[:count])

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes read so far (of the whole blob once read to the end)."""
        return self._digest.sha256

    @property
    def md5(self) -> str:
        """Hex MD5 of the bytes read so far."""
        return self._digest.md5

    # -- internals ---------------------------------------------------------------------------------------

    def _describe(self) -> str:
        return f"result {self.index} of action {self.action_id}"

    def _read_some(self, limit: int) -> bytes:
        assert self._response is not None
        data: bytes = self._response.raw.read(limit, decode_content=False)
        return data

    def _new_link(self) -> str:
        self._link = self._link_factory()
        self.links_requested += 1
        return self._link

    def _get(self, start: int) -> requests.Response:
        """GET the blob from byte ``start``, asking for a new link once if the current one is refused."""
        for attempt in range(2):
            link = self._link or self._new_link()
            headers = {"Range": f"bytes={start}-"} if start else {}
            response = self._session.get(link, headers=headers, stream=True, timeout=self._timeout)
            if response.status_code == 403 and attempt == 0:
                response.close()
                log.info(
                    "Result link for %s was refused (403, expired or revoked); asking MDE for a new one",
                    self._describe(),
                )
                self._link = None
                continue
            if response.status_code in (200, 206):
                return response
            status = response.status_code
            response.close()
            raise LiveResponseApiError(
                f"The blob host refused {self._describe()} at {redact_url(link)}",
                status=status,
                action_id=self.action_id,
                method="GET",
                path=redact_url(link),
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _open(self, *, first: bool) -> None:
        start = self.bytes_read
        response = self._get(start)
        if response.status_code == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != start:
                response.close()
                raise ResultIntegrityError(
                    f"The blob host answered {self._describe()} with the wrong range "
                    f"({response.headers.get('Content-Range')!r} for byte {start}); rerun the task."
                )
            if match.group(3) != "*":
                self._learn_size(int(match.group(3)))
        else:
            length = response.headers.get("Content-Length")
            if length is not None:
                self._learn_size(int(length))
            if start:
                # The server ignored Range: skip what was already delivered.
                self._discard(response, start)
        if first:
            self.content_md5 = response.headers.get("Content-MD5") or response.headers.get("x-ms-blob-content-md5")
            self.content_type = response.headers.get("Content-Type")
            match_name = _FILENAME.search(response.headers.get("Content-Disposition", ""))
            self.file_name = match_name.group(1).strip() if match_name else None
        elif self.content_md5 is None:
            self.content_md5 = response.headers.get("x-ms-blob-content-md5")
        self._response = response

    def _open_first(self) -> None:
        """The first request, retried like a resume when the connection fails before any byte arrives."""
        failures = 0
        while True:
            try:
                self._open(first=True)
                return
            except _STREAM_ERRORS as exc:
                failures += 1
                if failures > self._max_resumes:
                    raise LiveResponseApiError(
                        f"The blob host never answered for {self._describe()} ({type(exc).__name__}, "
                        f"{failures} attempts); nothing was downloaded. Check the network path to MDE's blob "
                        "storage (proxy, firewall), then rerun the task",
                        action_id=self.action_id,
                    ) from None
                self.resumes += 1
                delay = min(0.5 * (2 ** (failures - 1)), 30.0)
                log.warning(
                    "The blob host did not answer for %s (%s); trying again in %.1f s (attempt %d)",
                    self._describe(),
                    type(exc).__name__,
                    delay,
                    failures + 1,
                )
                self._sleep(delay)

    def _learn_size(self, size: int) -> None:
        if self.size is not None and self.size != size:
            raise ResultIntegrityError(
                f"The size of {self._describe()} changed between requests ({self.size} then {size} bytes); "
                "the blob was replaced: rerun the task."
            )
        self.size = size

    @staticmethod
    def _discard(response: requests.Response, count: int) -> None:
        remaining = count
        while remaining:
            data = response.raw.read(min(remaining, 1024 * 1024), decode_content=False)
            if not data:
                raise requests.ConnectionError("blob ended while skipping already-read bytes")
            remaining -= len(data)

    def _resume(self, reason: str, failures: int) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        if failures > self._max_resumes:
            raise LiveResponseApiError(
                f"Download of {self._describe()} kept failing ({reason}) after {self._max_resumes} resumes at "
                f"byte {self.bytes_read}; nothing partial was kept as final. Rerun the task: it resumes cleanly",
                action_id=self.action_id,
            )
        self.resumes += 1
        delay = min(0.5 * (2 ** (failures - 1)), 30.0)
        log.warning(
            "Download of %s interrupted (%s) at byte %d; resuming in %.1f s (resume %d)",
            self._describe(),
            reason,
            self.bytes_read,
            delay,
            self.resumes,
        )
        self._sleep(delay)
        try:
            self._open(first=False)
        except _STREAM_ERRORS as exc:
            self._resume(type(exc).__name__, failures + 1)

    def _finish(self) -> None:
        self._done = True
        if self._response is not None:
            self._response.close()
            self._response = None
        if self.size is not None and self.bytes_read != self.size:
            raise ResultIntegrityError(
                f"{self._describe()} ended after {self.bytes_read} bytes, but the blob host announced "
                f"{self.size}; rerun the task."
            )
        if self.content_md5:
            expected = md5_hex(self.content_md5)
            if expected != self.md5:
                raise ResultIntegrityError(
                    f"{self._describe()}: the MD5 of the downloaded bytes ({self.md5}) differs from the "
                    f"blob's Content-MD5 ({expected}); the data was corrupted in transit. Rerun the task."
                )
