"""The coalesced poller: its waiting triggers hear about a poll that fails in an unforeseen way, and it stretches its
interval to stay within the connection's read_share of MDE's read limits (on a handed clock, against the simulator).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest

from airflow_provider_liveresponse.auth import reset_token_providers
from airflow_provider_liveresponse.constants import READ_CALLS_PER_HOUR, READ_CALLS_PER_MINUTE
from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
from airflow_provider_liveresponse.hooks.odata import MAX_IDS_PER_FILTER
from airflow_provider_liveresponse.simulator.lifecycle import Command
from airflow_provider_liveresponse.triggers import action_poller
from airflow_provider_liveresponse.triggers.action_poller import ActionPoller, read_plan
from airflow_provider_liveresponse.triggers.machine_action import MachineActionTrigger

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_liveresponse.simulator import Simulator

ACTION_ID = "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10"
CONN_ID = "mde_share"
#: Simulated seconds per real second: the clock moves only when the poller's handed sleep advances it.
STILL_SPEED = 1e-6


async def test_a_poll_that_raises_an_unexpected_error_fails_the_waiting_triggers_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: Any, action_ids: Any) -> Any:
        raise RuntimeError("a bug in the listing code")

    monkeypatch.setattr(action_poller, "MAX_CONSECUTIVE_FAILURES", 2)
    with mock.patch.object(LiveResponseAsyncHook, "get_machine_actions", broken):
        trigger = MachineActionTrigger(ACTION_ID, "mde_poller_failures", poll_interval=0.01)
        event = await asyncio.wait_for(anext(trigger.run()), timeout=10)
    assert event.payload["status"] == "error"
    assert "RuntimeError" in event.payload["message"]
    assert ACTION_ID in event.payload["message"]


# -- the read share: the plan -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "waiting", "share", "pages", "interval", "stretched"),
    [
        (30.0, 1, 1.0, 1, 30.0, False),  # one call a poll: 2.4 s would do
        (30.0, 450, 1.0, 5, 30.0, False),  # 5 calls every 30 s: 600 an hour
        (30.0, 450, 0.5, 5, 30.0, False),  # within 750 an hour
        (5.0, 450, 0.5, 5, 24.0, True),  # 5 calls every 5 s would be 3,600 an hour: 750 needs 24 s
        (5.0, 450, 1.0, 5, 12.0, True),
        (0.25, 200, 1.0, 2, 4.8, True),
        (30.0, 4000, 0.25, 40, 384.0, True),
    ],
)
def test_the_interval_is_stretched_to_keep_the_polls_within_the_share(
    asked: float, waiting: int, share: float, pages: int, interval: float, stretched: bool
) -> None:
    plan = read_plan(asked, waiting, share)
    assert plan.pages == pages
    assert plan.interval == pytest.approx(interval)
    assert plan.stretched is stretched
    assert plan.pages * 3600 / plan.interval <= share * READ_CALLS_PER_HOUR + 1e-9
    assert plan.pages * 60 / plan.interval <= share * READ_CALLS_PER_MINUTE + 1e-9


def test_a_poll_makes_one_listing_call_per_batch_of_the_hooks_filter() -> None:
    assert read_plan(30.0, MAX_IDS_PER_FILTER, 1.0).pages == 1
    assert read_plan(30.0, MAX_IDS_PER_FILTER + 1, 1.0).pages == 2


def test_with_mdes_limits_the_hour_sets_the_stretch_not_the_minute() -> None:
    plan = read_plan(0.1, 100, 0.5)
    assert plan.shortest == pytest.approx(3600 / 750)
    assert plan.per_minute == 50
    assert plan.per_hour == 750


# -- the read share: against the simulator, on a handed clock -----------------------------------------------------


class SimulatedTime:
    """The simulator's clock as the poller's, so a simulated hour takes no real hour and no figure depends on this
    machine's speed. Free-running, the poller's pause advances the clock; otherwise the pause lasts until the test
    calls :meth:`end_pause`, which moves the clock to the pause's end."""

    def __init__(self, sim: Simulator, *, free_running: bool = True) -> None:
        self.sim = sim
        self.free_running = free_running
        self.paused_until: float | None = None
        self._resume = asyncio.Event()

    def __call__(self) -> float:
        return self.sim.clock.time()

    async def sleep(self, seconds: float) -> None:
        if self.free_running or seconds < 1e-6:  # a rounding error's pause is no pause
            self.sim.clock.advance(max(seconds, 0.0))
            await asyncio.sleep(0)
            return
        self.paused_until = self() + seconds
        self._resume.clear()
        try:
            await self._resume.wait()
        finally:
            self.paused_until = None

    def end_pause(self) -> None:
        """Move the clock to the end of the poller's pause, and let it go on."""
        assert self.paused_until is not None
        self.sim.clock.advance(max(self.paused_until - self(), 0.0))
        self._resume.set()


