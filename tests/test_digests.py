"""StreamDigest: the digests equal hashlib's over the same bytes in order, whether hashed inline or by its
worker thread, at any point of the stream; the worker is bounded, stops on close, and its errors surface."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from airflow_provider_liveresponse.digests import StreamDigest

KIB = 1024


def _digest_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "stream-digest"]


def _expected(data: bytes) -> tuple[int, str, str]:
    return len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.mark.parametrize("chunk", [1, 3 * KIB, 64 * KIB + 7, 1024 * KIB])
def test_large_stream_matches_hashlib_and_uses_a_thread_that_close_stops(chunk: int) -> None:
    data = os.urandom(min(3 * 1024 * KIB + 123, 4000 * chunk + 123))
    digest = StreamDigest(inline_bytes=len(data) // 5, max_pending_bytes=max(len(data) // 8, chunk))
    before = len(_digest_threads())
    for start in range(0, len(data), chunk):
        digest.update(data[start : start + chunk])
    assert len(_digest_threads()) == before + 1
    result = digest.digests()
    assert (result.size, result.sha256, result.md5) == _expected(data)
    digest.close()
    assert len(_digest_threads()) == before


def test_small_stream_is_hashed_inline_without_a_thread() -> None:
    data = os.urandom(100 * KIB)
    with StreamDigest(inline_bytes=1024 * KIB) as digest:
        for start in range(0, len(data), 4 * KIB):
            digest.update(data[start : start + 4 * KIB])
        assert digest._thread is None
        assert (digest.size, digest.sha256, digest.md5) == _expected(data)


def test_digests_mid_stream_cover_exactly_the_bytes_given_so_far() -> None:
    data = os.urandom(2 * 1024 * KIB)
    with StreamDigest(inline_bytes=64 * KIB) as digest:
        for cut in (32 * KIB, 700 * KIB, 1500 * KIB, len(data)):
            digest.update(data[digest.size : cut])
            assert (digest.size, digest.sha256, digest.md5) == _expected(data[:cut])
        digest.update(b"")
        assert digest.digests().size == len(data)


def test_pending_bytes_never_exceed_the_bound_by_more_than_one_chunk() -> None:
    chunk = 64 * KIB
    bound = 256 * KIB
    seen: list[int] = []
    with StreamDigest(inline_bytes=0, max_pending_bytes=bound) as digest:
        for _ in range(200):
            digest.update(os.urandom(chunk))
            seen.append(digest._pending_bytes)
        assert digest.digests().size == 200 * chunk
    assert max(seen) <= bound


def test_close_with_bytes_still_queued_leaves_nothing_pending() -> None:
    digest = StreamDigest(inline_bytes=0, max_pending_bytes=64 * KIB)
    for _ in range(50):
        digest.update(os.urandom(32 * KIB))
    digest.close()
    assert digest._thread is None
    assert digest._pending_bytes == 0
    assert digest.digests().size == 50 * 32 * KIB  # returns at once: no worker to wait for


def test_a_failure_in_the_worker_surfaces_in_the_streams_thread() -> None:
    digest = StreamDigest(inline_bytes=0)
    digest.update(b"x" * KIB)
    digest.update("not bytes")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="hashing the stream failed: TypeError"):
        digest.digests()
    worker = digest._thread
    assert worker is not None
    digest.close()
    assert not worker.is_alive()
