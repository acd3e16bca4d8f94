"""Coalesced polling of machine actions inside one triggerer process, within its share of MDE's read limits.

Every waiting :class:`MachineActionTrigger` of one connection registers here; one poller per connection asks for all
their actions in one listing call per 100 ids (``id in (...)``) per interval, so the calls do not grow with each
waiting trigger. MDE's read limits (100 calls a minute, 1,500 an hour) are per tenant and shared by every triggerer
and fleet sweep of a deployment: the poller stretches its interval so that its own calls stay within the
connection's ``read_share`` of both (:func:`read_plan`). It polls once per interval whoever registers in between
(a new action joins the next poll), so a triggerer's listing calls per interval are its pages, never more.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_liveresponse.connection import DEFAULT_READ_SHARE
from airflow_provider_liveresponse.constants import READ_CALLS_PER_HOUR, READ_CALLS_PER_MINUTE
from airflow_provider_liveresponse.exceptions import LiveResponseError
from airflow_provider_liveresponse.hooks.odata import MAX_IDS_PER_FILTER

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
    from airflow_provider_liveresponse.models import MachineAction

log = logging.getLogger(__name__)

#: After this many polls in a row that failed, waiters hear about the error instead of waiting on.
MAX_CONSECUTIVE_FAILURES = 10
#: Polls in a row that must miss an action before its waiter is told it does not exist.
MAX_MISSES = 3


@dataclass(frozen=True)
class PollPlan:
    """How often one poller may list ``waiting`` actions: the interval its waiters asked for, and the shortest
    interval that keeps its ``pages`` listing calls a poll within ``share`` of MDE's read limits."""

    waiting: int
    pages: int
    share: float
    asked: float
    shortest: float
    #: The API's clock over real time (``simulator_speed``; 1 for MDE): the limits are per minute of that clock.
    speed: float = 1.0

    @property
    def interval(self) -> float:
        """The interval used: the one asked, stretched to :attr:`shortest` when the share allows no less."""
        return max(self.asked, self.shortest)

    @property
    def stretched(self) -> bool:
        """Whether the read share, not the waiters, sets the interval."""
        return self.shortest > self.asked

    @property
    def per_minute(self) -> float:
        """This poller's read calls a minute at most: its share of MDE's per-tenant limit."""
        return self.share * READ_CALLS_PER_MINUTE

    @property
    def per_hour(self) -> float:
        """This poller's read calls an hour at most: its share of MDE's per-tenant limit."""
        return self.share * READ_CALLS_PER_HOUR


def read_plan(asked: float, waiting: int, share: float, speed: float = 1.0) -> PollPlan:
    """The plan of a poll of ``waiting`` actions, one listing call per :data:`MAX_IDS_PER_FILTER` ids: the interval
    ``asked``, at least ``pages x 60 / (share x 100)`` and ``pages x 3600 / (share x 1500)`` seconds.

    Counted from the end of a poll to the start of the next, such an interval keeps the poller's calls within the
    share in every sliding minute and hour while the number of waiting actions stays the same. Against a simulator
    whose clock runs ``speed`` times faster, its minute and hour last ``1 / speed`` of real ones."""
    pages = math.ceil(waiting / MAX_IDS_PER_FILTER)
    shortest = (
        max(
            pages * 60.0 / (share * READ_CALLS_PER_MINUTE),
            pages * 3600.0 / (share * READ_CALLS_PER_HOUR),
        )
        / speed
    )
    return PollPlan(waiting=waiting, pages=pages, share=share, asked=asked, shortest=shortest, speed=speed)


@dataclass
class _Waiter:
    action_id: str
    interval: float
    queue: asyncio.Queue[MachineAction | BaseException] = field(default_factory=asyncio.Queue)
    misses: int = 0


