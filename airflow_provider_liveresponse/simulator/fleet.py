"""The seeded fleet of simulated devices, each with a small virtual file system.

Device ids are stable: the SHA-1 of the lower-cased host name (40 hex characters), so tests may compute them
with :func:`device_id`. The seeded fleet (all ``*.contoso.local``):

- ``ws-0001`` ... ``ws-0280``: Windows 11 workstations, onboarded, online, tags ``workstation`` (and
  ``finance`` for every tenth one), group "Workstations" with full automation.
- ``srv-0001`` ... ``srv-0010``: Windows Server 2022, online, tag ``server``.
- ``laptop-0001`` ... ``laptop-0010``: Windows 11, **offline** for 10 days, so ``Inactive`` (sessions stay
  Pending, then ``TimeOut``; ``PATCH /_sim/devices/{id}`` or :meth:`Device.set_online` brings one online).
- ``lnx-0001`` ... ``lnx-0003``: Ubuntu Linux, online.
- ``unmanaged-0001`` ... ``unmanaged-0003``: only discovered, not onboarded (400 ``ClientVersionNotSupported``).
- ``kiosk-0001``, ``kiosk-0002``: online, in group "Kiosks" without automation (403 ``DisallowedOperation``).
- ``phone-0001``: iOS (400 ``OsPlatformNotSupported``).

Health, as in MDE: ``healthStatus`` is ``Active`` while a device reports and stays ``Active`` after it goes
offline until it has been silent for ``Limits.inactive_after_seconds`` (7 days), then ``Inactive``; a device that
is not onboarded is ``Inactive``. ``lastSeen`` (MDE: the last full device report) reads
``Limits.last_seen_lag_seconds`` before now while online (120 s by default; 86400 models MDE's daily report), and
that long before the moment it went silent once offline. A device made offline (:func:`make_device`,
``POST /_sim/devices``) has been silent for ``offline_for`` seconds (10 days, so ``Inactive``, by default).
Large fleets for sweeps: :mod:`.estate`.

Files every Windows device has: ``C:\\Windows\\System32\\drivers\\etc\\hosts`` (824 bytes),
``C:\\Windows\\System32\\winevt\\Logs\\Security.evtx`` (4 MiB), ``...\\System.evtx`` (1 MiB),
``C:\\Windows\\Temp\\memory.dmp`` (32 MiB), ``C:\\Windows\\Temp\\empty.txt`` (0 bytes),
``C:\\Users\\Public\\Documents\\report.docx`` (48 KiB). Linux devices: ``/etc/hosts``, ``/var/log/syslog``.
On every device, any path whose file name is ``sim-size-<N>.bin`` exists and holds N bytes, so a test can
ask for any size without setup. Paths match case-insensitively; ``/`` and ``\\`` are the same.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

DOMAIN = "contoso.local"
SIZE_CONVENTION = re.compile(r"(?:^|[\\/])sim-size-(\d+)\.bin$", re.IGNORECASE)

WORKSTATION_COUNT = 280
OFFLINE_HOSTS = tuple(f"laptop-{n:04d}.{DOMAIN}" for n in range(1, 11))
DISCOVERED_HOSTS = tuple(f"unmanaged-{n:04d}.{DOMAIN}" for n in range(1, 4))
NO_AUTOMATION_HOSTS = (f"kiosk-0001.{DOMAIN}", f"kiosk-0002.{DOMAIN}")
LINUX_HOSTS = tuple(f"lnx-{n:04d}.{DOMAIN}" for n in range(1, 4))
UNSUPPORTED_OS_HOSTS = (f"phone-0001.{DOMAIN}",)
SERVER_HOSTS = tuple(f"srv-{n:04d}.{DOMAIN}" for n in range(1, 11))

#: Platforms on which live response runs.
LIVE_RESPONSE_PLATFORMS = {"Windows10", "Windows11", "WindowsServer2019", "WindowsServer2022", "Linux", "macOS"}

_WINDOWS_FILES = {
    "C:\\Windows\\System32\\drivers\\etc\\hosts": 824,
    "C:\\Windows\\System32\\winevt\\Logs\\Security.evtx": 4 * 1024 * 1024,
    "C:\\Windows\\System32\\winevt\\Logs\\System.evtx": 1024 * 1024,
    "C:\\Windows\\Temp\\memory.dmp": 32 * 1024 * 1024,
    "C:\\Windows\\Temp\\empty.txt": 0,
    "C:\\Users\\Public\\Documents\\report.docx": 48 * 1024,
}
_LINUX_FILES = {"/etc/hosts": 221, "/var/log/syslog": 512 * 1024}

_GROUPS = {
    "Workstations": (101, True),
    "Servers": (102, True),
    "Linux": (103, True),
    "Kiosks": (104, False),
    "Sweep": (105, True),
    "Ungrouped": (0, True),
}


#: How long a device made offline without ``offline_for`` has been silent: past the 7 days, so ``Inactive``.
OFFLINE_SILENCE_SECONDS = 10 * 86400


def group_id(group_name: str) -> int:
    """The ``rbacGroupId`` of a device group: the seeded groups' ids, a stable id from 1000 up for any other."""
    known = _GROUPS.get(group_name)
    if known is not None:
        return known[0]
    return 1000 + zlib.crc32(group_name.encode()) % 9000


