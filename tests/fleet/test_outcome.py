"""The outcome table: one row per target (a later outcome replaces an earlier one), counts of every outcome, and
XCom rows with only what is set."""

from __future__ import annotations

from airflow_provider_liveresponse.fleet.outcome import DeviceOutcome, OutcomeTable


def test_a_later_outcome_of_a_target_replaces_the_earlier_one() -> None:
    table = OutcomeTable()
    table.record(DeviceOutcome("ws-1", "offline", "not collected (no pickup within 1h)", "a" * 40, "act-1"))
    table.record(DeviceOutcome("ws-1", "collected", "", "a" * 40, "act-2"))
    table.record(DeviceOutcome("gone", "unresolved", "no device has this name or id in MDE"))

    summary = table.summary()

    assert summary["counts"] == {
        "collected": 1,
        "failed": 0,
        "offline": 0,
        "skipped": 0,
        "unresolved": 1,
        "ambiguous": 0,
    }
    assert summary["devices"] == [
        {"target": "ws-1", "outcome": "collected", "machine_id": "a" * 40, "action_id": "act-2"},
        {"target": "gone", "outcome": "unresolved", "reason": "no device has this name or id in MDE"},
    ]


def test_the_log_table_lists_collected_first_then_the_rest() -> None:
    table = OutcomeTable()
    table.record(DeviceOutcome("b", "failed", "Failed: script error"))
    table.record(DeviceOutcome("a", "collected", action_id="act-1"))

    lines = table.table().splitlines()

    assert lines[0].split() == ["target", "outcome", "action", "reason"]
    assert lines[1].split()[:3] == ["a", "collected", "act-1"]
    assert lines[2].split()[:2] == ["b", "failed"]
