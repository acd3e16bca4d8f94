"""The shared parameter checks: every bad value fails naming its field; good values come back normalised."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError, LiveResponseParameterTypeError


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -5, -0.1, 0])
def test_duration_refuses_nan_infinite_negative_and_zero(bad: float) -> None:
    with pytest.raises(LiveResponseConfigError, match="max_retry_wait"):
        validation.duration(bad, "max_retry_wait")


@pytest.mark.parametrize("bad", ["30", None, [1], True, object()])
def test_duration_refuses_non_numbers_as_a_type_error_naming_the_field(bad: object) -> None:
    with pytest.raises(LiveResponseParameterTypeError, match="poll_interval") as caught:
        validation.duration(bad, "poll_interval")
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, LiveResponseConfigError)


def test_duration_accepts_numbers_and_timedeltas() -> None:
    assert validation.duration(5, "x") == 5.0
    assert validation.duration(timedelta(minutes=2), "x") == 120.0
    assert validation.duration(0, "x", zero_allowed=True) == 0.0


def test_duration_maximum_is_named() -> None:
    with pytest.raises(LiveResponseConfigError, match=r"pickup_timeout must be at most 259200"):
        validation.duration(timedelta(days=4), "pickup_timeout", maximum=259200)


def test_optional_duration_none_is_off() -> None:
    assert validation.optional_duration(None, "x") is None
    with pytest.raises(LiveResponseConfigError, match="x"):
        validation.optional_duration(math.nan, "x")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3", None])
def test_count_refuses_what_is_not_a_whole_number_in_range(bad: object) -> None:
    with pytest.raises(LiveResponseConfigError, match="max_attempts"):
        validation.count(bad, "max_attempts")


def test_count_bounds() -> None:
    assert validation.count(3, "n", maximum=3) == 3
    with pytest.raises(LiveResponseConfigError, match="from 1 to 3"):
        validation.count(4, "n", maximum=3)


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_flag_refuses_what_is_not_a_bool(bad: object) -> None:
    with pytest.raises(LiveResponseParameterTypeError, match="cancel_on_kill"):
        validation.flag(bad, "cancel_on_kill")


def test_text_strips_and_refuses_empty_and_non_text() -> None:
    assert validation.text("  a ", "comment") == "a"
    with pytest.raises(LiveResponseConfigError, match="comment is empty"):
        validation.text("  ", "comment")
    with pytest.raises(LiveResponseParameterTypeError, match="comment"):
        validation.text(5, "comment")
    assert validation.optional_text(None, "comment") is None


def test_choice() -> None:
    assert validation.choice("a", "mode", ("a", "b")) == "a"
    with pytest.raises(LiveResponseConfigError, match="mode must be one of 'a', 'b'"):
        validation.choice("c", "mode", ("a", "b"))


def test_ids() -> None:
    assert (
        validation.machine_id("3D4CC40F66A1574170F0E84299DA28C3DAC00B2F") == "3d4cc40f66a1574170f0e84299da28c3dac00b2f"
    )
    with pytest.raises(LiveResponseConfigError, match="machine_id"):
        validation.machine_id("abc")
    assert validation.action_id(" 7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10 ") == "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10"
    with pytest.raises(LiveResponseConfigError, match="action_ids"):
        validation.action_id("x", "action_ids[]")


def test_optional_flag_none_is_unset() -> None:
    assert validation.optional_flag(None, "has_parameters") is None
    assert validation.optional_flag(False, "has_parameters") is False
    with pytest.raises(LiveResponseParameterTypeError, match="has_parameters"):
        validation.optional_flag("no", "has_parameters")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_timestamp_refuses_what_is_not_a_finite_time(bad: float) -> None:
    with pytest.raises(LiveResponseConfigError, match="end_time"):
        validation.timestamp(bad, "end_time")


@pytest.mark.parametrize("bad", ["1900000000", True, [1]])
def test_timestamp_refuses_non_numbers_as_a_type_error(bad: object) -> None:
    with pytest.raises(LiveResponseParameterTypeError, match="deadline"):
        validation.timestamp(bad, "deadline")


def test_optional_timestamp_none_is_no_deadline() -> None:
    assert validation.optional_timestamp(None, "end_time") is None
    assert validation.optional_timestamp(1_900_000_000, "end_time") == 1_900_000_000.0


def test_text_list_checks_each_entry_by_index_and_drops_repeats() -> None:
    assert validation.text_list(["a", "b", "a"], "computer_dns_names") == ["a", "b"]
    assert validation.text_list(("X",), "names", lambda v, f: validation.text(v, f).lower()) == ["x"]
    with pytest.raises(LiveResponseParameterTypeError, match=r"computer_dns_names\[1\]"):
        validation.text_list(["a", 5], "computer_dns_names")


@pytest.mark.parametrize("bad", ["host.contoso.local", None, 5, {"a": 1}])
def test_text_list_refuses_what_is_not_a_list_as_a_type_error(bad: object) -> None:
    with pytest.raises(LiveResponseParameterTypeError, match="machine_ids"):
        validation.text_list(bad, "machine_ids")


def test_text_list_refuses_an_empty_list() -> None:
    with pytest.raises(LiveResponseConfigError, match="machine_ids is empty"):
        validation.text_list([], "machine_ids")


def test_optional_datetime_takes_a_datetime_or_none() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert validation.optional_datetime(moment, "created_after") is moment
    assert validation.optional_datetime(None, "created_after") is None


@pytest.mark.parametrize("bad", ["2026-01-01T00:00:00Z", 1_700_000_000, 1.5, date(2026, 1, 1)])
def test_optional_datetime_refuses_text_numbers_and_dates_as_a_type_error(bad: object) -> None:
    with pytest.raises(LiveResponseParameterTypeError, match="created_after must be a datetime"):
        validation.optional_datetime(bad, "created_after")


@pytest.mark.parametrize("good", [1, 1.0, 0.5, 0.001, 1 / 3])
def test_fraction_accepts_a_number_more_than_0_and_at_most_1(good: float) -> None:
    assert validation.fraction(good, "read_share") == float(good)


@pytest.mark.parametrize("bad", [0, -0.5, 1.01, 2, math.nan, math.inf])
def test_fraction_refuses_0_negatives_more_than_1_nan_and_infinities(bad: float) -> None:
    with pytest.raises(LiveResponseConfigError, match=r"read_share must be a number more than 0 and at most 1"):
        validation.fraction(bad, "read_share")


@pytest.mark.parametrize("bad", ["0.5", None, True, [0.5]])
def test_fraction_refuses_non_numbers_as_a_type_error_naming_the_field(bad: object) -> None:
    with pytest.raises(LiveResponseParameterTypeError, match="read_share"):
        validation.fraction(bad, "read_share")
