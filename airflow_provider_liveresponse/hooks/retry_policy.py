"""How the hooks retry: what is transient, how long to wait, and when the budget is spent.

Shared by the sync and async hooks so both follow MDE's limits the same way: 429 waits for ``Retry-After``
(or backs off when it is absent), 5xx, resets and timeouts back off exponentially with jitter, other 4xx fail
at once, and no call waits longer in total than the caller's budget.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.exceptions import LiveResponseApiError
from airflow_provider_liveresponse.models import ApiErrorBody

if TYPE_CHECKING:
    from collections.abc import Mapping

#: HTTP statuses that are worth retrying.
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying one API call: attempts, the total wait, and the backoff curve.

    Every field is checked when the policy is made (durations may be numbers of seconds or timedeltas): a NaN
    budget would make every ``waited > budget`` comparison false and wait out 429s forever.
    """

    #: Total seconds one call may spend waiting between attempts (429 and transient errors together).
    max_retry_wait: float = 600.0
    #: Seconds of that budget one call may spend waiting out 429s; None: all of it. A deferrable operator sets
    #: 0 so a throttled call raises at once and the task defers instead of holding its worker slot.
    max_throttle_wait: float | None = None
    #: Attempts for transient errors (5xx, resets, timeouts); 429 is bounded by ``max_retry_wait`` only.
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0

    def __post_init__(self) -> None:
        checked = {
            "max_retry_wait": validation.duration(self.max_retry_wait, "max_retry_wait"),
            "max_throttle_wait": validation.optional_duration(
                self.max_throttle_wait, "max_throttle_wait", zero_allowed=True
            ),
            "max_attempts": validation.count(self.max_attempts, "max_attempts"),
            "backoff_base": validation.duration(self.backoff_base, "backoff_base"),
            "backoff_max": validation.duration(self.backoff_max, "backoff_max"),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: normalise (a timedelta becomes seconds) once, here

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter for the ``attempt``-th retry (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * (2.0 ** max(attempt - 1, 0)))
        jitter: float = random.uniform(0, ceiling / 2)
        return ceiling / 2 + jitter


@dataclass
class RetryState:
    """Attempts and waits of one call so far, against its policy."""

    policy: RetryPolicy
    transient_attempts: int = 0
    waited: float = 0.0
    throttle_waited: float = 0.0
    history: list[str] = field(default_factory=list)

    def wait_for_throttle(self, retry_after: float | None) -> float | None:
        """Seconds to wait after a 429, or None when the budget is spent."""
        delay = retry_after if retry_after is not None else self.policy.backoff(len(self.history) + 1)
        limit = self.policy.max_throttle_wait
        if limit is not None and self.throttle_waited + max(delay, 0.0) > limit:
            return None
        taken = self._take(delay, "429")
        if taken is not None:
            self.throttle_waited += taken
        return taken

    def wait_for_transient(self, reason: str) -> float | None:
        """Seconds to wait after a 5xx, reset or timeout, or None when attempts or budget are spent."""
        self.transient_attempts += 1
        if self.transient_attempts >= self.policy.max_attempts:
            return None
        return self._take(self.policy.backoff(self.transient_attempts), reason)

    def _take(self, delay: float, reason: str) -> float | None:
        delay = max(delay, 0.0)
        if self.waited + delay > self.policy.max_retry_wait:
            return None
        self.waited += delay
        self.history.append(reason)
        return delay


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds, possibly fractional, or an HTTP date); None if absent."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        # "nan" would slip past every budget comparison; treat it as absent (back off instead).
        return None if math.isnan(seconds) else max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def api_error(
    message: str,
    *,
    status: int,
    body: bytes | str | None,
    headers: Mapping[str, str],
    method: str,
    path: str,
    action_id: str | None = None,
    machine_id: str | None = None,
) -> LiveResponseApiError:
    """A :class:`LiveResponseApiError` from an error response; only the parsed error fields are kept."""
    code = api_message = correlation = None
    parsed = _parse_error_body(body)
    if parsed is not None:
        code = parsed.error.code or None
        api_message = parsed.error.message or None
        correlation = parsed.error.target
    correlation = correlation or headers.get("x-ms-correlation-id") or headers.get("request-id")
    return LiveResponseApiError(
        message,
        status=status,
        code=code,
        api_message=api_message,
        correlation_id=correlation,
        method=method,
        path=path,
        action_id=action_id,
        machine_id=machine_id,
        retry_after=parse_retry_after(headers.get("Retry-After")) if status == 429 else None,
    )


def _parse_error_body(body: bytes | str | None) -> ApiErrorBody | None:
    if not body:
        return None
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return None
    try:
        return ApiErrorBody.model_validate(data)
    except ValueError:
        return None
