"""Each collected device's evidence in the destination, with the transfer operator's guarantees: the sweep calls
:func:`~airflow_provider_liveresponse.transfers.collect.store_action_results`, the transfer's own code path
(temporary names, digests, manifest last, idempotent reruns), once per device, into
``<destination>/<host>_<machine id>/<action id>/``. A device whose manifest is already there (an earlier try stored
it) is not read again.
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.exceptions import LiveResponseError

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import Machine, MachineAction
    from airflow_provider_liveresponse.signing import ManifestSigner


class EvidenceStore:
    """Stores finished actions' results under one destination, a folder per device and action (each manifest
    signed by ``signer`` when given)."""

    def __init__(
        self,
        hook: LiveResponseHook,
        destination: ObjectStoragePath,
        log: Any,
        owner: str,
        *,
        signer: ManifestSigner | None = None,
    ) -> None:
        self.hook = hook
        self.signer = signer
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
            store_action_results(
                self.hook,
                action,
                folder,
                options=CopyOptions(generator="FleetLiveResponseOperator"),
                log=self.log,
                owner=owner,
                signer=self.signer,
            )
        except LiveResponseError as exc:
            return f"evidence not stored: {str(exc)[:200]}"
        self.stored += 1
        return None


#: Threads that store evidence beside the sweep's loop, and how many finished actions may wait for them.
STORE_WORKERS = 3
STORE_BACKLOG = 50


class BackgroundStores:
    """Stores beside the sweep's loop, so downloads never hold up submissions and polls: :meth:`put` queues a
    finished action (never blocking: the sweep submits no more while :attr:`full`, so at most ``backlog`` plus the
    sessions in flight wait, and polls and cancels go on), ``workers`` threads store them, each
    with its own :class:`EvidenceStore` (its own hook and HTTP session) from ``make_store``, called on the
    caller's thread (which also reads the connection there: Airflow 3.1's task-SDK channel has no lock), and
    :meth:`done` hands back ``(machine, action, problem)`` for each one stored or refused. The guarantees are the
    store's (temporary names, digests, manifest last); an unexpected error is a short reason, never its text."""

    def __init__(
        self, make_store: Callable[[], EvidenceStore], workers: int = STORE_WORKERS, backlog: int = STORE_BACKLOG
    ) -> None:
        self._todo: queue.Queue[tuple[Machine, MachineAction] | None] = queue.Queue()
        self.backlog = backlog
        self._done: queue.Queue[tuple[Machine, MachineAction, str | None]] = queue.Queue()
        self._make_store = make_store
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self.pending = 0
        self.stored = 0

    @property
    def full(self) -> bool:
        """Whether ``backlog`` actions already wait: the sweep holds its submissions until some are stored."""
        return self.pending >= self.backlog

    def put(self, machine: Machine, action: MachineAction) -> None:
        """Queue one succeeded action's results for storing."""
        if not self._threads:
            for number in range(self._workers):
                store = self._make_store()  # here, not in the thread: Airflow's task-SDK calls stay on one thread
                thread = threading.Thread(target=self._work, args=(store,), name=f"fleet-evidence-{number}")
                thread.daemon = True
                thread.start()
                self._threads.append(thread)
        self.pending += 1
        self._todo.put((machine, action))

    def done(self) -> list[tuple[Machine, MachineAction, str | None]]:
        """The actions stored (or refused) since the last call, with None or why not."""
        finished = []
        while True:
            try:
                finished.append(self._done.get_nowait())
            except queue.Empty:
                break
        self.pending -= len(finished)
        self.stored += sum(1 for _, _, problem in finished if problem is None)
        return finished

    def close(self) -> None:
        """Let the threads end once the queue is empty, and wait for them."""
        for _ in self._threads:
            self._todo.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _work(self, store: EvidenceStore) -> None:
        while (item := self._todo.get()) is not None:
            machine, action = item
            try:
                problem = store.store(machine, action)
            except Exception as exc:  # any failure is this device's outcome, not the sweep's end
                problem = f"evidence not stored: {type(exc).__name__}"
            self._done.put((machine, action, problem))


__all__ = ["BackgroundStores", "EvidenceStore"]
