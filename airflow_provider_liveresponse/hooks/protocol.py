"""The call protocol: what a hook does after each attempt of an API call, decided without any I/O.

Both hooks send a request, describe what came back as an :class:`Answer` (status, headers, body) or a
:class:`NoAnswer` (the connection failed or timed out), and ask :meth:`CallProtocol.decide` for the next
:class:`Step`:

- ``RETURN`` the answer (its status is one the call accepts);
- ``RENEW_TOKEN`` and send again (the first 401 of the call: the token was refused);
- ``WAIT`` ``seconds`` and send again (a 429 within the budget; a 5xx, reset or timeout of an idempotent call
  within its attempts);
- ``RAISE`` :attr:`Step.error`, a :class:`LiveResponseApiError` built here with the call's method, path,
  action id and machine id;
- ``AMBIGUOUS``: a call that is not idempotent failed in a way that leaves open whether MDE carried it out
  (:class:`AmbiguousCall`); the caller looks for its effect before it sends again (:func:`resend_step`).

The protocol holds the call's budget (a :class:`RetryState` of the hook's :class:`RetryPolicy`) and writes the
log line of every renewal and wait (:meth:`Step.log`), so the two hooks decide, fail and log alike.
"""

from __future__ import annotations

import codecs
import enum
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from requests.structures import CaseInsensitiveDict

