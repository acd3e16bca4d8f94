"""Who a sweep submits: Inactive, not onboarded and unsupported devices are reported, not submitted; devices
whose lastSeen is stale go last when stale_after is set."""

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


def test_stale_active_devices_go_last_when_stale_after_is_set() -> None:
    stale = machine(1, lastSeen=(NOW - timedelta(days=2)).isoformat())

    assert [m.id for m in plan([stale, machine(2)], NOW, timedelta(hours=24)).submit] == [machine(2).id, stale.id]
    assert [m.id for m in plan([stale, machine(2)], NOW, None).submit] == [stale.id, machine(2).id]
