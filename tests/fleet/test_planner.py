"""Who a sweep submits: Inactive, not onboarded and unsupported devices are reported, not submitted; devices
whose lastSeen is stale are spread through the queue, never in its tail, when stale_after is set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_liveresponse.fleet.planner import plan
from airflow_provider_liveresponse.models import Machine

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def machine(number: int, **fields: Any) -> Machine:
    wire = {
        "id": f"{number:040x}",
        "computerDnsName": f"ws-{number}.contoso.local",
        "healthStatus": "Active",
        "onboardingStatus": "Onboarded",
        "osPlatform": "Windows11",
        "lastSeen": (NOW - timedelta(minutes=5)).isoformat(),
        **fields,
    }
    return Machine.model_validate(wire)


def test_inactive_devices_are_reported_offline_since_last_seen() -> None:
    result = plan([machine(1), machine(2, healthStatus="Inactive", lastSeen="2026-11-20T08:00:00Z")], NOW, None)

    assert [m.id for m in result.submit] == [machine(1).id]
    (skipped,) = result.skipped
    assert (skipped.outcome, skipped.reason) == ("offline", "inactive since 2026-11-20T08:00Z")


def test_not_onboarded_and_unsupported_devices_are_skipped_with_a_reason() -> None:
    result = plan([machine(1, onboardingStatus="CanBeOnboarded"), machine(2, osPlatform="iOS")], NOW, None)

    assert result.submit == []
    assert [(s.outcome, s.reason) for s in result.skipped] == [
        ("skipped", "not onboarded (CanBeOnboarded)"),
        ("skipped", "live response does not support iOS"),
    ]


def test_stale_active_devices_are_spread_before_the_tail_when_stale_after_is_set() -> None:
    fresh = [machine(n) for n in range(1, 9)]
    stale = [machine(n, lastSeen=(NOW - timedelta(days=2)).isoformat()) for n in (101, 102)]

    order = [m.id for m in plan([*stale, *fresh], NOW, timedelta(hours=24), tail=4).submit]

    assert sorted(order) == sorted(m.id for m in [*stale, *fresh])
    assert [order.index(m.id) for m in stale] == [0, 3]  # evenly over the 6 places before the 4 of the tail
    assert [m.id for m in plan([*stale, machine(2)], NOW, None).submit] == [stale[0].id, stale[1].id, machine(2).id]


def test_staleness_is_measured_against_the_freshest_last_seen_not_the_workers_clock() -> None:
    later = NOW + timedelta(days=30)  # a worker clock far ahead of MDE's
    old = machine(1, lastSeen=(NOW - timedelta(days=2)).isoformat())

    assert [m.id for m in plan([machine(2), old], later, timedelta(hours=24)).submit] == [old.id, machine(2).id]
    assert [m.id for m in plan([machine(2), machine(3)], later, timedelta(hours=24)).submit] == [
        machine(2).id,
        machine(3).id,
    ]


def test_with_skip_stale_stale_devices_are_set_apart_and_reported_with_how_far_behind() -> None:
    from airflow_provider_liveresponse.fleet.planner import stale_outcome

    fresh = [machine(n) for n in range(1, 4)]
    old = machine(101, lastSeen=(NOW - timedelta(minutes=65)).isoformat())

    result = plan([old, *fresh], NOW, timedelta(minutes=30), tail=1, skip_stale=True)

    assert [m.id for m in result.submit] == [m.id for m in fresh]
    assert [m.id for m in result.stale] == [old.id]
    assert result.reference == NOW - timedelta(minutes=5)
    outcome = stale_outcome(old, result.reference, timedelta(minutes=30))
    assert (outcome.target, outcome.outcome, outcome.machine_id) == ("ws-101.contoso.local", "offline", old.id)
    assert outcome.reason == (
        "not submitted: last seen 2026-12-01T10:55Z, 60 min behind the fleet (stale_after 1800 s, skip_stale); "
        "a rerun of the sweep tries it again"
    )
    # Without skip_stale nothing is set apart: the stale device is submitted, spread.
    assert plan([old, *fresh], NOW, timedelta(minutes=30), tail=1).stale == []
