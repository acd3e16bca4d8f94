"""The copy of one result blob into its temporary object: gzip inflated in bounded steps, digests beside it.

MDE serves a GetFile result gzip-compressed and a RunScript transcript as plain JSON. :class:`Decoder` tells
them apart by the first two bytes and inflates every gzip member at most :data:`INFLATE_STEP` bytes at a time,
so memory stays bounded even for a highly compressible blob. :func:`copy_decoded` writes the collected file (or,
with ``store_blob``, the blob as served) and hashes the decompressed content; :func:`copy_as_served` stores the
blob without inflating it. The reader hashes the blob as served (size, SHA-256, MD5) itself.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from airflow_provider_liveresponse.digests import Digests, StreamDigest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_liveresponse.transfers.progress import Progress

#: Bytes of decompressed output produced per step: bounds memory even for a highly compressible blob.
INFLATE_STEP = 1024 * 1024
#: A transcript larger than this is stored but not kept in memory to be summarised.
MAX_TRANSCRIPT_BYTES = 16 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


class BlobReader(Protocol):
    """What the copy needs of a result reader (:class:`~airflow_provider_liveresponse.hooks.result_reader.
    ResultReader`): bytes into a buffer, the count so far, the announced size and the blob's digests."""

    @property
    def bytes_read(self) -> int: ...

    @property
    def size(self) -> int | None: ...

    @property
    def sha256(self) -> str: ...

    @property
    def md5(self) -> str: ...

    def readinto(self, buffer: Any) -> int: ...


@dataclass(frozen=True)
class Streamed:
    """What one copy produced: whether the blob was gzip, the digests of each form, and the bytes written."""

    #: Whether the blob began with the gzip magic bytes.
    gzip: bool
    #: The blob as served by MDE's storage.
    blob: Digests
    #: The decompressed content (the collected file, or the transcript); None when it was not computed.
    content: Digests | None
    #: Whichever of the two was written to the destination.
    stored: Digests
    #: Bytes written to the temporary object.
    written: int
    #: A transcript's bytes (its first :data:`MAX_TRANSCRIPT_BYTES` and a little more), when asked for.
    transcript: bytes | None = None


class Decoder:
    """Decompresses a gzip stream (one or more members) in bounded steps, or passes other bytes through.

    Whether the blob is gzip is decided from its first two bytes (MDE serves GetFile results gzip-compressed,
    transcripts as plain JSON).
    """

    def __init__(self) -> None:
        self.gzip: bool | None = None
        self._head = b""
        self._inflater: Any = None
        self._members = 0

    def feed(self, data: bytes | memoryview) -> Iterator[bytes]:
        """The decoded bytes of the next part of the blob."""
        if self.gzip is None:
            self._head += bytes(data)
            if len(self._head) < len(GZIP_MAGIC):
                return
            data, self._head = self._head, b""
            self._decide(data)
        if not self.gzip:
            yield bytes(data)
            return
        yield from self._inflate(bytes(data))

    def _decide(self, head: bytes) -> None:
        self.gzip = head.startswith(GZIP_MAGIC)
        if self.gzip:
            self._inflater = zlib.decompressobj(wbits=31)

    def _inflate(self, pending: bytes) -> Iterator[bytes]:
        while True:
            inflater = self._inflater
            out = inflater.decompress(pending, INFLATE_STEP)
            if out:
                yield out
            if inflater.eof:
                self._members += 1
                rest = inflater.unused_data
                if not rest:
                    return
                if not rest.startswith(GZIP_MAGIC[: len(rest)]):
                    raise zlib.error(f"{len(rest)} bytes of trailing data after gzip member {self._members}")
                self._inflater = zlib.decompressobj(wbits=31)
                pending = rest
                continue
            pending = inflater.unconsumed_tail
            if not pending and len(out) < INFLATE_STEP:
                return

    def finish(self) -> Iterator[bytes]:
        """The last decoded bytes; raises :class:`zlib.error` if the gzip stream is incomplete."""
        if self.gzip is None:
            head, self._head = self._head, b""
            self._decide(head)
            if head:
                yield from self.feed(head)
        if not self.gzip:
            return
        tail = self._inflater.flush()
        if tail:
            yield tail
        if not self._inflater.eof:
            raise zlib.error("the gzip stream ends before its last member is complete")


class _DecodedSink:
    """Where decoded pieces go: the content digest, the sink (unless the blob is what is stored), a transcript."""

    def __init__(self, sink: BinaryIO, content: StreamDigest, *, store_blob: bool, keep_transcript: bool) -> None:
        self._sink = sink
        self._content = content
        self._store_blob = store_blob
        self.transcript = bytearray() if keep_transcript else None
        self.written = 0

    def blob(self, chunk: memoryview) -> None:
        if self._store_blob:
            self._sink.write(chunk)
            self.written += len(chunk)

    def pieces(self, pieces: Iterator[bytes]) -> None:
        for piece in pieces:
            self._content.update(piece)
            if not self._store_blob:
                self._sink.write(piece)
                self.written += len(piece)
            if self.transcript is not None and len(self.transcript) <= MAX_TRANSCRIPT_BYTES:
                self.transcript.extend(piece)


def copy_decoded(
    reader: BlobReader,
    sink: BinaryIO,
    *,
    described: str,
    chunk_size: int,
    store_blob: bool,
    keep_transcript: bool,
    progress: Progress,
) -> Streamed:
    """Read the blob to its end, writing the decompressed content (or, with ``store_blob``, the blob as served)
    to ``sink``; the content is hashed beside the copy (in a worker thread once it is large)."""
    from airflow_provider_liveresponse.exceptions import ResultIntegrityError

    decoder = Decoder()
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    try:
        with StreamDigest() as content:
            out = _DecodedSink(sink, content, store_blob=store_blob, keep_transcript=keep_transcript)
            while count := reader.readinto(buffer):
                chunk = view[:count]
                out.blob(chunk)
                out.pieces(decoder.feed(chunk))
                progress.update(reader.bytes_read)
            out.pieces(decoder.finish())
            result = content.digests()
    except zlib.error as exc:
        raise ResultIntegrityError(
            f"{described}: the blob is not a complete gzip stream ({exc}) although its length and MD5 matched; "
            "MDE served a damaged result. What to do: rerun the task; if it persists, collect the file again "
            "with a new live-response action"
        ) from None
    blob = Digests(reader.bytes_read, reader.sha256, reader.md5)
    return Streamed(
        gzip=bool(decoder.gzip),
        blob=blob,
        content=result,
        stored=blob if store_blob else result,
        written=out.written,
        transcript=bytes(out.transcript) if out.transcript is not None else None,
    )


def copy_as_served(reader: BlobReader, sink: BinaryIO, *, chunk_size: int, progress: Progress) -> Streamed:
    """Store the blob as served, not decompressed (``keep_compressed=True, content_digests=False``)."""
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    head = b""
    written = 0
    while count := reader.readinto(buffer):
        if len(head) < len(GZIP_MAGIC):
            head += bytes(view[: min(count, len(GZIP_MAGIC) - len(head))])
        sink.write(view[:count])
        written += count
        progress.update(reader.bytes_read)
    blob = Digests(reader.bytes_read, reader.sha256, reader.md5)
    return Streamed(gzip=head == GZIP_MAGIC, blob=blob, content=None, stored=blob, written=written)