def device_id(host_name: str) -> str:
    """The stable 40-hex-character device id of a host name."""
    return hashlib.sha1(host_name.lower().encode(), usedforsecurity=False).hexdigest()


def normalize_path(path: str) -> str:
    """The lookup key of a device path: lower case, backslashes."""
    return path.strip().replace("/", "\\").lower()


@dataclass
class DeviceFile:
    """A file on a simulated device: its path as first written and its size in bytes."""

    path: str
    size: int


@dataclass
class Device:
    """A simulated device (an MDE Machine) and its virtual file system."""

    id: str
    computer_dns_name: str
    os_platform: str
    os_version: str
    os_build: int
    online: bool
    onboarded: bool
    rbac_group_name: str
    automation: bool
    machine_tags: list[str]
    ip_address: str
    first_seen: float
    last_seen: float
    online_since: float | None = None
    files: dict[str, DeviceFile] = field(default_factory=dict)

    @property
    def is_linux(self) -> bool:
        """Whether paths on this device are POSIX paths."""
        return self.os_platform == "Linux"

    def set_online(self, online: bool, now: float) -> None:
        """Bring the device online (sessions start being picked up) or take it offline."""
        if online and not self.online:
            self.online_since = now
        if not online and self.online:
            self.last_seen = now
            self.online_since = None
        self.online = online

    def add_file(self, path: str, size: int) -> DeviceFile:
        """Create or replace a file of ``size`` bytes at ``path``."""
        if size < 0:
            raise ValueError("size must not be negative")
        entry = DeviceFile(path=path, size=size)
        self.files[normalize_path(path)] = entry
        return entry

    def find_file(self, path: str) -> DeviceFile | None:
        """The file at ``path``, or None. ``...sim-size-<N>.bin`` always exists with N bytes."""
        entry = self.files.get(normalize_path(path))
        if entry is not None:
            return entry
        match = SIZE_CONVENTION.search(path.strip())
        if match:
            return DeviceFile(path=path, size=int(match.group(1)))
        return None

    def health_status(self, now: float, inactive_after: float) -> str:
        """``Active`` while reporting and until silent for ``inactive_after`` seconds, then ``Inactive``."""
        if not self.onboarded:
            return "Inactive"
        if self.online or now - self.last_seen < inactive_after:
            return "Active"
        return "Inactive"

    def seen_at(self, now: float, lag: float) -> float:
        """The ``lastSeen`` time: ``lag`` before now while online, ``lag`` before it went silent once offline."""
        return (now if self.online else self.last_seen) - lag

    def to_machine(
        self,
        now: float,
        format_datetime: Any,
        *,
        last_seen_lag: float = 120.0,
        inactive_after: float = 7 * 86400.0,
    ) -> dict[str, Any]:
        """The device as an MDE Machine entity (camelCase, with fields clients may not know)."""
        return {
            "id": self.id,
            "computerDnsName": self.computer_dns_name,
            "firstSeen": format_datetime(self.first_seen),
            "lastSeen": format_datetime(self.seen_at(now, last_seen_lag)),
            "osPlatform": self.os_platform,
            "osVersion": self.os_version,
            "osProcessor": "x64",
            "version": self.os_version,
            "lastIpAddress": self.ip_address,
            "lastExternalIpAddress": "203.0.113.10",
            "agentVersion": "10.8760.26100.1" if self.onboarded else None,
            "osBuild": self.os_build,
            "healthStatus": self.health_status(now, inactive_after),
            "deviceValue": "Normal",
            "rbacGroupId": group_id(self.rbac_group_name),
            "rbacGroupName": self.rbac_group_name,
            "riskScore": "Low",
            "exposureLevel": "Medium",
            "isAadJoined": not self.is_linux,
            "aadDeviceId": None,
            "machineTags": list(self.machine_tags),
            "defenderAvStatus": "Updated" if self.onboarded else "Unknown",
            "onboardingStatus": "Onboarded" if self.onboarded else "CanBeOnboarded",
            "osArchitecture": "64-bit",
            "managedBy": "MicrosoftDefenderForEndpoint" if self.onboarded else "Unknown",
            "managedByStatus": "Success" if self.onboarded else "Unknown",
            "ipAddresses": [
                {"ipAddress": self.ip_address, "macAddress": None, "type": "Ethernet", "operationalStatus": "Up"}
            ],
            "vmMetadata": None,
        }


