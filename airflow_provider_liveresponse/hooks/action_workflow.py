"""The action workflow of the sync hook: submit once or reattach, find the session that blocks a device, and wait
for an action to end.

Mixed into :class:`~airflow_provider_liveresponse.hooks.live_response.LiveResponseHook`, so that operators read as
"submit, record, wait or defer" (as Azure Data Factory's hook owns ``wait_for_pipeline_run_status``). It builds only
on the hook's public calls (``run_live_response``, ``find_actions_by_marker``, ``get_machine_action``, ...).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.markers import check_marker, try_marker

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow_provider_liveresponse.models import Command, MachineAction

log = logging.getLogger(__name__)

#: Log a long wait's state and elapsed time at most this often (and on every change).
PROGRESS_EVERY = 300.0
#: The statuses of a live-response session that holds its device (a new session is refused meanwhile).
ACTIVE_STATUSES = ("Pending", "InProgress")


class _HookCalls(Protocol):
    """The public calls of the hook this workflow builds on."""

    def run_live_response(
        self, machine_id: str, commands: Sequence[Command | dict[str, Any]], comment: str, *, marker: str | None = None
    ) -> MachineAction: ...

    def find_actions_by_marker(
        self, machine_id: str, marker: str, *, created_after: datetime | None = None
    ) -> list[MachineAction]: ...

    def get_machine_action(self, action_id: str) -> MachineAction: ...

    def list_machine_actions(
        self,
        *,
        machine_id: str | None = None,
        action_type: str | None = None,
        status: str | Sequence[str] | None = None,
    ) -> list[MachineAction]: ...


def reattachable(action: MachineAction) -> bool:
    """Whether a task may reattach to ``action`` instead of running its commands again: it is still running, or it
    succeeded. One that ended Failed, TimeOut or Cancelled is what a retry is for."""
    return not action.is_terminal or str(action.status) == "Succeeded"


def log_progress(action: MachineAction, elapsed: float) -> None:
    """The default progress report of :meth:`ActionWorkflowMixin.wait_for_action`: state, time and commands."""
    commands = ", ".join(f"{c.index}:{c.type}={c.command_status}" for c in action.commands)
    log.info("Action %s is %s after %.0f s [%s]", action.id, action.status, elapsed, commands)


class ActionWorkflowMixin:
    """Submit-once-or-reattach, the blocking session of a busy device, and wait, on top of the hook's public
    calls."""

    def submit_or_reattach(
        self: _HookCalls,
        machine_id: str,
        commands: Sequence[Command | dict[str, Any]],
        comment: str,
        *,
        marker: str,
        try_number: int,
        lookback: float | timedelta,
    ) -> MachineAction:
        """The action of ``marker``'s family to reattach to, or a new submission marked ``<marker>.<try_number>``.

        An earlier try's action that is still running or succeeded is returned (its commands are not run again);
        one that ended otherwise is logged and the commands are submitted again. ``lookback`` bounds how far back
        (seconds or a timedelta) earlier tries are looked for.
        """
        from airflow_provider_liveresponse.models import parse_commands

        machine_id = validation.machine_id(machine_id)
        try:
            parsed = parse_commands(list(commands) if isinstance(commands, tuple) else commands)
        except ValueError as exc:
            raise LiveResponseConfigError(str(exc)) from None
        comment = validation.text(comment, "comment", hint="why this live response runs (the audit trail)")
        marker = check_marker(marker)
        try_number = validation.count(try_number, "try_number")
        since = datetime.now(UTC) - timedelta(seconds=validation.duration(lookback, "lookback"))
        earlier = self.find_actions_by_marker(machine_id, marker, created_after=since)
        latest = earlier[-1] if earlier else None
        if latest is not None and reattachable(latest):
            log.info(
                "Reattaching to action %s on machine %s (%s), submitted by an earlier try of this task; not "
                "running the commands again",
                latest.id,
                machine_id,
                latest.status,
            )
            return latest
        if latest is not None:
            log.warning(
                "The earlier try's action %s on machine %s ended %s: this retry runs the commands again",
                latest.id,
                machine_id,
                latest.status,
            )
        return self.run_live_response(machine_id, parsed, comment, marker=try_marker(marker, try_number))

    def reattach(self: _HookCalls, action_id: str) -> MachineAction | None:
        """The action ``action_id`` if a task may reattach to it (:func:`reattachable`), else None."""
        action = self.get_machine_action(validation.action_id(action_id))
        return action if reattachable(action) else None

    def blocking_session(self: _HookCalls, machine_id: str) -> MachineAction | None:
        """The oldest Pending or InProgress live-response action on ``machine_id`` (the session that makes MDE
        refuse a new one with ``ActiveRequestAlreadyExists``), or None when the device is free."""
        active = self.list_machine_actions(
            machine_id=validation.machine_id(machine_id), action_type="LiveResponse", status=list(ACTIVE_STATUSES)
        )
        if not active:
            return None
        return min(active, key=lambda a: a.creation_date_time_utc or datetime.min.replace(tzinfo=UTC))

    def wait_for_action(
        self: _HookCalls,
        action_id: str,
        *,
        poll_interval: float | timedelta,
        deadline: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[MachineAction, float], None] = log_progress,
        last_seen: MachineAction | None = None,
    ) -> MachineAction:
        """Poll ``action_id`` every ``poll_interval`` seconds until it ends, and return it as it ended.

        ``deadline`` is a time on ``clock`` (UNIX seconds by default): past it, :class:`TimeoutError` says which
        action on which machine is still running and what to do. ``progress`` hears the state and the seconds
        waited on every change and at least every 5 minutes. ``last_seen``, the action as just read, saves the
        first read.
        """
        action_id = validation.action_id(action_id)
        interval = validation.duration(poll_interval, "poll_interval")
        deadline = validation.timestamp(deadline, "deadline")
        started = last_report = clock()
        action = last_seen if last_seen is not None and last_seen.id == action_id else None
        if action is None:
            action = self.get_machine_action(action_id)
        last_status = str(action.status)
        while not action.is_terminal:
            now = clock()
            if now >= deadline:
                raise TimeoutError(
                    f"Action {action.id} on machine {action.machine_id} was still {action.status} when the wait "
                    f"reached its deadline ({now - started:.0f} s of waiting). It may still run in MDE: cancel it in "
                    "the Defender portal, or rerun the task (with a longer timeout) to reattach to it"
                )
            sleep(min(interval, deadline - now))
            action = self.get_machine_action(action_id)
            now = clock()
            if str(action.status) != last_status or now - last_report >= PROGRESS_EVERY:
                progress(action, now - started)
                last_status, last_report = str(action.status), now
        return action


__all__ = ["ACTIVE_STATUSES", "PROGRESS_EVERY", "ActionWorkflowMixin", "log_progress", "reattachable"]
