"""Deterministic file contents for GetFile results: the same device, path and size always give the same bytes.

Bytes are produced as a stream (never a whole file in memory) and are semi-compressible like real
evidence: every 64 KiB block holds a header line, 12 KiB of seeded pseudo-random bytes and text filler.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

BLOCK_SIZE = 64 * 1024
_RANDOM_PART = 12 * 1024
_BLOCKS_PER_CHUNK = 16


def content_key(seed: int, device_id: str, path: str, size: int) -> bytes:
    """The seed material of one file: the simulator seed, the device, the path (case-insensitive) and the size."""
    return f"{seed}|{device_id.lower()}|{path.lower()}|{size}".encode()


def iter_content(key: bytes, size: int) -> Iterator[bytes]:
    """Yield exactly ``size`` bytes for ``key`` in chunks of up to 1 MiB."""
    digest = hashlib.sha256(key).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    label = digest.hex()[:16].encode()
    line = b"MDE simulator evidence " + label + b" lorem ipsum dolor sit amet consectetur\r\n"
    filler = (line * (BLOCK_SIZE // len(line) + 1))[:BLOCK_SIZE]
    remaining = size
    block_number = 0
    while remaining > 0:
        parts: list[bytes] = []
        for _ in range(_BLOCKS_PER_CHUNK):
            header = b"block %012d of %s\n" % (block_number, label)
            block = header + rng.randbytes(_RANDOM_PART) + filler[: BLOCK_SIZE - len(header) - _RANDOM_PART]
            parts.append(block)
            block_number += 1
        chunk = b"".join(parts)
        if len(chunk) > remaining:
            chunk = chunk[:remaining]
        remaining -= len(chunk)
        yield chunk
