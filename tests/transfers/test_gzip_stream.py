"""The copy of a result blob: gzip decompressed in bounded steps, every member, damage detected; what is written,
hashed and kept of it in each mode."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from typing import Any

import pytest

from airflow_provider_liveresponse.exceptions import ResultIntegrityError
from airflow_provider_liveresponse.transfers.gzip_stream import (
    MAX_TRANSCRIPT_BYTES,
    Decoder,
    Streamed,
    copy_as_served,
    copy_decoded,
)
from airflow_provider_liveresponse.transfers.progress import Progress
from tests.transfers.transfer_helpers import FakeClock, LogLines

MIB = 1024 * 1024


def decode(data: bytes, chunk: int = 64 * 1024) -> tuple[list[bytes], Decoder]:
    decoder = Decoder()
    pieces = []
    for offset in range(0, len(data), chunk):
        pieces.extend(decoder.feed(memoryview(data)[offset : offset + chunk]))
    pieces.extend(decoder.finish())
    return pieces, decoder


def test_a_highly_compressible_blob_is_inflated_one_mebibyte_at_a_time() -> None:
    bomb = gzip.compress(bytes(256 * MIB), compresslevel=9)
    assert len(bomb) < MIB // 2
    decoder = Decoder()
    digest, total, largest = hashlib.sha256(), 0, 0
    for piece in [*decoder.feed(bomb), *decoder.finish()]:
        digest.update(piece)
        total += len(piece)
        largest = max(largest, len(piece))
    assert total == 256 * MIB
    assert largest <= MIB
    assert digest.hexdigest() == hashlib.sha256(bytes(256 * MIB)).hexdigest()


def test_every_member_of_a_multi_member_gzip_is_decoded() -> None:
    data = gzip.compress(b"first member\n") + gzip.compress(b"second member\n")
    pieces, decoder = decode(data, chunk=7)
    assert b"".join(pieces) == b"first member\nsecond member\n"
    assert decoder.gzip is True


@pytest.mark.parametrize("chunk", [1, 2, 3, 4096])
def test_bytes_that_are_not_gzip_pass_through_whatever_the_chunking(chunk: int) -> None:
    data = b'{"script_name": "triage.ps1", "exit_code": 0}'
    pieces, decoder = decode(data, chunk=chunk)
    assert b"".join(pieces) == data
    assert decoder.gzip is False


@pytest.mark.parametrize("data", [b"", b"\x1f"])
def test_empty_and_one_byte_blobs_are_stored_as_they_are(data: bytes) -> None:
    pieces, decoder = decode(data)
    assert b"".join(pieces) == data
    assert decoder.gzip is False


def test_a_truncated_gzip_stream_is_an_error() -> None:
    data = gzip.compress(bytes(range(256)) * 1000)
    with pytest.raises(zlib.error, match="ends before"):
        decode(data[:-9])


def test_a_corrupted_gzip_stream_is_an_error() -> None:
    data = bytearray(gzip.compress(b"evidence" * 1000))
    data[-6] ^= 0xFF  # the CRC-32 of the member
    with pytest.raises(zlib.error):
        decode(bytes(data))


def test_trailing_bytes_after_the_last_member_are_an_error() -> None:
    with pytest.raises(zlib.error, match="trailing data"):
        decode(gzip.compress(b"evidence") + b"garbage!")


# -- the copy loops ------------------------------------------------------------------------------------------


class FakeReader:
    """A result reader over bytes in memory, read in pieces of at most ``piece`` bytes."""

    def __init__(self, data: bytes, piece: int = 100_000) -> None:
        self._data = data
        self._piece = piece
        self.bytes_read = 0
        self.size: int | None = len(data)
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._data[self.bytes_read : self.bytes_read + min(len(view), self._piece)]
        view[: len(chunk)] = chunk
        self.bytes_read += len(chunk)
        return len(chunk)


def progress() -> Progress:
    return Progress(LogLines(), "command 0", None, 30.0, clock=FakeClock())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decoded(
    reader: FakeReader, *, store_blob: bool = False, keep_transcript: bool = False, described: str = "c"
) -> tuple[Streamed, bytes]:
    """Copy ``reader``'s blob through :func:`copy_decoded`; what it returned and what it wrote."""
    sink = io.BytesIO()
    result = copy_decoded(
        reader,
        sink,
        described=described,
        chunk_size=65536,
        store_blob=store_blob,
        keep_transcript=keep_transcript,
        progress=progress(),
    )
    return result, sink.getvalue()


CONTENT = bytes(range(256)) * 4096  # 1 MiB
BLOB = gzip.compress(CONTENT)


def test_the_collected_file_is_written_decompressed_and_both_forms_are_hashed() -> None:
    result, written = decoded(FakeReader(BLOB))
    assert written == CONTENT
    assert result.gzip is True
    assert result.stored == result.content
    assert result.stored.sha256 == sha256(CONTENT)
    assert (result.blob.size, result.blob.sha256) == (len(BLOB), sha256(BLOB))
    assert result.written == len(CONTENT)
    assert result.transcript is None


def test_store_blob_writes_the_blob_as_served_and_still_hashes_the_content() -> None:
    result, written = decoded(FakeReader(BLOB), store_blob=True)
    assert written == BLOB
    assert result.stored == result.blob
    assert result.content is not None
    assert result.content.sha256 == sha256(CONTENT)
    assert result.written == len(BLOB)


def test_a_transcript_is_kept_for_its_summary_up_to_the_limit() -> None:
    transcript = b'{"script_name": "triage.ps1", "exit_code": 0}'
    result, _ = decoded(FakeReader(transcript), keep_transcript=True)
    assert result.gzip is False
    assert result.transcript == transcript

    large = b"x" * (MAX_TRANSCRIPT_BYTES + 3 * 65536)
    result, _ = decoded(FakeReader(large, piece=65536), keep_transcript=True)
    assert result.transcript is not None
    assert MAX_TRANSCRIPT_BYTES < len(result.transcript) <= MAX_TRANSCRIPT_BYTES + 65536  # then no more is kept
    assert result.stored.size == len(large)


def test_a_damaged_gzip_blob_fails_as_an_integrity_error_naming_the_command() -> None:
    with pytest.raises(ResultIntegrityError, match=r"^command 3 of action a: the blob is not a complete gzip stream"):
        decoded(FakeReader(BLOB[:-9]), described="command 3 of action a")


def test_copy_as_served_stores_the_blob_without_inflating_it_and_tells_gzip_from_its_first_bytes() -> None:
    sink = io.BytesIO()
    result = copy_as_served(FakeReader(BLOB, piece=1), sink, chunk_size=65536, progress=progress())
    assert sink.getvalue() == BLOB
    assert result.gzip is True
    assert result.content is None
    assert result.stored == result.blob
    assert result.blob.sha256 == sha256(BLOB)
    plain = copy_as_served(FakeReader(b"plain text"), io.BytesIO(), chunk_size=65536, progress=progress())
    assert plain.gzip is False
