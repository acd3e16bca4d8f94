"""Coalesced polling of machine actions inside one triggerer process.

MDE's read APIs allow 1,500 calls an hour per tenant. Every waiting :class:`MachineActionTrigger` of one
connection registers here; one poller per connection asks for all their actions in one listing call
(``id in (...)``, 100 ids a page) per interval, so the calls per hour do not grow with the number of waiting
actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_liveresponse.exceptions import LiveResponseError

if TYPE_CHECKING:
    from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
    from airflow_provider_liveresponse.models import MachineAction

log = logging.getLogger(__name__)

#: After this many polls in a row that failed, waiters hear about the error instead of waiting on.
MAX_CONSECUTIVE_FAILURES = 10
#: Polls in a row that must miss an action before its waiter is told it does not exist.
MAX_MISSES = 3


@dataclass
class _Waiter:
    action_id: str
    interval: float
    queue: asyncio.Queue[MachineAction | BaseException] = field(default_factory=asyncio.Queue)
    polled: bool = False
    misses: int = 0


class ActionPoller:
    """One connection's poll loop: one listing call per interval serves every registered action."""

    def __init__(self, conn_id: str, hook_factory: type[LiveResponseAsyncHook]) -> None:
        self.conn_id = conn_id
        self._hook = hook_factory(conn_id)
        self._waiters: dict[int, _Waiter] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.polls = 0

    @property
    def calls(self) -> int:
        """API calls this poller has made (for tests and benchmarks)."""
        return self._hook.calls

    def register(self, action_id: str, interval: float) -> tuple[int, asyncio.Queue[MachineAction | BaseException]]:
        """Start waiting for ``action_id``; its updates arrive on the returned queue."""
        waiter = _Waiter(action_id, interval)
        token = id(waiter)
        self._waiters[token] = waiter
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"mde-poller-{self.conn_id}")
        self._wake.set()
        return token, waiter.queue

    def unregister(self, token: int) -> None:
        """Stop waiting (the trigger fired, timed out or was cancelled)."""
        self._waiters.pop(token, None)
        if not self._waiters and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        failures = 0
        next_poll = time.monotonic()
        while self._waiters:
            delay = next_poll - time.monotonic()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                # A new registration wakes the loop only to poll it at once if nothing was polled yet.
                if time.monotonic() < next_poll and not self._has_unpolled():
                    continue
            interval = min((w.interval for w in self._waiters.values()), default=30.0)
            ids = sorted({w.action_id for w in self._waiters.values()})
            try:
                actions = await self._hook.get_machine_actions(ids)
                failures = 0
            except Exception as caught:
                # A failed poll; an unforeseen error (a bug) too must not end this task silently, or every waiting
                # trigger would hang until its deadline: it counts as a failed poll and reaches the waiters.
                exc = (
                    caught
                    if isinstance(caught, LiveResponseError)
                    else LiveResponseError(
                        f"Polling machine actions on connection {self.conn_id} failed unexpectedly: "
                        f"{type(caught).__name__}: {caught}"
                    )
                )
                failures += 1
                log.warning("Polling %d action(s) on connection %s failed (%s)", len(ids), self.conn_id, exc)
                if failures >= MAX_CONSECUTIVE_FAILURES or getattr(exc, "status", None) in (401, 403):
                    for waiter in list(self._waiters.values()):
                        waiter.queue.put_nowait(exc)
                next_poll = time.monotonic() + interval
                continue
            self.polls += 1
            for waiter in list(self._waiters.values()):
                waiter.polled = True
                action = actions.get(waiter.action_id)
                if action is not None:
                    waiter.misses = 0
                    waiter.queue.put_nowait(action)
                    continue
                # A listing can lag a fresh action by a moment: report it missing only when it stays missing.
                waiter.misses += 1
                if waiter.misses >= MAX_MISSES:
                    waiter.queue.put_nowait(
                        LiveResponseError(
                            f"Machine action {waiter.action_id} was not found on connection {self.conn_id}: "
                            "check the action id, or whether it was created in another tenant"
                        )
                    )
            next_poll = time.monotonic() + interval

    def _has_unpolled(self) -> bool:
        return any(not w.polled for w in self._waiters.values())


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, ActionPoller]] = weakref.WeakKeyDictionary()


def poller_for(conn_id: str, hook_factory: type[LiveResponseAsyncHook]) -> ActionPoller:
    """The poller of ``conn_id`` in the running event loop (one per loop and connection).

    Keyed by the loop itself (weakly), so a loop that ended never lends its poller to a new one.
    """
    pollers = _POLLERS.setdefault(asyncio.get_running_loop(), {})
    poller = pollers.get(conn_id)
    if poller is None:
        poller = pollers[conn_id] = ActionPoller(conn_id, hook_factory)
    return poller
