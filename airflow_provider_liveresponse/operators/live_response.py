"""LiveResponseOperator: run PutFile / RunScript / GetFile on a device through MDE, exactly once.

Submits on the worker, pushes the action id to XCom at once (key ``action_id``), then waits by polling or by
deferring to :class:`~airflow_provider_liveresponse.triggers.machine_action.MachineActionTrigger`. A retry of
the task, or a worker that died after submitting, reattaches to the action already created: each submission
carries a marker unique to the DAG run, task and map index in its comment, looked up before submitting.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseOperator

from airflow_provider_liveresponse.constants import DEFAULT_CONN_ID, OFFLINE_QUEUE_SECONDS
from airflow_provider_liveresponse.links import MachineActionLink

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import Command, MachineAction

#: Default wait: MDE's 3-day queue for an offline device, plus an hour for the commands themselves.
DEFAULT_TIMEOUT = float(OFFLINE_QUEUE_SECONDS + 3600)
#: Log the state of a long poke-mode wait at most this often (and on every change).
_PROGRESS_EVERY = 300.0
#: The task state store key (Airflow 3.3+) holding the action id this task submitted.
STATE_STORE_KEY = "mde_action_id"


def _seconds(value: float | timedelta, field: str, *, zero_allowed: bool = False) -> float:
    """A positive (or, with ``zero_allowed``, non-negative), finite number of seconds, or an error naming
    ``field``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{field} must be a number of seconds or a timedelta, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero_allowed):
        least = "0 or more" if zero_allowed else "positive"
        raise ValueError(f"{field} must be a finite number of seconds, {least}, got {value!r}")
    return seconds


#: Seconds a deferral for a 429 lasts at least (see ``throttle_wait_in_worker``).
MIN_THROTTLE_DEFERRAL = 15.0


