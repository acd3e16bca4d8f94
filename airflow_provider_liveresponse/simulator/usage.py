"""What a benchmark reports about a run: calls and 429s per API on the simulated clock, and each session's times.

:class:`Usage` records every call to a rate-limited API (``runliveresponse`` and the read APIs
``machineactions``, ``link``, ``library``, ``machines``, each with its own limits) at its simulated time, and every
429 it got (over a rate limit, or over the concurrent sessions). :meth:`Usage.report` gives per API the total,
the 429s, the peak in any sliding minute and any sliding hour, and the calls per simulated hour since the start;
``GET /_sim/usage``. :func:`sessions_report` gives per action its creation, pickup (Pending -> InProgress) and end
times and how long it was held before pickup; ``GET /_sim/sessions``.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.simulator.limits import READ_GROUPS

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from airflow_provider_liveresponse.simulator.lifecycle import Action

#: The APIs whose calls are recorded: submissions and each read API.
RATE_GROUPS = ("runliveresponse", *READ_GROUPS)


def peak_in_window(times: Sequence[float], window: float) -> int:
    """The most events of sorted ``times`` in any half-open window of ``window`` seconds."""
    best = 0
    start = 0
    for end, moment in enumerate(times):
        while times[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


class Usage:
    """Calls and 429s per rate-limited API, at their simulated times (from ``origin``, the simulator's start)."""

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self._calls: dict[str, list[float]] = {group: [] for group in RATE_GROUPS}
        self._throttled: dict[str, list[float]] = {group: [] for group in RATE_GROUPS}
        self._lock = threading.Lock()

    def record_call(self, group: str, now: float) -> None:
        """One call to ``group`` at ``now`` (answered or throttled)."""
        with self._lock:
            self._calls.setdefault(group, []).append(now)

    def record_throttle(self, group: str, now: float) -> None:
        """One 429 answered on ``group`` at ``now``."""
        with self._lock:
            self._throttled.setdefault(group, []).append(now)

    def report(self, now: float, since: float | None = None) -> dict[str, Any]:
        """Per API: ``calls``, ``throttled``, ``peak_per_minute``, ``peak_per_hour``, ``per_hour`` (from ``since``)."""
        start = self.origin if since is None else since
        with self._lock:
            calls = {group: _after(times, start) for group, times in self._calls.items()}
            throttled = {group: _after(times, start) for group, times in self._throttled.items()}
        apis = {
            group: {
                "calls": len(times),
                "throttled": len(throttled.get(group, [])),
                "peak_per_minute": peak_in_window(times, 60.0),
                "peak_per_hour": peak_in_window(times, 3600.0),
                "per_hour": _per_hour(times, start, now),
            }
            for group, times in calls.items()
        }
        return {"since": start, "now": now, "apis": apis}


def _after(times: list[float], start: float) -> list[float]:
    return times[bisect_left(times, start) :]


def _per_hour(times: Iterable[float], start: float, now: float) -> list[int]:
    buckets = [0] * (int(max(now - start, 0.0) // 3600) + 1)
    for moment in times:
        index = int((moment - start) // 3600)
        if 0 <= index < len(buckets):
            buckets[index] += 1
    return buckets


def session_times(action: Action, now: float) -> dict[str, Any]:
    """One action's session: ``created``, ``pickedUp``, ``ended`` (epoch or None), ``pendingSeconds`` (held before
    pickup: until pickup, or until it ended or now when never picked up) and ``heldSeconds`` (until it ended, or now).
    """
    until_pickup = action.picked_up if action.picked_up is not None else (action.ended or now)
    return {
        "id": action.id,
        "machineId": action.machine_id,
        "computerDnsName": action.computer_dns_name,
        "status": action.status,
        "created": action.created,
        "pickedUp": action.picked_up,
        "ended": action.ended,
        "pendingSeconds": until_pickup - action.created,
        "heldSeconds": (action.ended if action.ended is not None else now) - action.created,
    }


def sessions_report(actions: Iterable[Action], now: float, max_concurrent: int) -> dict[str, Any]:
    """Every action's session times, the longest wait before pickup and the peak of concurrent sessions."""
    value = [session_times(action, now) for action in actions]
    return {
        "now": now,
        "max_concurrent_sessions": max_concurrent,
        "max_pending_seconds": max((item["pendingSeconds"] for item in value), default=0.0),
        "never_picked_up": sum(1 for item in value if item["pickedUp"] is None),
        "value": value,
    }
