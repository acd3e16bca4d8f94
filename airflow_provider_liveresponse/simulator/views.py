"""Lazy views of devices and actions for ``$filter`` and ``$orderby``: a listing filters and sorts thousands of
entities without building each one; only the page it answers is rendered as full entities.

A view is a read-only mapping of the filterable and sortable properties, computed when read; datetimes are
:class:`~.odata.Instant` values. One view serves a whole listing: :meth:`MachineView.bind` points it at the next
item and returns it, so filtering N entities makes no N objects. Each property reads what the full entity says
(``Device.to_machine``, ``Action.to_entity``), through the same helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.simulator.fleet import group_id
from airflow_provider_liveresponse.simulator.odata import Instant

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.fleet import Device
    from airflow_provider_liveresponse.simulator.lifecycle import Action
    from airflow_provider_liveresponse.simulator.limits import Limits


class MachineView(Mapping[str, Any]):
    """The filterable properties of a device as the Machine entity shows them at ``now`` (:meth:`bind` first)."""

    __slots__ = ("device", "limits", "now")

    def __init__(self, now: float, limits: Limits) -> None:
        self.device: Device
        self.now = now
        self.limits = limits

    def bind(self, device: Device) -> MachineView:
        """This view, now of ``device``."""
        self.device = device
        return self

    def __getitem__(self, key: str) -> Any:
        return _MACHINE_FIELDS[key](self)

    def get(self, key: str, default: Any = None) -> Any:
        """The property ``key`` (computed now), or ``default`` when there is no such property."""
        field = _MACHINE_FIELDS.get(key)
        return default if field is None else field(self)

    def __iter__(self) -> Iterator[str]:
        return iter(_MACHINE_FIELDS)

    def __len__(self) -> int:
        return len(_MACHINE_FIELDS)


def _last_seen(view: MachineView) -> Instant:
    return Instant(view.device.seen_at(view.now, view.limits.last_seen_lag_seconds))


_MACHINE_FIELDS: dict[str, Callable[[MachineView], Any]] = {
    "id": lambda view: view.device.id,
    "computerDnsName": lambda view: view.device.computer_dns_name,
    "machineTags": lambda view: view.device.machine_tags,
    "healthStatus": lambda view: view.device.health_status(view.now, view.limits.inactive_after_seconds),
    "osPlatform": lambda view: view.device.os_platform,
    "onboardingStatus": lambda view: "Onboarded" if view.device.onboarded else "CanBeOnboarded",
    "lastSeen": _last_seen,
    "rbacGroupId": lambda view: group_id(view.device.rbac_group_name),
    "riskScore": lambda view: "Low",
    "exposureLevel": lambda view: "Medium",
    "lastIpAddress": lambda view: view.device.ip_address,
}


class ActionView(Mapping[str, Any]):
    """The filterable and sortable properties of a machine action as the list endpoint shows them."""

    __slots__ = ("action",)

    def __init__(self) -> None:
        self.action: Action

    def bind(self, action: Action) -> ActionView:
        """This view, now of ``action``."""
        self.action = action
        return self

    def __getitem__(self, key: str) -> Any:
        return _ACTION_FIELDS[key](self.action)

    def get(self, key: str, default: Any = None) -> Any:
        """The property ``key`` (computed now), or ``default`` when there is no such property."""
        field = _ACTION_FIELDS.get(key)
        return default if field is None else field(self.action)

    def __iter__(self) -> Iterator[str]:
        return iter(_ACTION_FIELDS)

    def __len__(self) -> int:
        return len(_ACTION_FIELDS)


_ACTION_FIELDS: dict[str, Callable[[Action], Any]] = {
    "id": lambda action: action.id,
    "status": lambda action: action.status,
    "machineId": lambda action: action.machine_id,
    "type": lambda action: "LiveResponse",
    "requestor": lambda action: action.requestor,
    "creationDateTimeUtc": lambda action: Instant(action.created),
    "computerDnsName": lambda action: action.computer_dns_name,
    "lastUpdateTimeUtc": lambda action: Instant(action.last_update),
}
