"""Who a sweep submits, who it skips and why, and in what order: read from each device's healthStatus, lastSeen,
onboardingStatus and osPlatform, which come with the look-up (no extra call)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_liveresponse.fleet.outcome import OFFLINE, SKIPPED, DeviceOutcome

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime, timedelta

    from airflow_provider_liveresponse.models import Machine

#: Platforms MDE onboards that live response does not reach (an unknown platform is tried: MDE says if not).
UNSUPPORTED_PLATFORMS = frozenset({"ios", "android"})


def target_name(machine: Machine) -> str:
    """How a device is named in the outcome table: its host name, or its id when MDE reports none."""
    return machine.computer_dns_name or machine.id


@dataclass
class Plan:
    """Devices to submit, in order (fresh ones first, then those whose lastSeen is stale), and the skipped."""

    submit: list[Machine] = field(default_factory=list)
    skipped: list[DeviceOutcome] = field(default_factory=list)


def skip_reason(machine: Machine) -> DeviceOutcome | None:
    """Why ``machine`` is not sent live response at all, or None."""
    name = target_name(machine)
    if (machine.health_status or "").lower() == "inactive":
        since = machine.last_seen.strftime("%Y-%m-%dT%H:%MZ") if machine.last_seen else "an unknown time"
        return DeviceOutcome(name, OFFLINE, f"inactive since {since}", machine.id)
    if machine.onboarding_status and machine.onboarding_status.lower() != "onboarded":
        return DeviceOutcome(name, SKIPPED, f"not onboarded ({machine.onboarding_status})", machine.id)
    if (machine.os_platform or "").lower() in UNSUPPORTED_PLATFORMS:
        return DeviceOutcome(name, SKIPPED, f"live response does not support {machine.os_platform}", machine.id)
    return None


def plan(machines: Iterable[Machine], now: datetime, stale_after: timedelta | None) -> Plan:
    """The plan for ``machines``: skipped ones reported, the rest in their order with stale ones last."""
    result = Plan()
    stale: list[Machine] = []
    for machine in machines:
        skipped = skip_reason(machine)
        if skipped is not None:
            result.skipped.append(skipped)
        elif stale_after is not None and machine.last_seen is not None and now - machine.last_seen > stale_after:
            stale.append(machine)
        else:
            result.submit.append(machine)
    result.submit.extend(stale)
    return result


__all__ = ["UNSUPPORTED_PLATFORMS", "Plan", "plan", "skip_reason", "target_name"]
