"""The sweep loop: submit in paced waves while session slots are free, poll every action in flight in ``id in
(...)`` batches inside the read budget, cancel what is not picked up within ``pickup_timeout`` (freeing its slot),
and try such devices again in a later wave once the fresh devices are done. It waits on a handed clock and sleep.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.exceptions import LiveResponseApiError
from airflow_provider_liveresponse.fleet.ledger import Next, device_marker
from airflow_provider_liveresponse.fleet.outcome import COLLECTED, FAILED, OFFLINE, SKIPPED, DeviceOutcome
from airflow_provider_liveresponse.fleet.planner import target_name
from airflow_provider_liveresponse.hooks.odata import batches

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow_provider_liveresponse.fleet.evidence import BackgroundStores
    from airflow_provider_liveresponse.fleet.ledger import DeviceState
    from airflow_provider_liveresponse.fleet.limiter import ReadBudget, SubmissionLimiter
    from airflow_provider_liveresponse.fleet.outcome import OutcomeTable
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import Machine, MachineAction

log = logging.getLogger(__name__)
#: How often (seconds) the loop looks for stored evidence while nothing else is due.
STORE_CHECK = 0.05


def age(action: MachineAction) -> float:
    """Seconds since MDE created ``action`` (0 when unknown or in the future)."""
    created = action.creation_date_time_utc
    return max(0.0, (datetime.now(UTC) - created).total_seconds()) if created is not None else 0.0


@dataclass(frozen=True)
class SweepSettings:
    """What every device of the sweep gets, and the sweep's bounds (durations in seconds)."""

    commands: Sequence[Any]
    comment: str
    sweep_marker: str
    pickup_timeout: float
    offline_retries: int
    max_sessions: int
    poll_interval: float
    progress_every: float = 300.0


@dataclass
class Flight:
    """An action of the sweep that has not ended yet."""

    machine: Machine
    action_id: str
    wave: int
    since: float


