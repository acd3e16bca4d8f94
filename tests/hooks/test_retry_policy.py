"""RetryPolicy and RetryState: every bound is checked when the policy is made; the budget is kept as documented."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError, LiveResponseParameterTypeError
from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
from airflow_provider_liveresponse.hooks.retry_policy import RetryPolicy, RetryState, parse_retry_after

BAD_DURATIONS = [math.nan, math.inf, -5, "x", None, True]


@pytest.mark.parametrize("value", [*BAD_DURATIONS, 0])
def test_a_bad_max_retry_wait_fails_naming_the_field(value: Any) -> None:
    with pytest.raises(LiveResponseConfigError, match="max_retry_wait"):
        RetryPolicy(max_retry_wait=value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -5, "x", True])
def test_a_bad_max_throttle_wait_fails_naming_the_field(value: Any) -> None:
    with pytest.raises(LiveResponseConfigError, match="max_throttle_wait"):
        RetryPolicy(max_throttle_wait=value)


@pytest.mark.parametrize("value", [0, -1, 2.5, "6", None, True])
def test_a_bad_max_attempts_fails_naming_the_field(value: Any) -> None:
    with pytest.raises(LiveResponseConfigError, match="max_attempts"):
        RetryPolicy(max_attempts=value)


def test_text_where_a_number_belongs_is_a_type_error() -> None:
    with pytest.raises(LiveResponseParameterTypeError):
        RetryPolicy(max_retry_wait="600")


def test_durations_may_be_timedeltas_and_zero_throttle_wait_means_raise_at_once() -> None:
    policy = RetryPolicy(max_retry_wait=timedelta(minutes=2), max_throttle_wait=0)
    assert policy.max_retry_wait == 120.0
    assert RetryState(policy).wait_for_throttle(1.0) is None


@pytest.mark.parametrize("hook_class", [LiveResponseHook, LiveResponseAsyncHook])
@pytest.mark.parametrize("field", ["max_retry_wait", "max_throttle_wait", "max_attempts", "timeout"])
def test_both_hooks_check_every_bound_when_constructed(hook_class: Any, field: str) -> None:
    with pytest.raises(LiveResponseConfigError, match=field):
        hook_class("mde_never_read", **{field: math.nan if field != "max_attempts" else 0})


@pytest.mark.parametrize("hook_class", [LiveResponseHook, LiveResponseAsyncHook])
@pytest.mark.parametrize("conn_id", [None, "", "  ", 5])
def test_both_hooks_check_the_connection_id(hook_class: Any, conn_id: Any) -> None:
    with pytest.raises(LiveResponseConfigError, match="mde_conn_id"):
        hook_class(conn_id)


@pytest.mark.parametrize("timeout", [(10.0, -1.0), (math.nan, 5.0), (1.0, 2.0, 3.0), "30", None])
def test_the_sync_hook_checks_both_parts_of_its_timeout(timeout: Any) -> None:
    with pytest.raises(LiveResponseConfigError, match="timeout"):
        LiveResponseHook("mde_never_read", timeout=timeout)


def test_the_budget_bounds_the_total_wait() -> None:
    state = RetryState(RetryPolicy(max_retry_wait=10))
    assert state.wait_for_throttle(6.0) == 6.0
    assert state.wait_for_throttle(6.0) is None
    assert state.waited == 6.0


def test_the_throttle_share_of_the_budget_is_bounded_apart() -> None:
    state = RetryState(RetryPolicy(max_retry_wait=100, max_throttle_wait=5))
    assert state.wait_for_throttle(4.0) == 4.0
    assert state.wait_for_throttle(4.0) is None


def test_transient_attempts_are_counted_against_max_attempts() -> None:
    state = RetryState(RetryPolicy(max_attempts=3, backoff_base=0.01))
    assert state.wait_for_transient("HTTP 503") is not None
    assert state.wait_for_transient("HTTP 503") is not None
    assert state.wait_for_transient("HTTP 503") is None
    assert state.transient_attempts == 3


def test_backoff_doubles_with_jitter_up_to_its_ceiling() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=4.0)
    assert 0.5 <= policy.backoff(1) <= 1.0
    assert 1.0 <= policy.backoff(2) <= 2.0
    assert 2.0 <= policy.backoff(9) <= 4.0


@pytest.mark.parametrize(
    ("header", "seconds"), [(None, None), ("", None), ("2", 2.0), ("0.25", 0.25), ("-3", 0.0), ("nan", None)]
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
