"""Large fleets for sweeps: N devices with one tag and one device group, a seeded share of them offline.

``FleetSpec(devices=5000, offline_fraction=0.1)`` makes ``fleet-00001.contoso.local`` ... ``fleet-05000...``
(numbers zero-padded to at least 5 digits, so the names sort in number order), Windows 11, onboarded, tag
``sweep``, group ``Sweep`` (``rbacGroupId`` 105; any other group name gets a stable id, see
:func:`.fleet.group_id`). Of them ``round(devices x offline_fraction)`` are offline, chosen by ``seed``: the first
half of those (rounded down) silent for 10 days, so ``Inactive``; the rest went offline an hour ago
(``ACTIVE_OFFLINE_SECONDS``), so they still read ``Active`` with an older ``lastSeen``, and their sessions stay
Pending, then end ``TimeOut`` after the queue limit. Same spec and seed, same fleet.

Seed one with ``--devices 5000 --offline-fraction 0.1`` on the command line, ``POST /_sim/fleet``,
``Simulator(fleet=FleetSpec(...))`` / ``sim.add_fleet(...)``, or the ``fleet_simulator`` fixture.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.simulator.fleet import (
    DOMAIN,
    LIVE_RESPONSE_PLATFORMS,
    OFFLINE_SILENCE_SECONDS,
    Device,
    group_id,
    make_device,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

#: How long ago the offline devices that still read Active went silent.
ACTIVE_OFFLINE_SECONDS = 3600.0
#: Device numbers of fleet devices start above those of the seeded and added devices (their IP addresses differ).
FIRST_NUMBER = 100_000
MAX_DEVICES = 1_000_000


@dataclass(frozen=True)
class FleetSpec:
    """What large fleet to seed (see the module docstring); ``replace`` drops every other device first."""

    devices: int
    offline_fraction: float = 0.0
    tag: str = "sweep"
    group: str = "Sweep"
    prefix: str = "fleet"
    domain: str = DOMAIN
    os_platform: str = "Windows11"
    seed: int = 0
    replace: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.devices, bool) or not isinstance(self.devices, int) or not 1 <= self.devices <= MAX_DEVICES:
            raise ValueError(f"devices must be a whole number from 1 to {MAX_DEVICES}, got {self.devices!r}")
        fraction = self.offline_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise ValueError(f"offline_fraction must be a number from 0 to 1, got {fraction!r}")
        for name in ("tag", "group", "prefix", "domain"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if self.os_platform not in LIVE_RESPONSE_PLATFORMS:
            raise ValueError(f"os_platform must be one of {', '.join(sorted(LIVE_RESPONSE_PLATFORMS))}")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> FleetSpec:
        """A spec from snake_case or camelCase options (``offlineFraction``, ``osPlatform``); unknown ones raise."""
        aliases = {"offlineFraction": "offline_fraction", "osPlatform": "os_platform"}
        known = set(asdict(cls(devices=1)))
        values = {aliases.get(key, key): value for key, value in options.items()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fleet option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "devices" not in values:
            raise ValueError("devices is required: how many devices the fleet has")
        return cls(**values)

    def host_name(self, number: int) -> str:
        """The host name of device ``number`` (1 to ``devices``)."""
        width = max(5, len(str(self.devices)))
        return f"{self.prefix}-{number:0{width}d}.{self.domain}"


def build_fleet(spec: FleetSpec, now: float) -> tuple[list[Device], dict[str, Any]]:
    """The fleet's devices, and what it holds: counts and the host names of its offline devices."""
    offline_count = round(spec.devices * spec.offline_fraction)
    chooser = random.Random(f"{spec.seed}:{spec.prefix}:{spec.devices}")
    offline = chooser.sample(range(1, spec.devices + 1), offline_count)
    inactive = set(offline[: offline_count // 2])
    active_offline = set(offline[offline_count // 2 :])
    devices = []
    for number in range(1, spec.devices + 1):
        silence = OFFLINE_SILENCE_SECONDS if number in inactive else ACTIVE_OFFLINE_SECONDS
        devices.append(
            make_device(
                spec.host_name(number),
                now,
                number=FIRST_NUMBER + number,
                os_platform=spec.os_platform,
                online=number not in inactive and number not in active_offline,
                rbac_group_name=spec.group,
                automation=True,
                machine_tags=[spec.tag],
                offline_for=silence,
            )
        )
    summary = {
        "devices": spec.devices,
        "online": spec.devices - offline_count,
        "activeOffline": len(active_offline),
        "inactive": len(inactive),
        "tag": spec.tag,
        "rbacGroupName": spec.group,
        "rbacGroupId": group_id(spec.group),
        "firstHost": spec.host_name(1),
        "lastHost": spec.host_name(spec.devices),
        "activeOfflineHosts": [spec.host_name(number) for number in sorted(active_offline)],
        "inactiveHosts": [spec.host_name(number) for number in sorted(inactive)],
    }
    return devices, summary


def fleet_counts(devices: Iterable[Device], now: float, inactive_after: float) -> dict[str, int]:
    """How many of ``devices`` are online, offline but Active, and Inactive, at ``now``."""
    counts = {"devices": 0, "online": 0, "activeOffline": 0, "inactive": 0}
    for device in devices:
        counts["devices"] += 1
        if device.online and device.onboarded:
            counts["online"] += 1
        elif device.health_status(now, inactive_after) == "Active":
            counts["activeOffline"] += 1
        else:
            counts["inactive"] += 1
    return counts