@pytest.fixture
def still(simulator_factory: Callable[..., Simulator]) -> Simulator:
    """A simulator whose clock moves only when advanced, with MDE's read limits."""
    return simulator_factory(speed=STILL_SPEED, token_lifetime=10**12)


def use_connection(sim: Simulator, monkeypatch: pytest.MonkeyPatch, read_share: float | None) -> None:
    conn = sim.connection_dict()
    conn["extra"].pop("simulator_speed")  # these tests hand the poller the simulator's clock itself
    if read_share is not None:
        conn["extra"]["read_share"] = read_share
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    reset_token_providers()


def waiting_actions(sim: Simulator, count: int) -> list[str]:
    """``count`` actions that stay Pending: one per offline device, made on the simulator's state (no API call)."""
    sim.state.set_limits(concurrent_sessions=count + 25)
    ids = []
    for number in range(count):
        device = sim.state.add_device(f"waiting-{number:04d}.contoso.local", online=False)
        command = Command(index=0, type="RunScript", params=[{"key": "ScriptName", "value": "triage.ps1"}])
        ids.append(sim.state.create_action(device.id, [command], "read share", sim.client_id).id)
    return ids


async def run_until(poller: ActionPoller, done: Callable[[], bool], queues: list[asyncio.Queue[Any]]) -> None:
    """Let the poller run until ``done``, emptying the waiters' queues as a trigger would."""

    async def watch() -> None:
        while not done():
            for queue in queues:
                while not queue.empty():
                    queue.get_nowait()
            await asyncio.sleep(0.001)

    await asyncio.wait_for(watch(), timeout=240)


async def stop(poller: ActionPoller, tokens: list[int]) -> None:
    for token in tokens:
        poller.unregister(token)
    for task in [t for t in asyncio.all_tasks() if t.get_name() == f"mde-poller-{CONN_ID}"]:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def register(poller: ActionPoller, ids: list[str], interval: float) -> tuple[list[int], list[asyncio.Queue[Any]]]:
    pairs = [poller.register(action_id, interval) for action_id in ids]
    return [token for token, _ in pairs], [queue for _, queue in pairs]


def timed_listings(monkeypatch: pytest.MonkeyPatch, clock: SimulatedTime) -> list[float]:
    """The handed clock's time at each listing call the poller makes from now on (the calls still go out)."""
    moments: list[float] = []
    listing = LiveResponseAsyncHook.get_machine_actions

    async def timed(self: LiveResponseAsyncHook, action_ids: Any) -> Any:
        moments.append(clock())
        return await listing(self, action_ids)

    monkeypatch.setattr(LiveResponseAsyncHook, "get_machine_actions", timed)
    return moments


