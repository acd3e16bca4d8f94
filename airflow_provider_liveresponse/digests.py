"""StreamDigest: the size, SHA-256 and MD5 of a byte stream, hashed beside the copy rather than inside it.

hashlib releases the interpreter lock while it hashes a large buffer, so once a stream grows past a few
megabytes the hashing moves to a worker thread fed through a queue bounded in bytes: the thread that reads,
inflates and writes never waits for the digests, and on a machine with a second core the two overlap. Small
streams (transcripts, small files) are hashed inline and never start a thread. The order of the bytes is kept:
everything before the switch is hashed inline, everything after it by the worker, in turn.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from dataclasses import dataclass

#: Bytes hashed inline before the worker thread starts.
INLINE_BYTES = 4 * 1024 * 1024
#: Bytes handed to the worker and not yet hashed (queued or being hashed), at most (beyond one chunk): bounds the
#: memory it holds.
MAX_PENDING_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Digests:
    """Size in bytes and hex SHA-256 and MD5 of a complete stream."""

    size: int
    sha256: str
    md5: str


class StreamDigest:
    """Size, SHA-256 and MD5 of the bytes given to :meth:`update`, in order; hashed in a worker thread once
    the stream is larger than ``inline_bytes``.

    Give it immutable ``bytes`` (it keeps a reference until hashed). :meth:`digests` waits for the pending bytes
    and can be called at any point; :meth:`close` stops the worker (idempotent, also after an error).
    """

    def __init__(self, *, inline_bytes: int = INLINE_BYTES, max_pending_bytes: int = MAX_PENDING_BYTES) -> None:
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self._inline_bytes = inline_bytes
        self._max_pending = max_pending_bytes
        self._pending: deque[bytes | None] = deque()
        self._pending_bytes = 0  # queued or being hashed: 0 once the worker has caught up
        self._error: BaseException | None = None
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def update(self, data: bytes) -> None:
        """Add the next bytes of the stream."""
        if not data:
            return
        self.size += len(data)
        if self._thread is None and self.size <= self._inline_bytes:
            self._sha256.update(data)
            self._md5.update(data)
            return
        with self._condition:
            self._raise_error()
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="stream-digest", daemon=True)
                self._thread.start()
            while self._pending_bytes and self._pending_bytes + len(data) > self._max_pending and not self._error:
                self._condition.wait()
            self._raise_error()
            self._pending.append(data)
            self._pending_bytes += len(data)
            self._condition.notify_all()

    def digests(self) -> Digests:
        """The digests of everything given so far (waits for the worker to catch up)."""
        with self._condition:
            while self._pending_bytes and not self._error:
                self._condition.wait()
            self._raise_error()
            return Digests(self.size, self._sha256.hexdigest(), self._md5.hexdigest())

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of everything given so far."""
        return self.digests().sha256

    @property
    def md5(self) -> str:
        """Hex MD5 of everything given so far."""
        return self.digests().md5

    def close(self) -> None:
        """Stop the worker thread, dropping what it has not hashed yet; the digests are no longer valid."""
        thread = self._thread
        if thread is None:
            return
        with self._condition:
            self._pending_bytes -= sum(len(data) for data in self._pending if data is not None)
            self._pending.clear()
            self._pending.append(None)
            self._condition.notify_all()
        thread.join()
        self._thread = None

    def __enter__(self) -> StreamDigest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"hashing the stream failed: {self._error!r}") from self._error

    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._pending:
                    self._condition.wait()
                data = self._pending.popleft()
                if data is None:
                    return
            try:
                self._sha256.update(data)
                self._md5.update(data)
            except BaseException as exc:  # handed to the stream's thread, which raises it
                with self._condition:
                    self._error = exc
                    self._condition.notify_all()
                return
            with self._condition:
                self._pending_bytes -= len(data)
                self._condition.notify_all()
