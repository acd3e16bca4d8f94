"""The simulator's clock: simulated time runs ``speed`` times faster than real time and can be advanced."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class SimulatedClock:
    """Simulated time: ``start + real elapsed x speed + manual offset``, in epoch seconds (UTC).

    Every time in the simulator (token expiry, queue limits, script timeouts, link expiry, rate-limit windows)
    is read from this clock, so a test can jump hours ahead with :meth:`advance` instead of sleeping.
    """

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed!r}")
        self.speed = float(speed)
        self._start = time.time() if start is None else float(start)
        self._real_start = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        """The simulated time in epoch seconds."""
        with self._lock:
            return self._start + (time.monotonic() - self._real_start) * self.speed + self._offset

    def now(self) -> datetime:
        """The simulated time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on (simulated time does not jump)."""
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed!r}")
        with self._lock:
            real_now = time.monotonic()
            self._start += (real_now - self._real_start) * self.speed
            self._real_start = real_now
            self.speed = float(speed)

    def advance(self, seconds: float) -> float:
        """Jump ``seconds`` of simulated time ahead; returns the new simulated time."""
        if seconds < 0:
            raise ValueError("the simulated clock only moves forward")
        with self._lock:
            self._offset += float(seconds)
        return self.time()

    def real_seconds(self, simulated_seconds: float) -> float:
        """How many real seconds pass while ``simulated_seconds`` pass on this clock."""
        return simulated_seconds / self.speed


def format_datetime(epoch_seconds: float) -> str:
    """MDE's datetime form: ISO 8601 in UTC with 7 fractional digits, e.g. ``2021-02-04T15:36:52.7788848Z``."""
    ticks = round(epoch_seconds * 10_000_000)
    seconds, fraction = divmod(ticks, 10_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:07d}Z"


def parse_datetime(text: str) -> float:
    """Parse an ISO 8601 datetime (any number of fractional digits, ``Z`` or an offset) to epoch seconds."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    fraction = ""
    if "." in value:
        head, _, rest = value.partition(".")
        digits = ""
        for char in rest:
            if not char.isdigit():
                break
            digits += char
        fraction = digits
        value = head + rest[len(digits) :]
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)
