"""Calm progress lines in the task log while a result streams, timed by a clock that can be handed in.

A line is logged every ``interval`` seconds, or sooner when the download passes a further tenth of a result of
known size (but never more often than every :data:`TENTH_SPACING` seconds), then one final line. The clock is a
parameter (``time.monotonic`` by default) so that a test drives it and the lines do not depend on how fast the
machine moves bytes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

#: Seconds at least between two lines logged for a further tenth (rather than for the interval).
TENTH_SPACING = 5.0


class Progress:
    """Progress lines of one download: the announced size, calm updates with rate and time left, the total."""

    def __init__(
        self,
        log: Any,
        described: str,
        total: int | None,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._described = described
        self._total = total
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self._tenth = 0
        log.info("Downloading %s: %s", described, human(total) if total is not None else "size unknown")

    def update(self, done: int) -> None:
        """``done`` bytes have been read: log a line if the interval has passed or a further tenth is done."""
        now = self._clock()
        since = now - self._last
        tenth = done * 10 // self._total if self._total else 0
        if since < self._interval and not (tenth > self._tenth and since >= TENTH_SPACING):
            return
        self._last = now
        self._tenth = tenth
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self._total:
            left = (self._total - done) / rate if rate > 0 else float("inf")
            self._log.info(
                "Downloading %s: %s of %s (%.0f%%), %s/s, about %s left",
                self._described,
                human(done),
                human(self._total),
                100.0 * done / self._total,
                human(int(rate)),
                duration_text(left),
            )
        else:
            self._log.info("Downloading %s: %s, %s/s", self._described, human(done), human(int(rate)))

    def done(self, total: int) -> None:
        """The download is complete: log its size, time and rate."""
        elapsed = self._clock() - self._started
        rate = total / elapsed if elapsed > 0 else 0.0
        self._log.info("Downloaded %s: %s in %.1f s (%s/s)", self._described, human(total), elapsed, human(int(rate)))


def human(count: int | None) -> str:
    """A byte count for people: ``512 B``, ``1.5 MiB``."""
    if count is None:
        return "unknown size"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def duration_text(seconds: float) -> str:
    """Seconds for people: ``3m07s``, ``1h05m``, or ``unknown time`` for an infinite estimate."""
    if seconds == float("inf"):
        return "unknown time"
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
