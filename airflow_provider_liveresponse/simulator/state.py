"""The simulator's in-process state: fleet, library, actions, results, limits, faults and counters.

Every handler works under :attr:`SimulatorState.lock` and calls :meth:`SimulatorState.tick` first, so the
life cycle of each action is advanced lazily to the current simulated time before anything is read or changed.
Tests may read and change the state directly (``sim.state``).
"""

from __future__ import annotations

import heapq
import itertools
import random
import secrets
import threading
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.simulator.clock import format_datetime
from airflow_provider_liveresponse.simulator.errors import ApiError
from airflow_provider_liveresponse.simulator.estate import FleetSpec, build_fleet
from airflow_provider_liveresponse.simulator.faults import Faults
from airflow_provider_liveresponse.simulator.fleet import LIVE_RESPONSE_PLATFORMS, Device, make_device, seed_fleet
from airflow_provider_liveresponse.simulator.library import LibraryFile, seed_library
from airflow_provider_liveresponse.simulator.lifecycle import Action, Command, Result, advance
from airflow_provider_liveresponse.simulator.limits import READ_GROUPS, Limits, SlidingWindow, profile_limits
from airflow_provider_liveresponse.simulator.results import ResultStore
from airflow_provider_liveresponse.simulator.usage import Usage

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.simulator.clock import SimulatedClock
    from airflow_provider_liveresponse.simulator.results import Blob


