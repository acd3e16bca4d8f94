"""Faults switched on per endpoint group for tests: errors, resets, slow answers, cut blobs, lost responses.

Groups: ``token``, ``runliveresponse``, ``get_action``, ``list_actions``, ``cancel``, ``link``, ``library``,
``machines`` and ``blob``. Each group has one :class:`FaultRule`; set it with
``sim.state.faults.set("get_action", fail_next=2, status=503)`` or ``POST /_sim/faults``.

- ``fail_next`` / ``error_rate`` + ``status``: answer 500, 502 or 503 (``InternalServerError`` /
  ``BadGateway`` / ``ServiceUnavailable`` body) to the next N calls, and then to a seeded random share.
- ``reset_next`` / ``reset_rate``: close the connection without any HTTP response (the client sees a
  connection error such as ``RemoteDisconnected``).
- ``delay_seconds`` (+ ``delay_next``, None for every call): wait that many *real* seconds first.
- ``unauthorized_next``: 401 ``Unauthorized`` as if the token had expired.
- ``throttle_next`` + ``throttle_retry_after``: 429 ``TooManyRequests`` to the next N calls, with a
  ``Retry-After`` of that many simulated seconds (``True``: 60; ``False``: no header at all).
- ``malformed_next``: 200 with a body that is not valid JSON.
- ``commit_then_drop_next`` (runliveresponse): create the action, then reset the connection.
- ``cut_after_bytes`` + ``cut_mode`` (``once`` or ``always``, blob): the blob breaks at that byte offset:
  a download covering the offset gets its headers (full ``Content-Length``) and the bytes before the offset,
  then the connection closes. ``once`` heals after the first cut; ``always`` cuts every download that
  reaches the offset (a range read starting at or past it gets no body at all), so a resuming client never
  gets past it.
- ``no_content_md5`` (blob): serve blobs without ``Content-MD5`` / ``x-ms-blob-content-md5`` (as Azure serves a
  blob uploaded in blocks without an MD5), until cleared.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

FAULT_GROUPS = (
    "token",
    "runliveresponse",
    "get_action",
    "list_actions",
    "cancel",
    "link",
    "library",
    "machines",
    "blob",
)
ERROR_STATUSES = (500, 502, 503)

FaultKind = Literal["error", "reset", "unauthorized", "throttle", "malformed", "commit_then_drop"]


@dataclass(frozen=True)
class FaultRule:
    """The faults armed for one endpoint group."""

    fail_next: int = 0
    error_rate: float = 0.0
    status: int = 503
    reset_next: int = 0
    reset_rate: float = 0.0
    delay_seconds: float = 0.0
    delay_next: int | None = None
    unauthorized_next: int = 0
    throttle_next: int = 0
    throttle_retry_after: float | bool = True
    malformed_next: int = 0
    commit_then_drop_next: int = 0
    cut_after_bytes: int | None = None
    cut_mode: Literal["once", "always"] = "once"
    no_content_md5: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The rule as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one call: wait ``delay`` real seconds, then misbehave as ``kind`` (None: behave).

    ``retry_after`` is the simulated wait to announce with a ``throttle`` (None: no ``Retry-After``).
    """

    delay: float = 0.0
    kind: FaultKind | None = None
    status: int = 503
    retry_after: float | None = None


class Faults:
    """The armed faults of every group; decisions consume the ``*_next`` counters and use a seeded RNG."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: dict[str, FaultRule] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def set(self, group: str, **changes: Any) -> FaultRule:
        """Arm faults on ``group`` (merged into what is armed already); returns the group's rule."""
        _check_group(group)
        known = {field.name for field in fields(FaultRule)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(
                f"unknown fault setting(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            )
        status = changes.get("status")
        if status is not None and status not in ERROR_STATUSES:
            raise ValueError(f"status must be one of {ERROR_STATUSES}, got {status!r}")
        if changes.get("cut_mode", "once") not in ("once", "always"):
            raise ValueError("cut_mode must be 'once' or 'always'")
        with self._lock:
            rule = replace(self._rules.get(group, FaultRule()), **changes)
            self._rules[group] = rule
            return rule

    def clear(self, group: str | None = None) -> None:
        """Disarm the faults of ``group``, or of every group."""
        with self._lock:
            if group is None:
                self._rules.clear()
            else:
                _check_group(group)
                self._rules.pop(group, None)

    def rule(self, group: str) -> FaultRule:
        """The rule armed on ``group`` (an empty rule when none)."""
        _check_group(group)
        with self._lock:
            return self._rules.get(group, FaultRule())

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Every armed rule, by group."""
        with self._lock:
            return {group: rule.as_dict() for group, rule in self._rules.items()}

    def decide(self, group: str) -> FaultDecision:
        """Decide the fate of one call to ``group`` and consume what it uses."""
        with self._lock:
            rule = self._rules.get(group)
            if rule is None:
                return FaultDecision()
            delay = 0.0
            if rule.delay_seconds > 0 and (rule.delay_next is None or rule.delay_next > 0):
                delay = rule.delay_seconds
                if rule.delay_next is not None:
                    rule = replace(rule, delay_next=rule.delay_next - 1)
            kind: FaultKind | None = None
            if rule.reset_next > 0:
                kind, rule = "reset", replace(rule, reset_next=rule.reset_next - 1)
            elif rule.unauthorized_next > 0:
                kind, rule = "unauthorized", replace(rule, unauthorized_next=rule.unauthorized_next - 1)
            elif rule.throttle_next > 0:
                kind, rule = "throttle", replace(rule, throttle_next=rule.throttle_next - 1)
            elif rule.fail_next > 0:
                kind, rule = "error", replace(rule, fail_next=rule.fail_next - 1)
            elif rule.malformed_next > 0:
                kind, rule = "malformed", replace(rule, malformed_next=rule.malformed_next - 1)
            elif rule.commit_then_drop_next > 0:
                kind, rule = "commit_then_drop", replace(rule, commit_then_drop_next=rule.commit_then_drop_next - 1)
            elif rule.reset_rate > 0 and self._rng.random() < rule.reset_rate:
                kind = "reset"
            elif rule.error_rate > 0 and self._rng.random() < rule.error_rate:
                kind = "error"
            self._rules[group] = rule
            announce = rule.throttle_retry_after
            retry_after = None if announce is False else 60.0 if announce is True else float(announce)
            return FaultDecision(delay=delay, kind=kind, status=rule.status, retry_after=retry_after)

    def take_blob_cut(self, first: int, last: int) -> int | None:
        """How many bytes of a download of blob bytes ``first..last`` to send before the cut (None: all)."""
        with self._lock:
            rule = self._rules.get("blob")
            if rule is None or rule.cut_after_bytes is None or rule.cut_after_bytes > last:
                return None
            if rule.cut_mode == "once":
                self._rules["blob"] = replace(rule, cut_after_bytes=None)
            return max(rule.cut_after_bytes - first, 0)


def _check_group(group: str) -> None:
    if group not in FAULT_GROUPS:
        raise ValueError(f"unknown fault group {group!r}; choose one of {', '.join(FAULT_GROUPS)}")
