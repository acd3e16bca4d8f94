"""Progress lines, driven by a fake clock: calm (one per interval, or per further tenth at most every 5 s), with
bytes, rate and time left, then one final line."""

from __future__ import annotations

from airflow_provider_liveresponse.transfers.progress import Progress, duration_text, human
from tests.transfers.transfer_helpers import FakeClock, LogLines

MIB = 1024 * 1024


def test_lines_come_once_per_interval_with_bytes_rate_and_time_left() -> None:
    clock, log = FakeClock(), LogLines()
    progress = Progress(log, "command 0", 1000 * MIB, interval=30.0, clock=clock)
    for second in range(1, 96):  # 1 MiB a second, an update every second; a tenth would take 100 s
        clock.now += 1
        progress.update(second * MIB)
    progress.done(95 * MIB)
    assert log.lines == [
        "Downloading command 0: 1000.0 MiB",
        "Downloading command 0: 30.0 MiB of 1000.0 MiB (3%), 1.0 MiB/s, about 16m10s left",
        "Downloading command 0: 60.0 MiB of 1000.0 MiB (6%), 1.0 MiB/s, about 15m40s left",
        "Downloading command 0: 90.0 MiB of 1000.0 MiB (9%), 1.0 MiB/s, about 15m10s left",
        "Downloaded command 0: 95.0 MiB in 95.0 s (1.0 MiB/s)",
    ]


def test_a_further_tenth_is_logged_before_the_interval_but_at_most_every_five_seconds() -> None:
    clock, log = FakeClock(), LogLines()
    progress = Progress(log, "c", 10 * MIB, interval=600.0, clock=clock)
    for step in range(1, 21):  # half a tenth a second: a new tenth every 2 s, logged every 6 s at most
        clock.now += 1
        progress.update(step * MIB // 2)
    assert log.lines[1:] == [
        "Downloading c: 2.5 MiB of 10.0 MiB (25%), 512.0 KiB/s, about 0m15s left",
        "Downloading c: 5.0 MiB of 10.0 MiB (50%), 512.0 KiB/s, about 0m10s left",
        "Downloading c: 7.5 MiB of 10.0 MiB (75%), 512.0 KiB/s, about 0m05s left",
        "Downloading c: 10.0 MiB of 10.0 MiB (100%), 512.0 KiB/s, about 0m00s left",
    ]


def test_a_result_of_unknown_size_shows_bytes_and_rate_only() -> None:
    clock, log = FakeClock(), LogLines()
    progress = Progress(log, "c", None, interval=10.0, clock=clock)
    clock.now += 10
    progress.update(5 * MIB)
    assert log.lines == ["Downloading c: size unknown", "Downloading c: 5.0 MiB, 512.0 KiB/s"]


def test_no_time_passing_gives_no_line_and_a_zero_rate_at_the_end() -> None:
    clock, log = FakeClock(), LogLines()
    progress = Progress(log, "c", 1000, interval=1.0, clock=clock)
    for done in range(0, 1001, 100):
        progress.update(done)
    progress.done(1000)
    assert log.lines == ["Downloading c: 1000 B", "Downloaded c: 1000 B in 0.0 s (0 B/s)"]


def test_sizes_and_durations_for_people() -> None:
    assert [human(n) for n in (None, 0, 1023, 1024, 5 * MIB // 2, 3 * 1024 * MIB)] == [
        "unknown size",
        "0 B",
        "1023 B",
        "1.0 KiB",
        "2.5 MiB",
        "3.0 GiB",
    ]
    assert [duration_text(s) for s in (float("inf"), -3, 7.9, 187, 3900)] == [
        "unknown time",
        "0m00s",
        "0m07s",
        "3m07s",
        "1h05m",
    ]
