"""Benchmark 2, polling economy: MDE read calls per simulated hour while N actions wait in one triggerer.

N actions wait on offline devices (they stay ``Pending``), and N ``MachineActionTrigger.run()`` generators run
concurrently in one asyncio event loop, as in one triggerer process, with the operator's default poll interval
of 30 s. The simulator runs fast, so a simulated hour passes in seconds, and counts every read call. The
baseline row runs the naive trigger in the same loop: each action polled by its own
``LiveResponseAsyncHook.get_machine_action`` once per interval. MDE's read limits (100 a minute, 1,500 an
hour) are lifted in the simulator so that each row shows its demand rather than what MDE would let through.

The work of a poll grows with N, so each row's simulator runs as fast as lets this machine keep up (at most
240 times real time, a simulated hour in 15 s) and is measured for about 15 real seconds after a warm-up: a
rate. The figure is the calls per round (a round: one poll of the coalesced poller, or one interval of the naive
triggers' schedule) times the 120 rounds of a simulated hour at 30 s. The raw rate at the row's speed is printed
beside it, with "on schedule", the rounds made over the rounds due: the poller waits its interval after a poll
ends, so at 240x a poll's own duration (negligible at a real 30 s) stretches the simulated interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_liveresponse.testing.simulated_connection import read_calls, running_simulator
from benchmarks.core import Result, benchmark
from benchmarks.support import CONN_ID

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    from airflow_provider_liveresponse.models import MachineAction
    from airflow_provider_liveresponse.simulator.server import Simulator
    from airflow_provider_liveresponse.triggers.action_poller import ActionPoller

#: The operator's and sensor's default poll interval, in (simulated) seconds.
POLL_INTERVAL = 30.0
#: MDE's read budget per hour.
HOURLY_BUDGET = 1500
#: Simulated seconds per real second at most (a simulated hour in 15 real seconds).
SPEED = 240.0
#: Each row's simulator is slowed so that the row polls at most this many actions a real second: a coalesced
#: poll costs about half a millisecond per action, a naive one several (one TLS connection per call).
ACTIONS_PER_REAL_SECOND = {"coalesced": 500.0, "naive": 100.0}
#: Real seconds each row measures for (after a warm-up), within at least 10 and at most 120 intervals.
REAL_WINDOW = 15.0
#: Actions one listing call covers (the poller's ``id in (...)`` batch).
IDS_PER_CALL = 100


@dataclass(frozen=True)
class Row:
    """One measured row. A round is one pass over every waiting action: one poll of the coalesced poller, or
    one call from every naive trigger."""

    polling: str
    naive: bool
    waiting: int
    speed: float
    window: float
    calls: int
    rounds: float
    fired: int

    @property
    def calls_per_round(self) -> float:
        return self.calls / self.rounds if self.rounds else float("nan")

    @property
    def per_hour(self) -> float:
        """Calls per simulated hour at one round per poll interval (MDE time)."""
        return self.calls_per_round * 3600.0 / POLL_INTERVAL

    @property
    def raw_per_hour(self) -> float:
        """Calls per simulated hour as measured at this speed (a poll's own duration stretches the interval)."""
        return self.calls * 3600.0 / self.window

    @property
    def on_schedule(self) -> float:
        """The share of its schedule the row kept: calls made of those due (naive), or polls (coalesced)."""
        due = self.window / POLL_INTERVAL
        return self.calls / (self.waiting * due) if self.naive else self.rounds / due


def _wait_on_offline_devices(sim: Simulator, count: int) -> list[str]:
    """``count`` actions that stay Pending: one per new offline device, created on the simulator's state."""
    from airflow_provider_liveresponse.simulator.lifecycle import Command

    sim.state.set_limits(concurrent_sessions=count + 25, read_calls_per_minute=10**9, read_calls_per_hour=10**9)
    ids = []
    for number in range(count):
        device = sim.state.add_device(f"waiting-{number:04d}.contoso.local", online=False)
        command = Command(index=0, type="RunScript", params=[{"key": "ScriptName", "value": "triage.ps1"}])
        ids.append(sim.state.create_action(device.id, [command], "polling economy", sim.client_id).id)
    return ids


async def _naive_trigger(action_id: str, interval: float, offset: float) -> MachineAction:
    """What a trigger without coalescing does: its own hook, one read per interval, on a fixed schedule."""
    from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook

    hook = LiveResponseAsyncHook(CONN_ID)
    loop = asyncio.get_running_loop()
    next_poll = loop.time() + offset
    while True:
        await asyncio.sleep(max(next_poll - loop.time(), 0.0))
        action = await hook.get_machine_action(action_id)
        if action.is_terminal:
            return action
        next_poll += interval


async def _poll_ended(poller: ActionPoller | None) -> None:
    """Return just after the poller's next poll ends, so that a window holds whole polls only."""
    if poller is None:
        return
    polls = poller.polls
    while poller.polls == polls:  # noqa: ASYNC110 - the poller has no event to wait on; a benchmark may spin
        await asyncio.sleep(0.001)


async def _drive(
    sim: Simulator, ids: Sequence[str], naive: bool, speed: float, window: float
) -> tuple[int, float, float, int]:
    """Run the waiters for a warm-up, then ``window`` simulated seconds: (calls, simulated seconds, rounds, fired)."""
    from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
    from airflow_provider_liveresponse.triggers.action_poller import poller_for
    from airflow_provider_liveresponse.triggers.machine_action import MachineActionTrigger

    interval = POLL_INTERVAL / speed
    waiters: list[Awaitable[object]]
    if naive:
        waiters = [_naive_trigger(a, interval, interval * n / len(ids)) for n, a in enumerate(ids)]
    else:
        waiters = [anext(MachineActionTrigger(a, CONN_ID, poll_interval=interval).run()) for a in ids]
    tasks = [asyncio.ensure_future(waiter) for waiter in waiters]
    poller = None if naive else poller_for(CONN_ID, LiveResponseAsyncHook)
    try:
        # Warm-up: the first round (every naive trigger's first TLS connection at once) settles.
        await asyncio.sleep(interval * (3 if naive else 1.5))
        await _poll_ended(poller)
        calls, started, polls = read_calls(sim), sim.clock.time(), poller.polls if poller else 0
        await asyncio.sleep(window / speed)
        await _poll_ended(poller)
        calls, elapsed = read_calls(sim) - calls, sim.clock.time() - started
        # The naive triggers' rounds are those their schedule held in the window; the poller counts its polls.
        rounds = (poller.polls - polls) if poller else elapsed / POLL_INTERVAL
        fired = sum(1 for task in tasks if task.done())
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
    return calls, elapsed, rounds, fired


def _measure(count: int, naive: bool, real_window: float) -> Row:
    speed = min(SPEED, POLL_INTERVAL * ACTIONS_PER_REAL_SECOND["naive" if naive else "coalesced"] / count)
    window = min(max(real_window * speed, 10 * POLL_INTERVAL), 120 * POLL_INTERVAL)
    with running_simulator(CONN_ID, speed=speed, token_lifetime=3600 * speed) as sim:
        ids = _wait_on_offline_devices(sim, count)
        calls, elapsed, rounds, fired = asyncio.run(_drive(sim, ids, naive, speed, window))
    name = "baseline: one call per trigger" if naive else "MachineActionTrigger (coalesced)"
    return Row(name, naive, count, speed, elapsed, calls, rounds, fired)


@benchmark(
    "polling",
    "Polling economy (2): MDE read calls per simulated hour, N actions waiting in one triggerer",
    sizes=(10, 100, 500),
    quick_sizes=(10, 100),
    sizes_mean="actions waiting at once",
)
def polling_economy(sizes: Sequence[int], quick: bool) -> Result:
    result = Result()
    table = result.table(
        f"Read calls while N actions wait (poll interval {POLL_INTERVAL:g} s; MDE's budget {HOURLY_BUDGET:,}/h)",
        [
            "polling",
            "N",
            "speed",
            "window",
            "read calls",
            "rounds",
            "calls/round",
            "calls/h",
            "per action",
            "of budget",
            "raw calls/h",
            "on schedule",
        ],
    )
    coalesced: list[Row] = []
    naive: list[Row] = []
    for count in sorted(sizes):
        for is_naive, rows in ((False, coalesced), (True, naive)):
            row = _measure(count, is_naive, REAL_WINDOW / 3 if quick else REAL_WINDOW)
            rows.append(row)
            table.add(
                row.polling,
                row.waiting,
                f"{row.speed:g}x",
                f"{row.window / 60:.0f} min",
                row.calls,
                f"{row.rounds:.0f}",
                f"{row.calls_per_round:.1f}",
                f"{row.per_hour:,.0f}",
                f"{row.per_hour / row.waiting:.1f}",
                f"{row.per_hour / HOURLY_BUDGET:.0%}",
                f"{row.raw_per_hour:,.0f}",
                f"{row.on_schedule:.0%}",
            )

    smallest = coalesced[0]
    for row in coalesced[1:]:
        bound = smallest.per_hour * math.ceil(row.waiting / IDS_PER_CALL) * 1.1
        result.check(
            f"coalesced calls/h at N={row.waiting} vs N={smallest.waiting}",
            f"{row.per_hour:,.0f} ({row.per_hour / smallest.per_hour:.1f}x)",
            f"flat per {IDS_PER_CALL} waiting actions: <= {bound:,.0f} (ceil(N/{IDS_PER_CALL}) x, +10%)",
            row.per_hour <= bound,
        )
    largest = coalesced[-1]
    result.check(
        f"coalesced calls/h at N={largest.waiting}",
        f"{largest.per_hour:,.0f}",
        f"<= {HOURLY_BUDGET:,}",
        largest.per_hour <= HOURLY_BUDGET,
    )
    result.check(
        "waiting triggers that fired early or failed",
        str(sum(row.fired for row in coalesced)),
        "0 (every action is still Pending)",
        all(row.fired == 0 for row in coalesced),
    )
    growth = result.table(
        f"Growth from N={smallest.waiting} to each N (calls/h divided by the N={smallest.waiting} row)",
        ["N", "coalesced", "baseline", "N ratio"],
    )
    for row, base in zip(coalesced, naive, strict=True):
        growth.add(
            row.waiting,
            f"{row.per_hour / smallest.per_hour:.1f}x",
            f"{base.per_hour / naive[0].per_hour:.1f}x",
            f"{row.waiting / smallest.waiting:.0f}x",
        )
    return result
