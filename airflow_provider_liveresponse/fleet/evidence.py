"""Each collected device's evidence in the destination, with the transfer operator's guarantees: the sweep calls
:func:`~airflow_provider_liveresponse.transfers.collect.store_action_results`, the transfer's own code path
(temporary names, digests, manifest last, idempotent reruns), once per device, into
``<destination>/<host>_<machine id>/<action id>/``. A device whose manifest is already there (an earlier try stored
it) is not read again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.exceptions import LiveResponseError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import Machine, MachineAction


class EvidenceStore:
    """Stores finished actions' results under one destination, a folder per device and action."""

    def __init__(self, hook: LiveResponseHook, destination: ObjectStoragePath, log: Any, owner: str) -> None:
        self.hook = hook
        self.destination = destination
        self.log = log
        self.owner = owner
        self.stored = 0

    def folder(self, machine: Machine, action: MachineAction) -> ObjectStoragePath:
        """``<destination>/<host>_<machine id>/<action id>``, the host name made safe for any object store."""
        from airflow_provider_liveresponse.transfers.naming import safe_name

        host = safe_name(machine.computer_dns_name or "unknown-host")
        return self.destination / f"{host}_{machine.id}" / action.id

    def store(self, machine: Machine, action: MachineAction) -> str | None:
        """Store one device's results; None when they are in place, else why not (a short reason, no link)."""
        from airflow_provider_liveresponse.transfers.collect import CopyOptions, store_action_results
        from airflow_provider_liveresponse.transfers.manifest import MANIFEST_NAME

        folder = self.folder(machine, action)
        if (folder / MANIFEST_NAME).exists():
            return None
        owner = f"{self.owner}, device {machine.computer_dns_name or machine.id}"
        try:
            store_action_results(self.hook, action, folder, options=CopyOptions(), log=self.log, owner=owner)
        except LiveResponseError as exc:
            return f"evidence not stored: {str(exc)[:200]}"
        self.stored += 1
        return None


__all__ = ["EvidenceStore"]
