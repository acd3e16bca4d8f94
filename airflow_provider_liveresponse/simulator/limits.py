"""Rate limits, concurrency limits and queue limits of the MDE API, in named profiles, on the simulated clock.

:class:`Limits` also holds the tenant behaviours a test or benchmark tunes the same way (``--limit NAME=VALUE``,
``POST /_sim/limits``): the page size of listings, how old an online device's ``lastSeen`` reads
(``last_seen_lag_seconds``: 120 by default; MDE's full device report comes about every 24 hours, 86400) and
after how long without signals a device reads ``Inactive`` (``inactive_after_seconds``: 7 days).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

#: Endpoint groups that share the read limits (each group has its own window, as each MDE API page has its own).
READ_GROUPS = ("machineactions", "link", "library", "machines")


@dataclass(frozen=True)
class Limits:
    """Every limit the simulator enforces, plus paging and device-report settings; durations in simulated seconds."""

    run_calls_per_minute: int = 10
    concurrent_sessions: int = 25
    queue_seconds: float = 3 * 24 * 3600
    read_calls_per_minute: int = 100
    read_calls_per_hour: int = 1500
    run_script_timeout_seconds: float = 600
    link_lifetime_seconds: float = 1800
    library_max_bytes: int = 20 * 1024 * 1024
    max_top: int = 10_000
    page_size: int = 100
    concurrency_retry_after_seconds: float = 60
    last_seen_lag_seconds: float = 120
    inactive_after_seconds: float = 7 * 24 * 3600

    def updated(self, **changes: Any) -> Limits:
        """A copy with ``changes`` applied; unknown names raise ``ValueError``."""
        known = {field.name: field.type for field in fields(self)}
        unknown = set(changes) - set(known)
        if unknown:
            raise ValueError(f"unknown limit(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The limits as a JSON-ready dict."""
        return asdict(self)


#: ``seeds``: the figures of the original documentation; ``current``: Microsoft's newest page.
PROFILES: dict[str, Limits] = {
    "seeds": Limits(),
    "current": Limits(concurrent_sessions=50, queue_seconds=2 * 3600),
}


def profile_limits(name: str) -> Limits:
    """The limits of the named profile (``seeds`` or ``current``)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None


class SlidingWindow:
    """At most ``limit`` events in any ``window`` seconds; events are simulated timestamps."""

    def __init__(self) -> None:
        self._events: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self, now: float, limit: int, window: float) -> float | None:
        """Record an event at ``now`` and return None, or return the simulated seconds to wait when full."""
        with self._lock:
            while self._events and self._events[0] <= now - window:
                self._events.popleft()
            if len(self._events) >= limit:
                # The oldest event that must leave the window for one more to fit.
                blocking = self._events[len(self._events) - limit]
                return max(blocking + window - now, 0.001)
            self._events.append(now)
            return None

    def check(self, now: float, limit: int, window: float) -> float | None:
        """Like :meth:`acquire`, without recording an event."""
        with self._lock:
            while self._events and self._events[0] <= now - window:
                self._events.popleft()
            if len(self._events) >= limit:
                blocking = self._events[len(self._events) - limit]
                return max(blocking + window - now, 0.001)
            return None

    def record(self, now: float) -> None:
        """Record an event at ``now`` unconditionally."""
        with self._lock:
            self._events.append(now)


def retry_after_header(simulated_seconds: float, speed: float) -> str:
    """The ``Retry-After`` value: real seconds to wait (simulated wait divided by speed).

    At speed 1 it is a whole number of seconds (rounded up), as MDE sends. At other speeds the real wait
    is often below a second, so it is a decimal with up to three digits (rounded up to the millisecond).
    """
    real = simulated_seconds / speed
    if speed == 1:
        return str(max(1, math.ceil(real)))
    millis = max(1, math.ceil(real * 1000))
    if millis % 1000 == 0:
        return str(millis // 1000)
    return f"{millis / 1000:.3f}".rstrip("0")