def make_device(
    host_name: str,
    now: float,
    *,
    number: int = 1,
    os_platform: str = "Windows11",
    online: bool = True,
    onboarded: bool = True,
    rbac_group_name: str = "Workstations",
    automation: bool | None = None,
    machine_tags: list[str] | None = None,
    offline_for: float = OFFLINE_SILENCE_SECONDS,
) -> Device:
    """A device with the default files of its platform; an offline one has been silent for ``offline_for`` s."""
    linux = os_platform == "Linux"
    builds = {"Windows11": ("11", 26100), "Windows10": ("10", 19045), "WindowsServer2022": ("2022", 20348)}
    version, build = builds.get(os_platform, ("22.04" if linux else "17.5", 0))
    device = Device(
        id=device_id(host_name),
        computer_dns_name=host_name,
        os_platform=os_platform,
        os_version=version,
        os_build=build,
        online=online,
        onboarded=onboarded,
        rbac_group_name=rbac_group_name,
        automation=_GROUPS.get(rbac_group_name, (0, True))[1] if automation is None else automation,
        machine_tags=list(machine_tags or []),
        ip_address=f"10.{(number >> 16) & 255}.{(number >> 8) & 255}.{number & 255}",
        first_seen=now - 90 * 86400,
        last_seen=now if online else now - offline_for,
        online_since=now - 3600 if online else None,
    )
    for path, size in (_LINUX_FILES if linux else _WINDOWS_FILES).items():
        device.add_file(path, size)
    return device


def seed_fleet(now: float) -> list[Device]:
    """The seeded fleet described in this module's docstring."""
    devices: list[Device] = []
    for n in range(1, WORKSTATION_COUNT + 1):
        tags = ["workstation", "finance"] if n % 10 == 0 else ["workstation"]
        devices.append(make_device(f"ws-{n:04d}.{DOMAIN}", now, number=n, machine_tags=tags))
    for n, host in enumerate(SERVER_HOSTS, start=1):
        devices.append(
            make_device(
                host,
                now,
                number=1000 + n,
                os_platform="WindowsServer2022",
                rbac_group_name="Servers",
                machine_tags=["server"],
            )
        )
    for n, host in enumerate(OFFLINE_HOSTS, start=1):
        devices.append(make_device(host, now, number=2000 + n, online=False, machine_tags=["laptop"]))
    for n, host in enumerate(LINUX_HOSTS, start=1):
        devices.append(
            make_device(
                host, now, number=3000 + n, os_platform="Linux", rbac_group_name="Linux", machine_tags=["linux"]
            )
        )
    for n, host in enumerate(DISCOVERED_HOSTS, start=1):
        devices.append(
            make_device(
                host, now, number=4000 + n, os_platform="Windows10", onboarded=False, rbac_group_name="Ungrouped"
            )
        )
    for n, host in enumerate(NO_AUTOMATION_HOSTS, start=1):
        devices.append(make_device(host, now, number=5000 + n, rbac_group_name="Kiosks", machine_tags=["kiosk"]))
    for n, host in enumerate(UNSUPPORTED_OS_HOSTS, start=1):
        devices.append(
            make_device(
                host, now, number=6000 + n, os_platform="iOS", rbac_group_name="Ungrouped", machine_tags=["mobile"]
            )
        )
    return devices