class SimulatorState:
    """Everything the simulated tenant knows, guarded by one re-entrant lock."""

    def __init__(
        self,
        clock: SimulatedClock,
        state_dir: Path,
        *,
        seed: int = 0,
        limits: Limits | None = None,
        profile: str = "seeds",
    ) -> None:
        self.clock = clock
        self.state_dir = state_dir
        self.seed = seed
        self.lock = threading.RLock()
        self.profile = profile
        self.limits = limits or profile_limits(profile)
        self.faults = Faults(seed)
        self.counters: Counter[str] = Counter()
        #: Scopes requested at the token endpoint, in order.
        self.scopes_used: list[str] = []
        #: ``User-Agent`` headers of every counted call (token, API and blob host), with their counts.
        self.user_agents: Counter[str] = Counter()
        #: Every access token and every result download link handed out, in order: what a client must keep
        #: secret (tests look for them where they must not be, such as logs).
        self.issued_tokens: list[str] = []
        self.issued_links: list[str] = []
        #: Every listing of machine actions (``GET /api/machineactions``): its simulated time and ``$filter``, so a
        #: test can tell a poller's ``id in (...)`` pages from the other listings.
        self.action_listings: list[tuple[float, str]] = []
        now = clock.time()
        self.devices: dict[str, Device] = {device.id: device for device in seed_fleet(now)}
        self.library: dict[str, LibraryFile] = seed_library(now)
        self.actions: dict[str, Action] = {}
        #: Pending and InProgress actions by id, and by device: what :meth:`tick` advances.
        self._active: dict[str, Action] = {}
        self._active_by_device: dict[str, Action] = {}
        #: Scheduled online / offline changes: (simulated time, sequence, device id, online).
        self._schedule: list[tuple[float, int, str, bool]] = []
        self._sequence = itertools.count()
        #: Calls and 429s per rate-limited API, on the simulated clock (``GET /_sim/usage``).
        self.usage = Usage(now)
        self.results = ResultStore(state_dir / "blobs", seed, secrets.token_bytes(32))
        self._ids = random.Random(seed)
        self._windows: dict[str, SlidingWindow] = {}

    def count_call(self, group: str, user_agent: str | None) -> None:
        """Count one call to an endpoint group (``calls:<group>``) and its ``User-Agent``."""
        with self.lock:
            self.counters[f"calls:{group}"] += 1
            self.user_agents[user_agent or ""] += 1

    # -- time -------------------------------------------------------------------------------------------------
    def tick(self) -> float:
        """Advance every active action to the current simulated time; returns that time.

        Scheduled device changes that fall due are applied in time order, each after that device's actions
        have been advanced to its moment.
        """
        with self.lock:
            now = self.clock.time()
            while self._schedule and self._schedule[0][0] <= now:
                at, _, machine_id, online = heapq.heappop(self._schedule)
                device = self.devices.get(machine_id)
                if device is None:
                    continue
                action = self._active_by_device.get(machine_id)
                if action is not None:
                    self._advance(action, at)
                device.set_online(online, at)
            for action in list(self._active.values()):
                self._advance(action, now)
            return now

    def _advance(self, action: Action, until: float) -> None:
        advance(action, self.devices[action.machine_id], self.library, self.limits, until)
        if not action.is_active:
            self._retire(action)

    def _retire(self, action: Action) -> None:
        self._active.pop(action.id, None)
        if self._active_by_device.get(action.machine_id) is action:
            del self._active_by_device[action.machine_id]

    def advance_clock(self, seconds: float) -> float:
        """Move the simulated clock ahead (actions progress on the next :meth:`tick`)."""
        with self.lock:
            self.tick()
            self.clock.advance(seconds)
            return self.tick()

    # -- limits -----------------------------------------------------------------------------------------------
    def set_limits(self, profile: str | None = None, **changes: Any) -> Limits:
        """Switch to a profile and/or change single limits."""
        with self.lock:
            self.tick()
            base = profile_limits(profile) if profile else self.limits
            if profile:
                self.profile = profile
            self.limits = base.updated(**changes)
            return self.limits

    def take_rate(self, group: str, now: float) -> float | None:
        """Count one call to a rate-limited group; the simulated seconds to wait if it is over a limit."""
        with self.lock:
            if group == "runliveresponse" or group in READ_GROUPS:
                self.usage.record_call(group, now)
            if group == "runliveresponse":
                rules = [(self.limits.run_calls_per_minute, 60.0)]
            elif group in READ_GROUPS:
                rules = [(self.limits.read_calls_per_minute, 60.0), (self.limits.read_calls_per_hour, 3600.0)]
            else:
                return None
            waits = []
            for limit, window in rules:
                wait = self._windows.setdefault(f"{group}/{window:g}", SlidingWindow()).check(now, limit, window)
                if wait is not None:
                    waits.append(wait)
            if waits:
                return max(waits)
            for _, window in rules:
                self._windows[f"{group}/{window:g}"].record(now)
            return None

    # -- devices ----------------------------------------------------------------------------------------------
    def device(self, machine_id: str) -> Device | None:
        """The device with this id (case-insensitive), or None."""
        return self.devices.get(machine_id.lower())

    def machine_entity(self, device: Device, now: float) -> dict[str, Any]:
        """The device as an MDE Machine entity at ``now``, with this tenant's lastSeen lag and 7-day rule."""
        return device.to_machine(
            now,
            format_datetime,
            last_seen_lag=self.limits.last_seen_lag_seconds,
            inactive_after=self.limits.inactive_after_seconds,
        )

    def device_by_host(self, host_name: str) -> Device | None:
        """The device with this host name (case-insensitive), or None."""
        lowered = host_name.lower()
        for device in self.devices.values():
            if device.computer_dns_name.lower() == lowered:
                return device
        return None

    def add_device(self, host_name: str, **options: Any) -> Device:
        """Add a device (see :func:`fleet.make_device` for options); an existing host name is replaced."""
        with self.lock:
            self.tick()
            device = make_device(host_name, self.clock.time(), number=len(self.devices) + 7000, **options)
            self.devices[device.id] = device
            return device

    def set_device_online(self, machine_id: str, online: bool, at: float | None = None) -> Device:
        """Bring a device online or take it offline now, or at simulated time ``at`` (not in the past)."""
        with self.lock:
            now = self.tick()
            device = self._known_device(machine_id)
            if at is None:
                device.set_online(online, now)
                return device
            if at < now:
                raise ValueError(f"at must not be before the simulated now ({now:.3f}), got {at:.3f}")
            heapq.heappush(self._schedule, (at, next(self._sequence), device.id, online))
            self.counters["scheduled_device_changes"] += 1
            return device

    def scheduled_changes(self, machine_id: str) -> list[dict[str, Any]]:
        """The device's online / offline changes still to come: ``[{"at": epoch, "online": bool}]``."""
        with self.lock:
            return [
                {"at": at, "online": online}
                for at, _, device, online in sorted(self._schedule)
                if device == machine_id.lower()
            ]

    def add_fleet(self, spec: FleetSpec) -> dict[str, Any]:
        """Seed a large fleet (see :mod:`.estate`); returns what it holds. ``spec.replace`` drops the others."""
        with self.lock:
            now = self.tick()
            devices, summary = build_fleet(spec, now)
            if spec.replace:
                keep = {device.id for device in devices}
                busy = sorted({action.machine_id for action in self.actions.values()} - keep)
                if busy:
                    raise ValueError(f"cannot replace the fleet: {len(busy)} device(s) have actions, e.g. {busy[0]}")
                self.devices.clear()
            self.devices.update((device.id, device) for device in devices)
            self.counters["fleet_devices_seeded"] += len(devices)
            return summary

    def add_device_file(self, machine_id: str, path: str, size: int) -> None:
        """Create a file of ``size`` bytes on a device."""
        with self.lock:
            self.tick()
            self._known_device(machine_id).add_file(path, size)

    def _known_device(self, machine_id: str) -> Device:
        device = self.device(machine_id)
        if device is None:
            raise KeyError(f"no device {machine_id!r}")
        return device

    # -- actions ----------------------------------------------------------------------------------------------
    def new_id(self) -> str:
        """A new action id (seeded, so a run with the same seed makes the same ids)."""
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def active_actions(self) -> list[Action]:
        """Pending and InProgress actions (as of the last :meth:`tick`)."""
        with self.lock:
            return [action for action in self._active.values() if action.is_active]

    def create_action(self, machine_id: str, commands: list[Command], comment: str | None, requestor: str) -> Action:
        """Start a live-response session, with every refusal MDE makes (raises :class:`ApiError`)."""
        with self.lock:
            now = self.tick()
            device = self.device(machine_id)
            if device is None:
                raise ApiError(404, "ResourceNotFound", f"Machine {machine_id} was not found")
            if not device.onboarded:
                raise ApiError(
                    400,
                    "ClientVersionNotSupported",
                    f"Machine {device.id} is not onboarded: its client version is not supported",
                )
            if device.os_platform not in LIVE_RESPONSE_PLATFORMS:
                raise ApiError(400, "OsPlatformNotSupported", f"Live response is not supported on {device.os_platform}")
            if not device.automation:
                raise ApiError(
                    403, "DisallowedOperation", f"Machine {device.id} is in a device group that has no automation level"
                )
            busy = self._active_by_device.get(device.id)
            if busy is not None:
                raise ApiError(
                    400,
                    "ActiveRequestAlreadyExists",
                    f"Action is already in progress: machine action {busy.id} is {busy.status} on {device.id}",
                )
            if len(self._active) >= self.limits.concurrent_sessions:
                raise ApiError(
                    429,
                    "TooManyRequests",
                    f"Too many concurrent live response sessions (limit {self.limits.concurrent_sessions})",
                    retry_after=self.limits.concurrency_retry_after_seconds,
                )
            action = Action(
                id=self.new_id(),
                machine_id=device.id,
                computer_dns_name=device.computer_dns_name,
                requestor=requestor,
                comment=comment,
                created=now,
                commands=commands,
                last_update=now,
                cursor=now,
            )
            self.actions[action.id] = action
            self._active[action.id] = action
            self._active_by_device[device.id] = action
            self.counters["actions_created"] += 1
            # Sessions only start here, so the peak of concurrently active sessions is always seen here.
            active = len(self._active)
            self.counters["max_concurrent_sessions"] = max(self.counters["max_concurrent_sessions"], active)
            return action

    def action(self, action_id: str) -> Action:
        """The action with this id (raises a 404 :class:`ApiError`)."""
        with self.lock:
            self.tick()
            action = self.actions.get(action_id.lower())
            if action is None:
                raise ApiError(404, "ResourceNotFound", f"Machine action {action_id} was not found")
            return action

    def cancel_action(self, action_id: str, comment: str, requestor: str) -> Action:
        """Cancel a Pending or InProgress action (400 when it has already ended)."""
        with self.lock:
            action = self.action(action_id)
            if not action.is_active:
                raise ApiError(
                    400, "BadRequest", f"Machine action {action.id} is already {action.status} and cannot be cancelled"
                )
            action.cancel(requestor, comment, self.clock.time())
            self._retire(action)
            return action

    def result(self, action_id: str, index: int) -> Result:
        """The result of one command (raises :class:`ApiError` when there is none yet, or never)."""
        with self.lock:
            action = self.action(action_id)
            command = next((command for command in action.commands if command.index == index), None)
            if command is None:
                raise ApiError(404, "NotFound", f"Machine action {action.id} has no command with index {index}")
            if command.type == "PutFile":
                raise ApiError(400, "BadRequest", f"Command {index} of {action.id} is a PutFile: it has no result")
            if command.result is None:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"Command {index} of {action.id} has no result: its status is {command.status}",
                )
            return command.result

    def blob(self, action_id: str, index: int) -> Blob:
        """The blob of a command's result (materialized on first use, outside the state lock)."""
        return self.results.blob(f"{action_id.lower()}/{index}", self.result(action_id, index))

    def result_digest(self, action_id: str, index: int) -> dict[str, Any]:
        """Expected digests of a result: ``{"raw": {...}, "compressed": {...}, "file_name", "content_type"}``.

        ``raw`` is the collected file, ``compressed`` the gzip blob served (both the same for transcripts);
        each has ``size``, ``sha256``, ``md5`` and ``md5_base64``.
        """
        blob = self.blob(action_id, index)
        return {
            "raw": blob.raw.as_dict(),
            "compressed": blob.compressed.as_dict(),
            "file_name": blob.download_name,
            "content_type": blob.content_type,
        }

    # -- library ----------------------------------------------------------------------------------------------
    def library_file(self, name: str) -> LibraryFile | None:
        """A library file by name (case-insensitive), or None."""
        return self.library.get(name.lower())