class ActionPoller:
    """One connection's poll loop: one listing call per 100 actions per interval serves every registered action,
    the interval stretched to keep this process within the connection's ``read_share`` of MDE's read limits.

    :param conn_id: the ``mde_live_response`` connection.
    :param hook_factory: builds the async hook of ``conn_id`` (its settings carry ``read_share``).
    :param clock: monotonic seconds (tests hand in a simulated clock).
    :param sleep: how the loop waits between polls (tests hand in one that advances their clock).
    """

    def __init__(
        self,
        conn_id: str,
        hook_factory: type[LiveResponseAsyncHook],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.conn_id = conn_id
        self._hook = hook_factory(conn_id)
        self._clock = clock
        self._sleep = sleep
        self._waiters: dict[int, _Waiter] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        #: The connection's read_share, known once a poll has read the connection (through the hook).
        self._share: float | None = None
        self._speed = 1.0
        self._stretched = False
        #: When the last poll ended (this poller's clock), kept across loops: the loop ends when the last waiter
        #: leaves, and a waiter that registers soon after must not make a poll before the interval is over.
        self._last_poll: float | None = None
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

    def plan(self) -> PollPlan:
        """The plan of the next poll of the actions waiting now."""
        ids = {w.action_id for w in self._waiters.values()}
        asked = min((w.interval for w in self._waiters.values()), default=30.0)
        return read_plan(asked, len(ids), self._share or DEFAULT_READ_SHARE, self._speed)

    async def _run(self) -> None:
        failures = 0
        while self._waiters:
            self._wake.clear()
            if self._last_poll is not None:
                # One poll per interval, whoever registers meanwhile (and even when every waiter left and a new
                # one came): a new registration joins the next poll, so a triggerer's reads never exceed one
                # poll per interval (and its read share). The last poll's last call counts from its end.
                delay = self._last_poll + self.plan().interval - self._clock()
                if delay > 0:
                    await self._pause(delay)
                    continue
            try:
                failures = await self._poll(failures)
            finally:
                self._last_poll = self._clock()

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less when a registration wakes the loop."""
        waking = asyncio.ensure_future(self._wake.wait())
        sleeping = asyncio.ensure_future(self._sleep(seconds))
        try:
            await asyncio.wait((waking, sleeping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waking.cancel()
            sleeping.cancel()

    async def _poll(self, failures: int) -> int:
        """One poll of every waiting action; returns the failed polls in a row."""
        waiters = list(self._waiters.values())
        ids = sorted({w.action_id for w in waiters})
        try:
            actions = await self._hook.get_machine_actions(ids)
            settings = await self._hook.settings()  # read once per hook: no API call
            self._share, self._speed = settings.read_share, settings.simulator_speed
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
            return failures
        self.polls += 1
        for waiter in waiters:
            self._deliver(waiter, actions.get(waiter.action_id))
        self._report(self.plan())
        return 0

    def _deliver(self, waiter: _Waiter, action: MachineAction | None) -> None:
        """Hand a waiter its action, or count a miss (a listing can lag a fresh action by a moment: it is reported
        missing only when it stays missing)."""
        if action is not None:
            waiter.misses = 0
            waiter.queue.put_nowait(action)
            return
        waiter.misses += 1
        if waiter.misses >= MAX_MISSES:
            waiter.queue.put_nowait(
                LiveResponseError(
                    f"Machine action {waiter.action_id} was not found on connection {self.conn_id}: "
                    "check the action id, or whether it was created in another tenant"
                )
            )

    def _report(self, plan: PollPlan) -> None:
        """Say once when the read share starts setting the interval, and once when it stops."""
        if plan.stretched == self._stretched or not plan.waiting:
            return
        self._stretched = plan.stretched
        if plan.stretched:
            log.info(
                "Polling %d waiting action(s) on connection %s every %.1f s instead of the %.1f s asked: %d listing "
                "call(s) a poll, and this process may use read_share %g of MDE's per-tenant read limits, at most "
                "%g calls a minute and %g an hour",
                plan.waiting,
                self.conn_id,
                plan.interval,
                plan.asked,
                plan.pages,
                plan.share,
                plan.per_minute,
                plan.per_hour,
            )
        else:
            log.info(
                "Polling %d waiting action(s) on connection %s every %.1f s again, as asked: %d listing call(s) a "
                "poll fit within read_share %g of MDE's per-tenant read limits (%g calls a minute, %g an hour)",
                plan.waiting,
                self.conn_id,
                plan.interval,
                plan.pages,
                plan.share,
                plan.per_minute,
                plan.per_hour,
            )


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
