"""The streaming decoder: gzip decompressed in bounded steps, every member, damage detected."""

from __future__ import annotations

import gzip
import hashlib
import zlib

import pytest

from airflow_provider_liveresponse.transfers.live_response_to_object_storage import _Decoder

MIB = 1024 * 1024


def decode(data: bytes, chunk: int = 64 * 1024) -> tuple[list[bytes], _Decoder]:
    decoder = _Decoder()
    pieces = []
    for offset in range(0, len(data), chunk):
        pieces.extend(decoder.feed(memoryview(data)[offset : offset + chunk]))
    pieces.extend(decoder.finish())
    return pieces, decoder


def test_a_highly_compressible_blob_is_inflated_one_mebibyte_at_a_time() -> None:
    bomb = gzip.compress(bytes(256 * MIB), compresslevel=9)
    assert len(bomb) < MIB // 2
    decoder = _Decoder()
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
