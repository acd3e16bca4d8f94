"""Who a sweep submits, who it skips and why, and in what order: read from each device's healthStatus, lastSeen,
onboardingStatus and osPlatform, which come with the look-up (no extra call).

Order: with ``stale_after``, an Active device whose lastSeen is older than the freshest lastSeen of the listing by
more than that (MDE's own clock, so the worker's clock skew does not matter) is probably offline. Such devices
are spread evenly over the queue except its last ``tail`` places (the submissions of the sweep's last
``pickup_timeout``), so the wait for a silent device overlaps the fresh devices' work instead of adding a
``pickup_timeout`` at the end, and they never crowd the session slots at once. With ``skip_stale`` they are not
submitted at all (:attr:`Plan.stale`): each costs the tenant a submission turn (6 s of MDE's 10 a minute) and a
session slot for up to ``pickup_timeout``, and only a submission would tell whether it is back.
"""

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
    """Devices to submit, in order (stale ones spread among the fresh ones, none in the tail), and the skipped."""

    submit: list[Machine] = field(default_factory=list)
    skipped: list[DeviceOutcome] = field(default_factory=list)
    #: With ``skip_stale``: the stale devices, not submitted unless the sweep already has an action on one (a
    #: retry reattaches to it); :func:`stale_outcome` says why in the outcome table.
    stale: list[Machine] = field(default_factory=list)
    #: The freshest lastSeen of the candidates (what staleness is measured against).
    reference: datetime | None = None


def _last_seen(machine: Machine) -> str:
    """The device's lastSeen to the minute, as the outcome table shows it."""
    return machine.last_seen.strftime("%Y-%m-%dT%H:%MZ") if machine.last_seen else "an unknown time"


def skip_reason(machine: Machine) -> DeviceOutcome | None:
    """Why ``machine`` is not sent live response at all, or None."""
    name = target_name(machine)
    if (machine.health_status or "").lower() == "inactive":
        return DeviceOutcome(name, OFFLINE, f"inactive since {_last_seen(machine)}", machine.id)
    if machine.onboarding_status and machine.onboarding_status.lower() != "onboarded":
        return DeviceOutcome(name, SKIPPED, f"not onboarded ({machine.onboarding_status})", machine.id)
    if (machine.os_platform or "").lower() in UNSUPPORTED_PLATFORMS:
        return DeviceOutcome(name, SKIPPED, f"live response does not support {machine.os_platform}", machine.id)
    return None


def stale_outcome(machine: Machine, reference: datetime | None, stale_after: timedelta) -> DeviceOutcome:
    """The outcome of a stale device not submitted (``skip_stale``): offline, with how far behind it was."""
    seen = machine.last_seen
    behind = f", {(reference - seen).total_seconds() / 60:.0f} min behind the fleet" if reference and seen else ""
    return DeviceOutcome(
        target_name(machine),
        OFFLINE,
        f"not submitted: last seen {_last_seen(machine)}{behind} "
        f"(stale_after {stale_after.total_seconds():g} s, skip_stale); a rerun of the sweep tries it again",
        machine.id,
    )


def plan(
    machines: Iterable[Machine],
    now: datetime,
    stale_after: timedelta | None,
    tail: int = 0,
    *,
    skip_stale: bool = False,
) -> Plan:
    """The plan for ``machines``: skipped ones reported, the rest in their order, stale ones spread (see above), or
    set apart in :attr:`Plan.stale` with ``skip_stale``."""
    result = Plan()
    candidates: list[Machine] = []
    for machine in machines:
        skipped = skip_reason(machine)
        if skipped is not None:
            result.skipped.append(skipped)
        else:
            candidates.append(machine)
    seen = [m.last_seen for m in candidates if m.last_seen is not None]
    reference = max(seen) if seen else now
    fresh: list[Machine] = []
    stale: list[Machine] = []
    for machine in candidates:
        old = stale_after is not None and machine.last_seen is not None and reference - machine.last_seen > stale_after
        (stale if old else fresh).append(machine)
    result.reference = reference if seen else None
    if skip_stale:
        result.submit, result.stale = fresh, stale
    else:
        result.submit = spread(fresh, stale, tail)
    return result


def spread(fresh: list[Machine], stale: list[Machine], tail: int) -> list[Machine]:
    """``stale`` spread evenly over the first ``len(fresh) + len(stale) - tail`` places among ``fresh``."""
    if not stale:
        return list(fresh)
    total = len(fresh) + len(stale)
    span = max(len(stale), total - max(0, tail))
    places = {index * span // len(stale) for index in range(len(stale))}
    fresh_items, stale_items = iter(fresh), iter(stale)
    return [next(stale_items) if place in places else next(fresh_items) for place in range(total)]


__all__ = ["UNSUPPORTED_PLATFORMS", "Plan", "plan", "skip_reason", "spread", "stale_outcome", "target_name"]