class LiveResponseOperator(BaseOperator):
    """Run live-response commands on one MDE device and (optionally) wait for them to end.

    :param commands: the commands, as models (``RunScript(...)``, ``GetFile(...)``, ``PutFile(...)``) or wire
        dicts; templated.
    :param machine_id: the 40-hex-character device id (templated); or give ``computer_dns_name``.
    :param computer_dns_name: the device's host name, resolved through the machines API (templated).
    :param comment: the audit comment (templated); defaults to the DAG, task and run.
    :param wait_for_completion: wait for the action to end (default) or return once it is submitted.
    :param poll_interval: seconds between status reads.
    :param timeout: how long to wait for the action to end (default: MDE's 3-day queue plus an hour).
    :param deferrable: wait in the triggerer instead of a worker slot (default ``[operators]
        default_deferrable``).
    :param cancel_on_kill: cancel the MDE action when the task is killed.
    :param mde_conn_id: the ``mde_live_response`` connection.
    :param max_retry_wait: seconds one API call may wait out 429s and transient errors.
    :param busy_timeout: how long to wait for another live-response session on the device to end.
    :param cancel_stale_after: cancel another session that has been Pending longer than this (off by
        default: never cancel somebody else's session unless told to).
    :param throttle_wait_in_worker: seconds of 429 waits (``Retry-After``) a deferrable task may spend in its
        worker before it defers (default 0: it defers at once, holding no worker slot). A throttle deferral lasts
        at least 15 s, and at least this long: one that ends within seconds meets an Airflow 3 scheduler race that
        fails the try (apache/airflow#67287).
    """

    template_fields: Sequence[str] = ("machine_id", "computer_dns_name", "commands", "comment")
    template_fields_renderers = {"commands": "json"}
    ui_color = "#d0e4f5"
    operator_extra_links = (MachineActionLink(),)

    def __init__(
        self,
        *,
        commands: Sequence[Command | dict[str, Any]] | str,
        machine_id: str | None = None,
        computer_dns_name: str | None = None,
        comment: str | None = None,
        wait_for_completion: bool = True,
        poll_interval: float = 30.0,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        mde_conn_id: str = DEFAULT_CONN_ID,
        max_retry_wait: float = 600.0,
        busy_timeout: float | timedelta = 3600.0,
        cancel_stale_after: float | timedelta | None = None,
        throttle_wait_in_worker: float | timedelta = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(commands, (list, tuple)):
            # Wire dicts, so that Jinja in a command's values (a script's Args, a GetFile path) is rendered.
            commands = [c.to_wire() if hasattr(c, "to_wire") else c for c in commands]
        self.commands = commands
        self.machine_id = machine_id
        self.computer_dns_name = computer_dns_name
        self.comment = comment
        self.wait_for_completion = wait_for_completion
        self.poll_interval = _seconds(poll_interval, "poll_interval")
        self.timeout = _seconds(timeout, "timeout")
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.mde_conn_id = mde_conn_id
        self.max_retry_wait = max_retry_wait
        self.busy_timeout = _seconds(busy_timeout, "busy_timeout")
        self.cancel_stale_after = (
            None if cancel_stale_after is None else _seconds(cancel_stale_after, "cancel_stale_after")
        )
        self.throttle_wait_in_worker = _seconds(throttle_wait_in_worker, "throttle_wait_in_worker", zero_allowed=True)
        self.action_id: str | None = None

    # -- helpers ----------------------------------------------------------------------------------------

    def _hook(self, *, max_throttle_wait: float | None = None) -> LiveResponseHook:
        from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

        return LiveResponseHook(
            self.mde_conn_id, max_retry_wait=self.max_retry_wait, max_throttle_wait=max_throttle_wait
        )

    def _validated(self) -> tuple[list[Command], str]:
        """Check the rendered parameters before any API call; errors name the field and the fix."""
        from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
        from airflow_provider_liveresponse.models import parse_commands

        if bool(self.machine_id) == bool(self.computer_dns_name):
            raise LiveResponseConfigError(
                f"Task {self.task_id}: give exactly one of machine_id (the 40-hex device id) or computer_dns_name "
                f"(the host name); got machine_id={self.machine_id!r}, computer_dns_name={self.computer_dns_name!r}"
            )
        commands: Any = self.commands
        if isinstance(commands, str):
            import json

            try:
                commands = json.loads(commands)
            except ValueError:
                raise LiveResponseConfigError(
                    f"Task {self.task_id}: commands rendered to a string that is not a JSON list of commands"
                ) from None
        try:
            parsed = parse_commands(commands)
        except ValueError as exc:
            raise LiveResponseConfigError(f"Task {self.task_id}: {exc}") from None
        if self.machine_id is not None:
            from airflow_provider_liveresponse.hooks.live_response import validate_machine_id

            validate_machine_id(self.machine_id)
        if self.comment is not None and not isinstance(self.comment, str):
            raise LiveResponseConfigError(
                f"Task {self.task_id}: comment must be text (the audit comment MDE keeps), got {self.comment!r}"
            )
        comment = (self.comment or "").strip()
        return parsed, comment

    def _resolve_machine(self, hook: LiveResponseHook) -> str:
        from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
        from airflow_provider_liveresponse.hooks.live_response import validate_machine_id

        if self.machine_id:
            return validate_machine_id(self.machine_id)
        assert self.computer_dns_name is not None
        machines = hook.find_machines(computer_dns_name=self.computer_dns_name)
        if len(machines) != 1:
            found = ", ".join(f"{m.id} (last seen {m.last_seen})" for m in machines) or "none"
            raise LiveResponseConfigError(
                f"Task {self.task_id}: computer_dns_name {self.computer_dns_name!r} matched {len(machines)} devices "
                f"in MDE ({found}); pass machine_id to pick one, or check the name (the full DNS name, as shown on "
                "the device page)"
            )
        return machines[0].id

    @staticmethod
    def marker(context: Context) -> str:
        """The submission marker: unique per DAG, run, task and map index, stable across tries."""
        from airflow_provider_liveresponse.markers import marker_for_context

        return marker_for_context(context)

    def _default_comment(self, context: Context) -> str:
        ti = context["ti"]
        index = getattr(ti, "map_index", -1)
        mapped = f"[{index}]" if index is not None and index >= 0 else ""
        return f"Airflow {ti.dag_id}.{ti.task_id}{mapped} run {ti.run_id}"

    # -- execute ----------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        commands, comment = self._validated()
        deadline = time.time() + self.timeout
        return self._submit_and_wait(context, commands, comment or self._default_comment(context), deadline)

    def resume_submit(
        self,
        context: Context,
        event: Any = None,
        deadline: float | None = None,
        busy_deadline: float | None = None,
    ) -> Any:
        """Back from a deferral (throttled submit or busy device): look up, then submit again."""
        if busy_deadline is None and isinstance(event, dict) and isinstance(event.get("end_time"), (int, float)):
            # dag.test() resumes with the event only, dropping the deferral's kwargs (a real triggerer merges
            # them); the busy wait's trigger carries its deadline in its event, so the wait stays bounded.
            busy_deadline = float(event["end_time"])
        commands, comment = self._validated()
        return self._submit_and_wait(
            context,
            commands,
            comment or self._default_comment(context),
            deadline or time.time() + self.timeout,
            busy_deadline,
        )

    def _submit_and_wait(
        self,
        context: Context,
        commands: list[Command],
        comment: str,
        deadline: float,
        busy_deadline: float | None = None,
    ) -> Any:
        from airflow_provider_liveresponse.exceptions import LiveResponseApiError

        # A deferrable task gives a throttled call to the triggerer (after throttle_wait_in_worker, if set).
        hook = self._hook(max_throttle_wait=self.throttle_wait_in_worker if self.deferrable else None)
        try:
            action = self._reattach_from_state_store(context, hook)
            if action is None:
                action = self._find_or_submit(context, hook, commands, comment)
        except LiveResponseApiError as exc:
            if exc.status == 429 and self.deferrable:
                return self._defer_for_throttle(exc.retry_after, deadline, busy_deadline)
            if exc.code == "ActiveRequestAlreadyExists" and exc.machine_id:
                return self._wait_for_busy_device(
                    context, hook, exc.machine_id, commands, comment, deadline, busy_deadline, exc
                )
            raise
        self._record(context, action)
        if not self.wait_for_completion:
            return action.summary()
        return self._wait(context, hook, action, deadline)

    def _reattach_from_state_store(self, context: Context, hook: LiveResponseHook) -> MachineAction | None:
        """Airflow 3.3+: the action an earlier try of this task recorded in the task state store, if it can be
        reattached to (still running, or succeeded)."""
        store: Any = context.get("task_state_store")
        if store is None:
            return None
        try:
            action_id = store.get(STATE_STORE_KEY)
        except Exception as exc:  # the marker look-up still protects the device
            self.log.warning("Could not read the task state store (%s); looking the action up by marker", exc)
            return None
        if not isinstance(action_id, str) or not action_id:
            return None
        action = hook.get_machine_action(action_id)
        if action.is_terminal and str(action.status) != "Succeeded":
            return None
        self.log.info(
            "Reattaching to action %s on machine %s (%s), recorded by an earlier try of this task; not running "
            "the commands again",
            action.id,
            action.machine_id,
            action.status,
        )
        return action

    def _find_or_submit(
        self, context: Context, hook: LiveResponseHook, commands: list[Command], comment: str
    ) -> MachineAction:
        """Reattach to this task's action from an earlier try (by its marker), or submit the commands."""
        machine_id = self._resolve_machine(hook)
        marker = self.marker(context)
        earlier = hook.find_actions_by_marker(
            machine_id, marker, created_after=datetime.now(UTC) - timedelta(seconds=self.timeout + 86400)
        )
        latest = earlier[-1] if earlier else None
        if latest is not None and (not latest.is_terminal or str(latest.status) == "Succeeded"):
            self.log.info(
                "Reattaching to action %s on machine %s (%s), submitted by an earlier try of this task; not "
                "running the commands again",
                latest.id,
                machine_id,
                latest.status,
            )
            return latest
        if latest is not None:
            self.log.warning(
                "The earlier try's action %s on machine %s ended %s: this retry runs the commands again",
                latest.id,
                machine_id,
                latest.status,
            )
        try_number = getattr(context["ti"], "try_number", None) or 1
        from airflow_provider_liveresponse.markers import try_marker

        return hook.run_live_response(machine_id, commands, comment, marker=try_marker(marker, try_number))

    def _record(self, context: Context, action: MachineAction) -> None:
        """Make the action id durable at once: task state store (3.3+), XCom, and the portal link."""
        self.action_id = action.id
        store: Any = context.get("task_state_store")
        if store is not None:
            try:
                store.set(STATE_STORE_KEY, action.id)
            except Exception as exc:  # the marker still finds the action on a retry
                self.log.warning("Could not record action %s in the task state store (%s)", action.id, exc)
        ti = context["ti"]
        ti.xcom_push(key="action_id", value=action.id)
        ti.xcom_push(key="machine_id", value=action.machine_id)
        MachineActionLink.persist(context, action.id)

    def _defer_for_throttle(self, retry_after: float | None, deadline: float, busy_deadline: float | None) -> Any:
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

        # A deferral that ends within seconds meets Airflow's defer race (apache/airflow#67287): the scheduler
        # fails the try when the trigger fires before it has processed the deferring worker's exit.
        delay = max(retry_after or 60.0, self.throttle_wait_in_worker, MIN_THROTTLE_DEFERRAL)
        if time.time() + delay >= deadline:
            raise TimeoutError(
                f"Task {self.task_id}: MDE kept throttling (429) and the task's timeout ({self.timeout:.0f} s) "
                "would pass before the next try; nothing was submitted. What to do: lower the number of "
                "concurrent live-response tasks (a pool of 25 slots with include_deferred=True) and rerun"
            )
        self.log.warning(
            "MDE throttled the call (429: at most 10 runs a minute, 25 concurrent sessions and 1,500 reads an "
            "hour per tenant); deferring %.0f s instead of holding a worker slot",
            delay,
        )
        self.defer(
            trigger=TimeDeltaTrigger(timedelta(seconds=delay)),
            method_name="resume_submit",
            kwargs={"deadline": deadline, "busy_deadline": busy_deadline},
        )

    def _wait_for_busy_device(
        self,
        context: Context,
        hook: LiveResponseHook,
        machine_id: str,
        commands: list[Command],
        comment: str,
        deadline: float,
        busy_deadline: float | None,
        error: Exception,
    ) -> Any:
        from airflow_provider_liveresponse.exceptions import LiveResponseApiError

        active = hook.list_machine_actions(
            machine_id=machine_id, action_type="LiveResponse", status=["Pending", "InProgress"]
        )
        if not active:
            # It ended between the refusal and the look-up: try again at once.
            return self._submit_and_wait(context, commands, comment, deadline, busy_deadline)
        blocking = min(active, key=lambda a: a.creation_date_time_utc or datetime.min.replace(tzinfo=UTC))
        age = (
            (datetime.now(UTC) - blocking.creation_date_time_utc).total_seconds()
            if blocking.creation_date_time_utc
            else 0.0
        )
        if self.cancel_stale_after is not None and str(blocking.status) == "Pending" and age > self.cancel_stale_after:
            self.log.warning(
                "Cancelling stale Pending action %s on machine %s (%.0f s old, older than cancel_stale_after), "
                "requested by %s: %s",
                blocking.id,
                machine_id,
                age,
                blocking.requestor,
                blocking.requestor_comment,
            )
            hook.cancel_machine_action(blocking.id, f"Stale session cancelled by Airflow task {self.task_id}")
            return self._submit_and_wait(context, commands, comment, deadline, busy_deadline)
        if busy_deadline is None:
            busy_deadline = min(deadline, time.time() + self.busy_timeout)
        if time.time() >= busy_deadline:
            raise LiveResponseApiError(
                f"Machine {machine_id} stayed busy with another live-response session, action {blocking.id} "
                f"({blocking.status}, requested by {blocking.requestor}: {blocking.requestor_comment!r}), past "
                f"busy_timeout ({self.busy_timeout:.0f} s); nothing was submitted. What to do: wait for it, "
                "cancel it in the Defender portal, or set cancel_stale_after to let the task cancel stale "
                "Pending sessions",
                machine_id=machine_id,
                action_id=blocking.id,
                code="ActiveRequestAlreadyExists",
            ) from error
        self.log.info(
            "Machine %s is busy with action %s (%s, requested by %s); waiting up to %.0f s for it to end "
            "before submitting",
            machine_id,
            blocking.id,
            blocking.status,
            blocking.requestor,
            busy_deadline - time.time(),
        )
        if self.deferrable:
            from airflow_provider_liveresponse.triggers.machine_action import MachineActionTrigger

            self.defer(
                trigger=MachineActionTrigger(blocking.id, self.mde_conn_id, self.poll_interval, end_time=busy_deadline),
                method_name="resume_submit",
                kwargs={"deadline": deadline, "busy_deadline": busy_deadline},
            )
        while time.time() < busy_deadline:
            time.sleep(min(self.poll_interval, max(busy_deadline - time.time(), 0.0)))
            if hook.get_machine_action(blocking.id).is_terminal:
                break
        return self._submit_and_wait(context, commands, comment, deadline, busy_deadline)

    def _wait(self, context: Context, hook: LiveResponseHook, action: MachineAction, deadline: float) -> Any:
        if action.is_terminal:
            return self._finish(hook, action)
        if self.deferrable:
            from airflow_provider_liveresponse.triggers.machine_action import MachineActionTrigger

            self.defer(
                trigger=MachineActionTrigger(
                    action.id,
                    self.mde_conn_id,
                    self.poll_interval,
                    end_time=deadline,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=max(deadline - time.time(), 1.0) + 600),
            )
        started = time.monotonic()
        last_status, last_log = str(action.status), started
        while not action.is_terminal:
            if time.time() >= deadline:
                raise TimeoutError(
                    f"Action {action.id} on machine {action.machine_id} was still {action.status} after the task's "
                    f"timeout ({self.timeout:.0f} s). It may still run in MDE: cancel it in the Defender portal, or "
                    "rerun the task to reattach to it"
                )
            time.sleep(min(self.poll_interval, max(deadline - time.time(), 0.0)))
            action = hook.get_machine_action(action.id)
            now = time.monotonic()
            if str(action.status) != last_status or now - last_log >= _PROGRESS_EVERY:
                commands = ", ".join(f"{c.index}:{c.type}={c.command_status}" for c in action.commands)
                self.log.info("Action %s is %s after %.0f s [%s]", action.id, action.status, now - started, commands)
                last_status, last_log = str(action.status), now
        return self._finish(hook, action)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Back from the trigger: succeed with the action's summary, or fail with a clear message."""
        from airflow_provider_liveresponse.exceptions import LiveResponseError
        from airflow_provider_liveresponse.models import MachineAction

        if not event or event.get("status") not in ("success", "error", "timeout"):
            raise LiveResponseError(f"Task {self.task_id}: the trigger sent an unexpected event {event!r}")
        self.action_id = event.get("action_id")
        if event["status"] == "timeout":
            raise TimeoutError(event.get("message"))
        if event.get("action") is None:
            raise LiveResponseError(event.get("message"))
        action = MachineAction.model_validate(event["action"])
        return self._finish(self._hook(), action)

    def _finish(self, hook: LiveResponseHook, action: MachineAction) -> Any:
        from airflow_provider_liveresponse.exceptions import LiveResponseError
        from airflow_provider_liveresponse.models import describe_outcome

        status, message = describe_outcome(action)
        if status == "success":
            self.log.info("%s", message)
            return action.summary()
        details = self._script_failures(hook, action)
        raise LiveResponseError(". ".join([message, *details]))

    def _script_failures(self, hook: LiveResponseHook, action: MachineAction) -> list[str]:
        """Exit codes and first error lines of the action's RunScript transcripts (for the failure message)."""
        lines = []
        for command in action.commands:
            if command.type != "RunScript" or str(command.command_status) != "Completed":
                continue
            try:
                transcript = hook.get_script_transcript(action.id, command.index)
            except Exception as exc:  # the message is still useful without the transcript
                lines.append(f"transcript of command {command.index} unavailable ({type(exc).__name__})")
                continue
            if transcript.exit_code not in (0, None):
                first_error = (transcript.script_errors.strip().splitlines() or [""])[0][:300]
                lines.append(
                    f"script {command.command.target} (command {command.index}) exited {transcript.exit_code}"
                    + (f": {first_error}" if first_error else "")
                )
        return lines

    def on_kill(self) -> None:
        """Cancel the MDE action when the task is killed (``cancel_on_kill``)."""
        if not (self.cancel_on_kill and self.action_id):
            return
        self.log.info("Task killed: cancelling MDE action %s", self.action_id)
        self._hook().cancel_machine_action(self.action_id, f"Airflow task {self.task_id} was killed")
