"""The sweep's pacing on a fake clock: submissions spaced to the rate, a 429 pauses for Retry-After and halves the
rate, which recovers step by step; read budgets hold per minute and per hour."""

from __future__ import annotations

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.fleet.limiter import ReadBudget, SubmissionLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_submissions_are_spaced_six_seconds_at_ten_a_minute() -> None:
    clock = FakeClock()
    limiter = SubmissionLimiter(10, clock)

    assert limiter.wait() == 0
    limiter.take()
    assert limiter.wait() == pytest.approx(6.0)
    clock.now += 6
    assert limiter.wait() == 0


def test_a_429_waits_retry_after_and_halves_the_rate() -> None:
    clock = FakeClock()
    limiter = SubmissionLimiter(10, clock)
    limiter.take()

    limiter.throttled(45.0)

    assert limiter.wait() == pytest.approx(45.0)
    assert limiter.rate == pytest.approx(5.0)
    assert limiter.throttles == 1


def test_a_429_without_retry_after_waits_a_spacing_at_the_lower_rate() -> None:
    clock = FakeClock()
    limiter = SubmissionLimiter(10, clock)

    limiter.throttled(None)

    assert limiter.wait() == pytest.approx(12.0)


def test_accepted_submissions_bring_the_rate_back_to_the_ceiling_not_above() -> None:
    limiter = SubmissionLimiter(10, FakeClock())
    limiter.throttled(1.0)
    for _ in range(20):
        limiter.accepted()

    assert limiter.rate == pytest.approx(10.0)


def test_the_rate_must_be_a_positive_number() -> None:
    with pytest.raises(LiveResponseConfigError, match="submissions_per_minute"):
        SubmissionLimiter(0, FakeClock())


def test_a_read_budget_holds_per_minute() -> None:
    clock = FakeClock()
    budget = ReadBudget("machineactions", per_minute=3, per_hour=1500, clock=clock)
    for _ in range(3):
        budget.take()
        clock.now += 1

    assert budget.wait() == pytest.approx(57.0)
    clock.now += 57
    assert budget.wait() == 0


def test_a_read_budget_holds_per_hour() -> None:
    clock = FakeClock()
    budget = ReadBudget("machineactions", per_minute=100, per_hour=10, clock=clock)
    for _ in range(10):
        budget.take()
        clock.now += 60

    assert budget.wait() == pytest.approx(3000.0)


def test_polling_is_stretched_to_half_the_hour_budget() -> None:
    assert ReadBudget("machineactions", 100, 1500, FakeClock()).interval() == pytest.approx(4.8)
    assert ReadBudget("machineactions", 100, 300, FakeClock()).interval() == pytest.approx(24.0)
