"""Unit tests of the simulator's building blocks: clock, OData filters, content, limits windows."""

from __future__ import annotations

import pytest

from airflow_provider_liveresponse.simulator.clock import SimulatedClock, format_datetime, parse_datetime
from airflow_provider_liveresponse.simulator.content import iter_content
from airflow_provider_liveresponse.simulator.limits import SlidingWindow, profile_limits
from airflow_provider_liveresponse.simulator.odata import ODataError, compile_filter, sort_key_for

FIELDS = ("id", "status", "machineTags", "creationDateTimeUtc", "riskScore")
ENTITY = {
    "id": "a1",
    "status": "Pending",
    "machineTags": ["finance", "vip"],
    "creationDateTimeUtc": "2024-05-01T10:00:00.1234567Z",
    "riskScore": 3,
}


def test_datetimes_have_seven_fractional_digits() -> None:
    text = format_datetime(1612453012.7788848)

    assert text == "2021-02-04T15:36:52.7788848Z"
    assert parse_datetime(text) == pytest.approx(1612453012.7788848)


def test_the_clock_runs_at_its_speed_and_jumps_forward() -> None:
    clock = SimulatedClock(speed=1000, start=0)
    first = clock.time()
    clock.advance(3600)

    assert clock.time() - first >= 3600
    assert clock.real_seconds(60) == pytest.approx(0.06)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_changing_speed_does_not_move_time() -> None:
    clock = SimulatedClock(speed=1000, start=0)
    before = clock.time()
    clock.set_speed(1)

    assert 0 <= clock.time() - before < 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status eq 'pending'", True),
        ("status ne 'Pending'", False),
        ("id in ('x', 'a1')", True),
        ("status eq 'Pending' and id eq 'zz'", False),
        ("status eq 'Done' or id eq 'a1'", True),
        ("not (status eq 'Done')", True),
        ("machineTags/any(t: t eq 'VIP')", True),
        ("machineTags/any(t: t eq 'x' or t eq 'finance')", True),
        ("creationDateTimeUtc gt 2024-05-01T09:59:59Z", True),
        ("creationDateTimeUtc le '2024-05-01T10:00:00Z'", False),
        ("riskScore ge 3", True),
        ("riskScore lt 3", False),
        ("status eq 'it''s'", False),
    ],
)
def test_odata_filters(text: str, expected: bool) -> None:
    assert compile_filter(text, FIELDS)(ENTITY, {}) is expected


@pytest.mark.parametrize("text", ["unknown eq 1", "status eq", "status like 'x'", "(status eq 'x'", "status eq 'x' )"])
def test_invalid_odata_filters_raise(text: str) -> None:
    with pytest.raises(ODataError):
        compile_filter(text, FIELDS)(ENTITY, {})


def test_orderby_parses_direction() -> None:
    assert sort_key_for("creationDateTimeUtc desc", FIELDS) == ("creationDateTimeUtc", True)
    assert sort_key_for("status", FIELDS) == ("status", False)
    with pytest.raises(ODataError):
        sort_key_for("status sideways", FIELDS)


def test_content_is_deterministic_and_exactly_sized() -> None:
    first = b"".join(iter_content(b"key", 3 * 1024 * 1024 + 5))
    again = b"".join(iter_content(b"key", 3 * 1024 * 1024 + 5))
    other = b"".join(iter_content(b"other", 1000))

    assert first == again
    assert len(first) == 3 * 1024 * 1024 + 5
    assert other != first[:1000]
    assert b"".join(iter_content(b"key", 0)) == b""


def test_a_sliding_window_tells_how_long_to_wait() -> None:
    window = SlidingWindow()
    assert window.acquire(0, 2, 60) is None
    assert window.acquire(10, 2, 60) is None

    assert window.acquire(20, 2, 60) == 40
    assert window.acquire(60, 2, 60) is None


def test_profiles() -> None:
    assert profile_limits("seeds").concurrent_sessions == 25
    assert profile_limits("seeds").queue_seconds == 3 * 24 * 3600
    assert profile_limits("current").concurrent_sessions == 50
    assert profile_limits("current").queue_seconds == 2 * 3600
    with pytest.raises(ValueError, match="unknown profile"):
        profile_limits("newest")
