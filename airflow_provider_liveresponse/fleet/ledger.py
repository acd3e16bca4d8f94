"""Each device's state in a sweep, rebuilt from MDE: the sweep's own actions, found in one paged listing by their
marker, say per device what is done, what is still running and what may be tried again.

A device's action is marked ``<sweep marker>.<first 12 hex of the device id>.<wave>`` (the sweep marker is
:func:`~airflow_provider_liveresponse.markers.task_marker` of the task: the same on every try). So a retry, a
worker that died, or a rerun of the same DAG run redoes only devices not yet done, and no device that already has
a live or finished action gets a second one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from airflow_provider_liveresponse.markers import carries_marker_family, check_marker

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow_provider_liveresponse.models import MachineAction

#: Hex characters of the device id in a device's marker.
SHORT_ID = 12


class Next(Enum):
    """What the sweep does next for a device."""

    SUBMIT = "submit"
    REATTACH = "reattach"
    DONE = "done"
    FAILED = "failed"


def device_marker(sweep_marker: str, machine_id: str, wave: int) -> str:
    """The marker of a device's action in wave ``wave`` (1, 2, ...)."""
    return check_marker(f"{sweep_marker}.{machine_id.lower()[:SHORT_ID]}.{wave}")


def marker_wave(comment: str | None, sweep_marker: str) -> int | None:
    """The wave a comment's device marker names, or None when it is not one of the sweep's."""
    pattern = re.escape(f"[airflow:{sweep_marker}.") + rf"[0-9a-f]{{{SHORT_ID}}}\.(\d+)\]"
    found = re.search(pattern, comment or "")
    return int(found.group(1)) if found else None


@dataclass
class DeviceState:
    """The sweep's actions on one device, oldest wave first."""

    machine_id: str
    actions: list[tuple[int, MachineAction]] = field(default_factory=list)

    @property
    def waves(self) -> int:
        """How many waves already submitted to this device."""
        return max((wave for wave, _ in self.actions), default=0)

    def next(self, max_waves: int) -> tuple[Next, MachineAction | None]:
        """What to do: collected (DONE), still running (REATTACH), ended Failed or TimeOut (FAILED: one action per
        device, never rerun), only cancelled by the sweep (SUBMIT again while waves remain), or nothing yet."""
        by_status: dict[str, MachineAction] = {}
        for _, action in self.actions:
            by_status[str(action.status)] = action
        for status, verdict in (("Succeeded", Next.DONE), ("Pending", Next.REATTACH), ("InProgress", Next.REATTACH)):
            if status in by_status:
                return verdict, by_status[status]
        for status in ("Failed", "TimeOut"):
            if status in by_status:
                return Next.FAILED, by_status[status]
        if self.actions and self.waves >= max_waves:
            return Next.DONE, self.actions[-1][1]  # cancelled in every wave: offline, reported as such
        return Next.SUBMIT, None


def rebuild(actions: Iterable[MachineAction], sweep_marker: str) -> dict[str, DeviceState]:
    """Each device's state from a listing of live-response actions (other actions are ignored)."""
    states: dict[str, DeviceState] = {}
    for action in actions:
        if not action.machine_id or not carries_marker_family(action.requestor_comment, sweep_marker):
            continue
        wave = marker_wave(action.requestor_comment, sweep_marker)
        if wave is None:
            continue
        state = states.setdefault(action.machine_id.lower(), DeviceState(action.machine_id.lower()))
        state.actions.append((wave, action))
    for state in states.values():
        state.actions.sort(key=lambda pair: pair[0])
    return states


__all__ = ["SHORT_ID", "DeviceState", "Next", "device_marker", "marker_wave", "rebuild"]
