"""The sweep's pacing on a fake clock: submissions in the slots of an ideal schedule (a late loop does not slow
it, a long pause does not make a burst), never more than 10 in MDE's sliding minute counted from the answers, a 429
pauses for Retry-After and halves the rate, which recovers step by step; read budgets hold per minute and per
hour."""

from __future__ import annotations

import itertools

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


def submit(limiter: SubmissionLimiter, clock: FakeClock, late: float = 0.0, latency: float = 0.0) -> float:
    """Wait for the limiter (plus ``late`` seconds of loop lateness), submit, and get the answer after ``latency``;
    the moment the submission went."""
    clock.now += limiter.wait() + late
    sent = clock.now
    limiter.take()
    clock.now += latency
    limiter.accepted()
    return sent


def test_a_late_submission_does_not_delay_the_next_slot() -> None:
    clock = FakeClock()
    limiter = SubmissionLimiter(10, clock)
    first = submit(limiter, clock)

    second = submit(limiter, clock, late=2.5)
    third = submit(limiter, clock)

    assert second - first == pytest.approx(8.5)
    assert third - first == pytest.approx(12.0)  # the third slot, not a spacing after the late second


def test_a_loop_late_at_every_submission_keeps_ten_a_minute() -> None:
    clock = FakeClock()
    limiter = SubmissionLimiter(10, clock)
    sent = [submit(limiter, clock, late=0.5) for _ in range(101)]

    per_minute = 100 / ((sent[-1] - sent[0]) / 60)
    assert per_minute == pytest.approx(10.0, abs=0.1)  # the old bucket (a spacing after each late one): 9.2


def test_after_a_long_pause_submissions_resume_one_spacing_apart() -> None:
    clock = FakeClock()
    limiter = SubmissionLimiter(10, clock)
    submit(limiter, clock)
    clock.now += 600  # no free session for ten minutes

    resumed = [submit(limiter, clock) for _ in range(3)]

    assert resumed[0] == pytest.approx(1600.0)
    assert [b - a for a, b in itertools.pairwise(resumed)] == [pytest.approx(6.0)] * 2


def test_catching_up_never_lets_mde_count_eleven_in_a_minute() -> None:
    clock = FakeClock()
    limiter = SubmissionLimiter(10, clock)
    counted: list[float] = []  # when MDE counted each: anywhere between the submission and its answer
    for k in range(200):
        slow = k % 20 == 0  # one late and slow, the one ten after it on time and quick: the window's worst case
        sent = submit(limiter, clock, late=3.0 if slow else 0.0, latency=0.9 if slow else 0.05)
        counted.append(clock.now if slow else sent)  # the slow ones counted at their answer, the others at once

    most = max(sum(1 for t in counted if start - 60 < t <= start) for start in counted)
    assert most <= 10


def test_the_sliding_window_counts_from_the_answer_not_the_submission() -> None:
    clock = FakeClock()
    limiter = SubmissionLimiter(10, clock)
    for _ in range(10):
        submit(limiter, clock, latency=0.0)
    first_answered = limiter.answered[0]
    limiter.answered[0] = first_answered + 2.0  # the first answer came back 2 s after it went

    assert clock.now + limiter.wait() == pytest.approx(first_answered + 62.0)


def test_a_submission_refused_otherwise_still_counts_in_the_window() -> None:
    clock = FakeClock()
    limiter = SubmissionLimiter(10, clock)
    for _ in range(9):
        submit(limiter, clock)
    clock.now += limiter.wait()
    limiter.take()  # MDE refuses it (400): neither accepted nor throttled
    clock.now += 1.0

    assert limiter.wait() == pytest.approx(5.0)  # the next slot
    assert len(limiter.answered) == 10  # the refused one counted, answered by now


def test_a_throttled_submission_does_not_count_in_the_window() -> None:
    clock = FakeClock()
    limiter = SubmissionLimiter(10, clock)
    limiter.take()
    limiter.throttled(30.0)

    assert len(limiter.answered) == 0
    assert limiter.wait() == pytest.approx(30.0)


def test_the_window_scales_with_the_rate() -> None:
    assert SubmissionLimiter(600, FakeClock()).window == pytest.approx(1.0)  # a simulator at 60x: MDE's minute


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