from airflow_provider_liveresponse.exceptions import LiveResponseApiError
from airflow_provider_liveresponse.hooks.responses import json_object
from airflow_provider_liveresponse.hooks.retry_policy import (
    TRANSIENT_STATUSES,
    RetryPolicy,
    RetryState,
    api_error,
    parse_retry_after,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

_RERUN = "What to do: rerun the task later; if it persists, check the network path to the connection's api_url"


@dataclass(frozen=True)
class Call:
    """One API call as the protocol sees it: what it does (for messages), where, and which answers are success."""

    what: str
    method: str
    path: str
    ok: frozenset[int] = frozenset({200})
    idempotent: bool = True
    action_id: str | None = None
    machine_id: str | None = None

    @property
    def context(self) -> dict[str, Any]:
        """What every error of this call names: method, path, action id and machine id."""
        return {"method": self.method, "path": self.path, "action_id": self.action_id, "machine_id": self.machine_id}

    def error(self, message: str, *, status: int | None = None, answer: Answer | None = None) -> LiveResponseApiError:
        """A :class:`LiveResponseApiError` naming this call (and MDE's error fields, given an error answer)."""
        if answer is not None:
            return api_error(message, status=answer.status, body=answer.body, headers=answer.headers, **self.context)
        return LiveResponseApiError(message, status=status, **self.context)

    def payload(self, answer: Answer) -> dict[str, Any]:
        """The JSON object of a successful answer, or a clear error naming this call."""
        body = answer.body[len(codecs.BOM_UTF8) :] if answer.body.startswith(codecs.BOM_UTF8) else answer.body
        try:
            parsed = json.loads(body)
        except ValueError:
            raise self.error(
                f"{self.what}: MDE answered HTTP {answer.status} with a body that is not JSON; this is usually a "
                "proxy or an outage page in the way: rerun the task, and check the connection's api_url",
                status=answer.status,
            ) from None
        return json_object(parsed, self.what, status=answer.status, **self.context)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers (looked up case-insensitively) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", CaseInsensitiveDict(self.headers))


@dataclass(frozen=True)
class NoAnswer:
    """No HTTP answer: the connection failed (refused, reset, closed) or a timeout passed."""

    reason: str

    CONNECTION = "connection failed"
    TIMEOUT = "timed out"


class Action(enum.Enum):
    """What a hook does next."""

    RETURN = "return"
    RENEW_TOKEN = "renew the token"  # noqa: S105 - an action, not a secret
    WAIT = "wait"
    RAISE = "raise"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class Step:
    """One decision: the action, the seconds to wait, the error to raise and the log line to write."""

    action: Action
    seconds: float = 0.0
    error: LiveResponseApiError | None = None
    message: str = ""
    level: int = logging.WARNING

    def log(self) -> None:
        """Write this step's log line (renewals and waits have one)."""
        if self.message:
            log.log(self.level, self.message)

    def raise_error(self) -> NoReturn:
        """Raise this step's error (a ``RAISE`` or ``AMBIGUOUS`` step)."""
        if self.error is None:  # pragma: no cover - only RAISE and AMBIGUOUS steps are raised
            raise AssertionError(f"a {self.action.value} step has no error")
        raise self.error


class AmbiguousCall(LiveResponseApiError):
    """A call that is not idempotent failed after it may have been carried out (reset, timeout or 5xx).

    The hook reconciles (looks for the effect) before it sends again; raised past that, it says so.
    """

    def __init__(self, call: Call, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"{call.what}: the answer was lost ({reason}) and MDE may have carried it out, so it was not sent "
            "again. What to do: check in the Defender portal whether it took effect before you rerun",
            **call.context,
        )


class CallProtocol:
    """The decisions of one call, attempt after attempt, within ``state``'s budget (a new one by default)."""

    def __init__(self, call: Call, policy: RetryPolicy, state: RetryState | None = None) -> None:
        self.call = call
        self.policy = policy
        self.state = state or RetryState(policy)
        self.renewed = False

    def decide(self, outcome: Answer | NoAnswer) -> Step:
        """The next step after ``outcome``, the result of the latest attempt."""
        if isinstance(outcome, NoAnswer):
            return self._transient(outcome.reason, None)
        status = outcome.status
        if status in self.call.ok:
            return Step(Action.RETURN)
        if status == 401 and not self.renewed:
            self.renewed = True
            return Step(
                Action.RENEW_TOKEN,
                message=f"MDE refused the access token (401) on {self.call.method} {self.call.path}; "
                "fetching a new one",
                level=logging.INFO,
            )
        if status == 429:
            return self._throttled(outcome)
        if status in TRANSIENT_STATUSES:
            return self._transient(f"HTTP {status}", outcome)
        return Step(Action.RAISE, error=self.call.error(f"{self.call.what} failed", answer=outcome))

    def _throttled(self, answer: Answer) -> Step:
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        delay = self.state.wait_for_throttle(retry_after)
        policy = self.policy
        if delay is None:
            share = f", {policy.max_throttle_wait:g} s of it for 429s" if policy.max_throttle_wait is not None else ""
            message = f"{self.call.what} was throttled by MDE for longer than the retry budget "
            return Step(
                Action.RAISE, error=self.call.error(f"{message}({policy.max_retry_wait:g} s{share})", answer=answer)
            )
        return Step(
            Action.WAIT,
            seconds=delay,
            message=f"MDE throttled {self.call.method} {self.call.path} (429); waiting {delay:.1f} s "
            f"({'Retry-After' if retry_after is not None else 'backoff'}); {self.state.waited:.0f} of "
            f"{policy.max_retry_wait:.0f} s retry budget used",
        )

    def _transient(self, reason: str, answer: Answer | None) -> Step:
        call = self.call
        if not call.idempotent:
            return Step(Action.AMBIGUOUS, error=AmbiguousCall(call, reason))
        delay = self.state.wait_for_transient(reason)
        attempts = self.state.transient_attempts
        if delay is None and answer is not None:
            return Step(
                Action.RAISE, error=call.error(f"{call.what} kept failing after {attempts} attempts", answer=answer)
            )
        if delay is None:
            return Step(
                Action.RAISE,
                error=call.error(
                    f"{call.what} failed: MDE did not answer ({reason}) after {attempts} attempts. {_RERUN}"
                ),
            )
        return Step(
            Action.WAIT,
            seconds=delay,
            message=f"{call.method} {call.path} failed ({reason}); retrying in {delay:.1f} s "
            f"(attempt {attempts + 1} of {self.policy.max_attempts})",
        )


def resend_step(state: RetryState, what: str, reason: str) -> Step:
    """After an ambiguous failure whose effect was not found: ``WAIT`` then send again, or ``RAISE``."""
    delay = state.wait_for_transient(reason)
    if delay is None:
        return Step(
            Action.RAISE,
            error=LiveResponseApiError(
                f"{what} failed: MDE did not answer ({reason}) after {state.transient_attempts} attempts, and "
                f"nothing was carried out. {_RERUN}"
            ),
        )
    return Step(
        Action.WAIT,
        seconds=delay,
        message=f"{what} failed ({reason}) and was not carried out; retrying in {delay:.1f} s",
    )


__all__ = ["Action", "AmbiguousCall", "Answer", "Call", "CallProtocol", "NoAnswer", "Step", "resend_step"]
