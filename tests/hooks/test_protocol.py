"""The call protocol decides each step of a call from the attempt's outcome alone: no network, no clock."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseApiError
from airflow_provider_liveresponse.hooks.protocol import (
    Action,
    AmbiguousCall,
    Answer,
    Call,
    CallProtocol,
    NoAnswer,
    resend_step,
)
from airflow_provider_liveresponse.hooks.retry_policy import RetryPolicy, RetryState

ACTION = "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10"
MACHINE = "3d4cc40f66a1574170f0e84299da28c3dac00b2f"
CALL = Call("Reading machine action", "GET", f"/api/machineactions/{ACTION}", action_id=ACTION, machine_id=MACHINE)
POLICY = RetryPolicy(max_retry_wait=100, max_attempts=3, backoff_base=1.0, backoff_max=1.0)


def error_body(code: str, message: str = "no") -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def answer(status: int, body: bytes = b"{}", **headers: str) -> Answer:
    return Answer(status, headers, body)


def protocol(call: Call = CALL, policy: RetryPolicy = POLICY) -> CallProtocol:
    return CallProtocol(call, policy)


def test_an_accepted_status_is_returned() -> None:
    assert protocol().decide(answer(200)).action is Action.RETURN
    created = Call("Cancelling", "POST", "/x", ok=frozenset({200, 201}))
    assert protocol(created).decide(answer(201)).action is Action.RETURN


def test_the_first_401_renews_the_token_and_the_second_raises() -> None:
    p = protocol()
    step = p.decide(answer(401, error_body("Unauthorized")))
    assert step.action is Action.RENEW_TOKEN
    assert step.level == logging.INFO
    second = p.decide(answer(401, error_body("Unauthorized")))
    assert second.action is Action.RAISE
    assert second.error is not None
    assert second.error.status == 401


def test_a_429_waits_for_retry_after_and_says_how_much_budget_is_used() -> None:
    step = protocol().decide(answer(429, error_body("TooManyRequests"), **{"retry-after": "7"}))
    assert step.action is Action.WAIT
    assert step.seconds == 7.0
    assert step.message == (
        f"MDE throttled GET /api/machineactions/{ACTION} (429); waiting 7.0 s (Retry-After); "
        "7 of 100 s retry budget used"
    )


def test_a_429_without_retry_after_backs_off() -> None:
    step = protocol().decide(answer(429))
    assert step.action is Action.WAIT
    assert 0.5 <= step.seconds <= 1.0
    assert "(backoff)" in step.message


def test_a_429_past_the_budget_raises_one_message() -> None:
    step = protocol().decide(answer(429, error_body("TooManyRequests"), **{"Retry-After": "101"}))
    assert step.action is Action.RAISE
    assert step.error is not None
    assert str(step.error).startswith(
        "Reading machine action was throttled by MDE for longer than the retry budget (100 s) (HTTP 429"
    )
    assert step.error.retry_after == 101.0


def test_a_429_past_the_throttle_share_names_both_bounds() -> None:
    policy = RetryPolicy(max_retry_wait=100, max_throttle_wait=0)
    step = protocol(policy=policy).decide(answer(429, **{"Retry-After": "1"}))
    assert step.error is not None
    assert "(100 s, 0 s of it for 429s)" in str(step.error)


@pytest.mark.parametrize("outcome", [answer(503), NoAnswer(NoAnswer.CONNECTION), NoAnswer(NoAnswer.TIMEOUT)])
def test_transient_failures_are_retried_with_attempt_n_of_m(outcome: Answer | NoAnswer) -> None:
    step = protocol().decide(outcome)
    assert step.action is Action.WAIT
    assert step.message.endswith("(attempt 2 of 3)")


def test_a_5xx_past_the_attempts_raises_with_mdes_answer() -> None:
    p = protocol()
    steps = [p.decide(answer(502, error_body("BadGateway"))) for _ in range(3)]
    assert [s.action for s in steps] == [Action.WAIT, Action.WAIT, Action.RAISE]
    assert steps[-1].error is not None
    assert steps[-1].error.status == 502
    assert steps[-1].error.code == "BadGateway"
    assert "kept failing after 3 attempts" in str(steps[-1].error)


def test_no_answer_past_the_attempts_says_what_to_do() -> None:
    p = protocol()
    for _ in range(2):
        p.decide(NoAnswer(NoAnswer.TIMEOUT))
    step = p.decide(NoAnswer(NoAnswer.TIMEOUT))
    assert step.error is not None
    assert "did not answer (timed out) after 3 attempts" in str(step.error)
    assert "rerun the task later" in str(step.error)


def test_other_4xx_raise_at_once_with_mdes_code() -> None:
    step = protocol().decide(answer(400, error_body("InvalidRequestBody", "bad param")))
    assert step.action is Action.RAISE
    assert step.error is not None
    assert step.error.code == "InvalidRequestBody"
    assert "MDE said: bad param." in str(step.error)


@pytest.mark.parametrize("outcome", [answer(500), NoAnswer(NoAnswer.CONNECTION)])
def test_a_call_that_is_not_idempotent_is_ambiguous_instead_of_retried(outcome: Answer | NoAnswer) -> None:
    submit = Call("Live response", "POST", "/api/machines/x/runliveresponse", idempotent=False)
    p = protocol(submit)
    step = p.decide(outcome)
    assert step.action is Action.AMBIGUOUS
    assert isinstance(step.error, AmbiguousCall)
    assert "may have carried it out" in str(step.error)
    assert p.state.transient_attempts == 0  # resending is the caller's decision (resend_step)


def test_resending_after_an_ambiguous_failure_shares_the_budget() -> None:
    state = RetryState(RetryPolicy(max_attempts=2, backoff_base=1.0, backoff_max=1.0))
    first = resend_step(state, "Live response", "HTTP 502")
    assert first.action is Action.WAIT
    last = resend_step(state, "Live response", "HTTP 502")
    assert last.action is Action.RAISE
    assert "nothing was carried out" in str(last.error)


@pytest.mark.parametrize(
    "outcome",
    [
        answer(404, error_body("ResourceNotFound")),
        answer(429, **{"Retry-After": "1000"}),
        answer(401),
        NoAnswer(NoAnswer.CONNECTION),
    ],
)
def test_every_error_names_the_call_its_action_and_its_machine(outcome: Answer | NoAnswer) -> None:
    p = protocol(policy=RetryPolicy(max_attempts=1, max_retry_wait=1))
    p.renewed = True
    step = p.decide(outcome)
    assert step.error is not None
    assert (step.error.method, step.error.path) == ("GET", CALL.path)
    assert (step.error.action_id, step.error.machine_id) == (ACTION, MACHINE)
    assert f"Machine: {MACHINE}." in str(step.error)


def test_a_body_that_is_not_json_names_the_call() -> None:
    with pytest.raises(LiveResponseApiError, match="body that is not JSON") as info:
        CALL.payload(answer(200, b"<html>proxy</html>"))
    assert f"Machine: {MACHINE}." in str(info.value)


def test_json_that_is_not_an_object_names_the_call() -> None:
    with pytest.raises(LiveResponseApiError, match="not an object") as info:
        CALL.payload(answer(200, b"[1, 2]"))
    assert f"Action: {ACTION}." in str(info.value)


def test_a_utf8_bom_before_the_json_is_accepted() -> None:
    assert CALL.payload(answer(200, b'\xef\xbb\xbf{"id": "a"}')) == {"id": "a"}


def test_steps_log_through_the_protocols_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="airflow_provider_liveresponse.hooks.protocol")
    protocol().decide(answer(401)).log()
    assert (
        caplog.records[-1].getMessage() == f"MDE refused the access token (401) on GET {CALL.path}; fetching a new one"
    )