@dataclass
class Sweep:
    """Drives one sweep to its end; outcomes go into ``table``."""

    hook: LiveResponseHook
    settings: SweepSettings
    limiter: SubmissionLimiter
    polls: ReadBudget
    table: OutcomeTable
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    evidence: BackgroundStores | None = None
    queue: deque[tuple[Machine, int]] = field(default_factory=deque)
    later: deque[tuple[Machine, int]] = field(default_factory=deque)
    flights: dict[str, Flight] = field(default_factory=dict)
    submitted: int = 0
    next_poll: float = 0.0
    next_progress: float = 0.0

    @property
    def max_waves(self) -> int:
        """Submissions a device may get in this sweep: the first and ``offline_retries`` more after a cancel."""
        return 1 + self.settings.offline_retries

    def start(self, machines: Sequence[Machine], states: dict[str, DeviceState]) -> None:
        """Queue, reattach or report each planned device from its state in MDE."""
        for machine in machines:
            state = states.get(machine.id.lower())
            verdict, action = state.next(self.max_waves) if state else (Next.SUBMIT, None)
            if verdict is Next.SUBMIT:
                self.queue.append((machine, (state.waves if state else 0) + 1))
            elif verdict is Next.REATTACH and action is not None:
                since = self.clock() - age(action)  # a reattached action's pickup clock started at its creation
                self.flights[action.id] = Flight(machine, action.id, state.waves if state else 1, since)
            elif action is not None:
                self.finish(machine, action, wave=state.waves if state else 1)

    def run(self) -> None:
        """Submit, poll and wait until every device has an outcome."""
        self.next_progress = self.clock() + self.settings.progress_every
        while self.queue or self.later or self.flights or self.storing:
            self.submit_ready()
            if self.flights and self.clock() >= self.next_poll:
                self.poll()
            self.stored()
            self.progress()
            self.sleep(self.idle())
        self.progress(final=True)

    @property
    def storing(self) -> int:
        """Succeeded actions whose evidence is still being stored."""
        return self.evidence.pending if self.evidence is not None else 0

    def stored(self) -> None:
        """Record the devices whose evidence the store threads finished (or could not store)."""
        if self.evidence is None:
            return
        for machine, action, problem in self.evidence.done():
            verdict = FAILED if problem else COLLECTED
            self.table.record(DeviceOutcome(target_name(machine), verdict, problem or "", machine.id, action.id))

    def idle(self) -> float:
        """How long nothing needs doing."""
        waits = [self.settings.poll_interval]
        if self.storing:
            waits.append(STORE_CHECK)
        if self.flights:
            waits.append(self.next_poll - self.clock())
        if (self.queue or self.later) and self.can_submit():
            waits.append(self.limiter.wait())
        return max(0.001, min(waits))

    def submit_ready(self) -> None:
        """Submit while a slot is free and the limiter lets one go; waves of retries after the fresh devices."""
        while self.can_submit() and self.limiter.wait() == 0:
            source = self.queue or self.later
            if not source:
                return
            machine, wave = source.popleft()
            if not self.submit(machine, wave):
                source.appendleft((machine, wave))
                return

    def can_submit(self) -> bool:
        """A session slot is free and the evidence threads are not ``backlog`` actions behind."""
        storing_full = self.evidence is not None and self.evidence.full
        return len(self.flights) < self.settings.max_sessions and not storing_full

    def submit(self, machine: Machine, wave: int) -> bool:
        """Submit to one device; False when MDE throttled it (to try again after Retry-After)."""
        self.limiter.take()
        marker = device_marker(self.settings.sweep_marker, machine.id, wave)
        sent = self.clock()  # MDE creates the action (and its session's clock starts) after this
        try:
            action = self.hook.run_live_response(
                machine.id, self.settings.commands, self.settings.comment, marker=marker
            )
        except LiveResponseApiError as exc:
            if exc.status == 429:
                self.limiter.throttled(exc.retry_after)
                return False
            self.refused(machine, exc)
            return True
        self.limiter.accepted()
        self.submitted += 1
        self.flights[action.id] = Flight(machine, action.id, wave, sent)
        return True

    def refused(self, machine: Machine, exc: LiveResponseApiError) -> None:
        """MDE refused a device's submission: report it (never resubmitted in this sweep)."""
        name = target_name(machine)
        if exc.code == "OsPlatformNotSupported":
            self.table.record(DeviceOutcome(name, SKIPPED, f"live response does not support {machine.os_platform}"))
        elif exc.code == "ActiveRequestAlreadyExists":
            self.table.record(DeviceOutcome(name, FAILED, "busy: another live-response session is active", machine.id))
        else:
            self.table.record(DeviceOutcome(name, FAILED, f"submission refused ({exc.status} {exc.code})", machine.id))

    def poll(self) -> None:
        """Read every action in flight, 100 per call, and act on each."""
        for batch in batches(sorted(self.flights)):
            wait = self.polls.wait()
            if wait > 0:
                self.next_poll = self.clock() + wait
                return
            self.polls.take()
            for action in self.hook.list_machine_actions(action_ids=list(batch), page_size=len(batch)):
                flight = self.flights.get(action.id)
                if flight is not None:
                    self.update(flight, action)
        self.next_poll = self.clock() + max(self.settings.poll_interval, self.polls.interval())

    def update(self, flight: Flight, action: MachineAction) -> None:
        """An action's new state: finished, not picked up in time (cancel it), or still going."""
        if action.is_terminal:
            del self.flights[flight.action_id]
            self.finish(flight.machine, action, flight.wave)
            return
        picked_up = str(action.status) != "Pending" or any(c.start_time for c in action.commands)
        if not picked_up and self.clock() - flight.since + self.poll_gap() >= self.settings.pickup_timeout:
            self.give_up(flight)  # now, or the next poll would come after pickup_timeout

    def poll_gap(self) -> float:
        """The time until the next poll: an action still Pending whose pickup_timeout ends before it is cancelled
        at this poll, up to one gap early, so that no silent device holds its session past pickup_timeout."""
        return max(self.settings.poll_interval, self.polls.interval())

    def give_up(self, flight: Flight) -> None:
        """Cancel an action its device did not pick up in time; free the slot; maybe try it in a later wave."""
        hours = self.settings.pickup_timeout / 3600
        label = f"{hours:g}h" if hours >= 1 else f"{self.settings.pickup_timeout:g}s"
        comment = f"Airflow fleet sweep: no pickup within {label}; the device seems offline"
        action = self.hook.cancel_machine_action(flight.action_id, comment)
        del self.flights[flight.action_id]
        if str(action.status) not in ("Cancelled", "Pending"):
            self.finish(flight.machine, action, flight.wave)  # it ended before the cancel landed
            return
        name = target_name(flight.machine)
        reason = f"not collected (no pickup within {label})"
        self.table.record(DeviceOutcome(name, OFFLINE, reason, flight.machine.id, flight.action_id))
        if flight.wave < self.max_waves:
            self.later.append((flight.machine, flight.wave + 1))

    def finish(self, machine: Machine, action: MachineAction, wave: int) -> None:
        """Record a device whose action ended (or that ended in an earlier try of the sweep)."""
        name = target_name(machine)
        status = str(action.status)
        if status == "Succeeded" and self.evidence is not None:
            self.evidence.put(machine, action)  # recorded by stored() once it is in the destination
            return
        if status == "Succeeded":
            outcome = DeviceOutcome(name, COLLECTED, "", machine.id, action.id)
        elif status == "Cancelled":
            reason = "not collected (cancelled; no pickup)" if wave >= self.max_waves else "cancelled outside the sweep"
            outcome = DeviceOutcome(name, OFFLINE if wave >= self.max_waves else FAILED, reason, machine.id, action.id)
        else:
            errors = "; ".join(e for c in action.failed_commands for e in c.errors)[:200]
            outcome = DeviceOutcome(name, FAILED, f"{status}: {errors or 'no error given'}", machine.id, action.id)
        self.table.record(outcome)

    def progress(self, *, final: bool = False) -> None:
        """A counts line every ``progress_every`` seconds (and at the end)."""
        if not final and self.clock() < self.next_progress:
            return
        self.next_progress = self.clock() + self.settings.progress_every
        counts = self.table.counts()
        eta = (len(self.queue) + len(self.later)) * self.limiter.spacing
        log.info(
            "Fleet sweep: %d collected, %d in flight, %d storing, %d pending, %d offline, %d failed, %d skipped; "
            "ETA %.0f s",
            counts[COLLECTED],
            len(self.flights),
            self.storing,
            len(self.queue) + len(self.later),
            counts[OFFLINE],
            counts[FAILED],
            counts[SKIPPED],
            eta,
        )


__all__ = ["Flight", "Sweep", "SweepSettings"]
