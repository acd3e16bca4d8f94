"""Client-side pacing of a sweep: a token bucket for submissions that learns from Retry-After, and read budgets.

MDE's limits are per tenant: 10 submissions a minute, 25 (or 50) concurrent sessions, 100 reads a minute and
1,500 an hour on each read API. The sweep stays under them so that a 429 is the exception, not the control loop.
Every class takes a clock (seconds, monotonic) so tests hand in a fake one.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from airflow_provider_liveresponse import validation

if TYPE_CHECKING:
    from collections.abc import Callable

#: After a 429, the rate is multiplied by this, then grows back by :data:`RECOVERY` of the ceiling per success.
DECREASE = 0.5
RECOVERY = 0.1
#: MDE counts a tenant's submissions in a sliding minute (10 at most): any ``WINDOW`` submissions answered are
#: kept at least ``WINDOW`` spacings (at the ceiling rate) apart.
WINDOW = 10


class SubmissionLimiter:
    """Submissions at ``per_minute`` a minute, each in its slot of an ideal schedule (one spacing after the previous
    slot, not after the previous submission, so the loop's lateness does not slow the sweep; after a pause longer
    than a spacing the schedule starts again from now: burst 1). Catching up never lets MDE see more than
    ``WINDOW`` in any ``WINDOW`` spacings: a submission also waits until the one ``WINDOW`` back was *answered* that
    long ago, and MDE counted it before its answer came back, whatever the request's latency. A 429
    (:meth:`throttled`) pauses for Retry-After and halves the rate; each accepted submission (:meth:`accepted`)
    brings it back a tenth of the way (multiplicative decrease, additive increase)."""

    def __init__(self, per_minute: float, clock: Callable[[], float]) -> None:
        self.ceiling = validation.duration(per_minute, "submissions_per_minute")
        self.rate = self.ceiling
        self.clock = clock
        self.next_at = clock()
        self.throttles = 0
        self.window = WINDOW * 60.0 / self.ceiling
        self.answered: deque[float] = deque(maxlen=WINDOW)
        self._unanswered: float | None = None

    @property
    def spacing(self) -> float:
        """Seconds between two submissions at the current rate."""
        return 60.0 / self.rate

    def wait(self) -> float:
        """Seconds until a submission may go (0: now)."""
        now = self.clock()
        self._settle(now)
        ready = self.next_at
        if len(self.answered) == WINDOW:
            ready = max(ready, self.answered[0] + self.window)
        return max(0.0, ready - now)

    def take(self) -> None:
        """A submission goes now: the next slot is a spacing after this one's (a spacing after now when this one
        is a spacing or more late)."""
        now = self.clock()
        self._settle(now)
        slot = self.next_at if now < self.next_at + self.spacing else now
        self.next_at = slot + self.spacing
        self._unanswered = now

    def accepted(self) -> None:
        """MDE took a submission: it counts in MDE's window until a window after now; the rate recovers a step."""
        self.answered.append(self.clock())
        self._unanswered = None
        self.rate = min(self.ceiling, self.rate + self.ceiling * RECOVERY)

    def throttled(self, retry_after: float | None) -> None:
        """MDE answered 429 (it did not count it): wait Retry-After (a spacing when it gave none), halve the rate."""
        self._unanswered = None
        self.throttles += 1
        self.rate = max(self.ceiling * 0.05, self.rate * DECREASE)
        pause = retry_after if retry_after is not None and retry_after > 0 else self.spacing
        self.next_at = max(self.next_at, self.clock() + pause)

    def _settle(self, now: float) -> None:
        """A submission neither accepted nor throttled (MDE refused it otherwise) still counts in MDE's window: its
        answer came back by now."""
        if self._unanswered is not None:
            self.answered.append(now)
            self._unanswered = None


class ReadBudget:
    """At most ``per_minute`` and ``per_hour`` reads of one API in any sliding minute and hour."""

    def __init__(self, api: str, per_minute: int, per_hour: int, clock: Callable[[], float]) -> None:
        self.api = api
        self.per_minute = validation.count(per_minute, "read_calls_per_minute")
        self.per_hour = validation.count(per_hour, "read_calls_per_hour")
        self.clock = clock
        self.calls: deque[float] = deque()

    def wait(self) -> float:
        """Seconds until one more read stays inside both windows (0: now)."""
        now = self.clock()
        while self.calls and self.calls[0] <= now - 3600:
            self.calls.popleft()
        waits = [0.0]
        if len(self.calls) >= self.per_hour:
            waits.append(self.calls[-self.per_hour] + 3600 - now)
        recent = [moment for moment in self.calls if moment > now - 60]
        if len(recent) >= self.per_minute:
            waits.append(recent[-self.per_minute] + 60 - now)
        return max(waits)

    def take(self) -> None:
        """A read goes now."""
        self.calls.append(self.clock())

    def interval(self, share: float = 0.5) -> float:
        """The shortest polling interval that keeps polling within ``share`` of the hour budget."""
        return 3600.0 / max(1.0, self.per_hour * share)


__all__ = ["ReadBudget", "SubmissionLimiter"]