@pytest.mark.slow
async def test_450_waiting_actions_at_read_share_half_make_at_most_750_calls_a_simulated_hour(
    still: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_connection(still, monkeypatch, read_share=0.5)
    ids = waiting_actions(still, 450)
    clock = SimulatedTime(still)
    poller = ActionPoller(CONN_ID, LiveResponseAsyncHook, clock=clock, sleep=clock.sleep)
    start = clock()
    with caplog.at_level(logging.INFO, logger=action_poller.__name__):
        tokens, queues = register(poller, ids, interval=5.0)  # 5 calls every 5 s would be 3,600 an hour
        await run_until(poller, lambda: clock() >= start + 3600 + 120, queues)
        await stop(poller, tokens)

    reads = still.state.usage.report(start + 3600, since=start)["apis"]["machineactions"]
    assert reads["per_hour"][0] <= 750
    assert reads["per_hour"][0] >= 745  # the share is used, not wasted: 150 polls of 5 calls, one every 24 s
    assert still.state.usage.report(clock())["apis"]["machineactions"]["peak_per_hour"] <= 750
    assert reads["peak_per_minute"] <= 50
    assert reads["throttled"] == 0
    stretches = [r.getMessage() for r in caplog.records if "instead of the" in r.getMessage()]
    assert stretches == [
        f"Polling 450 waiting action(s) on connection {CONN_ID} every 24.0 s instead of the 5.0 s asked: 5 listing "
        "call(s) a poll, and this process may use read_share 0.5 of MDE's per-tenant read limits, at most 50 calls "
        "a minute and 750 an hour"
    ]


async def test_the_poller_says_once_when_it_stops_stretching(
    still: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_connection(still, monkeypatch, read_share=0.5)
    ids = waiting_actions(still, 150)
    clock = SimulatedTime(still)
    poller = ActionPoller(CONN_ID, LiveResponseAsyncHook, clock=clock, sleep=clock.sleep)
    with caplog.at_level(logging.INFO, logger=action_poller.__name__):
        tokens, queues = register(poller, ids, interval=5.0)  # 2 pages need 9.6 s at 0.5; 1 page 4.8 s
        await run_until(poller, lambda: poller.polls >= 3, queues)
        for token in tokens[50:]:
            poller.unregister(token)
        polls = poller.polls
        await run_until(poller, lambda: poller.polls >= polls + 3, queues[:50])
        await stop(poller, tokens[:50])

    messages = [r.getMessage() for r in caplog.records]
    assert sum("instead of the 5.0 s asked" in m for m in messages) == 1
    (again,) = [m for m in messages if "again, as asked" in m]
    assert again.startswith(f"Polling 50 waiting action(s) on connection {CONN_ID} every 5.0 s again, as asked")


@pytest.mark.parametrize("first_left", [False, True], ids=["beside-a-waiter", "after-every-waiter-left"])
async def test_a_new_registration_joins_the_next_poll_never_a_second_poll_within_the_interval(
    still: Simulator, monkeypatch: pytest.MonkeyPatch, first_left: bool
) -> None:
    """A registration wakes the loop, which pauses again until the same moment. When every waiter had left, the
    loop ended; the new waiter's loop too waits for the interval since the last poll (the distributed test saw
    three listings in one interval from two triggerers when it did not: a mapped sweep's triggers fire one after
    the other, and the next one came)."""
    use_connection(still, monkeypatch, read_share=0.5)
    first, second = waiting_actions(still, 2)
    clock = SimulatedTime(still, free_running=False)
    moments = timed_listings(monkeypatch, clock)
    poller = ActionPoller(CONN_ID, LiveResponseAsyncHook, clock=clock, sleep=clock.sleep)
    token, queue = poller.register(first, 60.0)
    await run_until(poller, lambda: clock.paused_until is not None, [queue])
    assert clock.paused_until == pytest.approx(moments[0] + 60.0, abs=0.01)
    if first_left:
        await stop(poller, [token])
    still.clock.advance(5.0)
    other, other_queue = poller.register(second, 60.0)
    await run_until(poller, lambda: clock.paused_until is not None and not poller._wake.is_set(), [])
    assert len(moments) == 1
    assert clock.paused_until == pytest.approx(moments[0] + 60.0, abs=0.01)
    clock.end_pause()
    await run_until(poller, lambda: poller.polls >= 2, [queue, other_queue])
    await stop(poller, [token, other])

    assert moments[1] - moments[0] == pytest.approx(60.0, abs=0.01)
    assert len(moments) == 2


async def test_the_async_hook_reads_the_connection_once_not_at_every_poll(
    still: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(still, monkeypatch, read_share=0.5)
    ids = waiting_actions(still, 3)
    reads: list[str] = []
    aget_connection = LiveResponseAsyncHook.aget_connection

    async def counted(conn_id: str) -> Any:
        reads.append(conn_id)
        return await aget_connection(conn_id)

    monkeypatch.setattr(LiveResponseAsyncHook, "aget_connection", staticmethod(counted))
    clock = SimulatedTime(still)
    poller = ActionPoller(CONN_ID, LiveResponseAsyncHook, clock=clock, sleep=clock.sleep)
    tokens, queues = register(poller, ids, interval=30.0)
    await run_until(poller, lambda: poller.polls >= 4, queues)
    await stop(poller, tokens)

    assert reads == [CONN_ID]
    assert poller.polls >= 4
    assert poller.polls <= poller.calls <= poller.polls + 1  # one call a poll (the last may be cut short)


async def test_without_read_share_a_poller_may_use_all_of_mdes_read_limits(
    still: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(still, monkeypatch, read_share=None)
    ids = waiting_actions(still, 250)
    clock = SimulatedTime(still)
    moments = timed_listings(monkeypatch, clock)
    poller = ActionPoller(CONN_ID, LiveResponseAsyncHook, clock=clock, sleep=clock.sleep)
    tokens, queues = register(poller, ids, interval=1.0)
    await run_until(poller, lambda: poller.polls >= 5, queues)
    plan = poller.plan()
    await stop(poller, tokens)

    assert plan.share == 1.0
    assert plan.interval == pytest.approx(3 * 3600 / 1500)  # 3 calls a poll, 1,500 calls an hour
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments[:5])]
    assert gaps == pytest.approx([3 * 3600 / 1500] * 4, abs=0.01)


def test_against_a_fast_simulator_the_budget_counts_on_its_clock() -> None:
    # 200 waiting actions at read_share 1: 2 calls a poll may go every 4.8 s against MDE, every 0.08 s against a
    # simulator 60 times faster (its hour is one real minute).
    assert read_plan(0.01, 200, 1.0).interval == pytest.approx(4.8)
    assert read_plan(0.01, 200, 1.0, speed=60.0).interval == pytest.approx(0.08)
