"""LiveResponseOperator: run PutFile / RunScript / GetFile on a device through MDE, exactly once.

Submits on the worker, pushes the action id to XCom at once (key ``action_id``), then waits by polling or by
deferring to :class:`~airflow_provider_liveresponse.triggers.machine_action.MachineActionTrigger`. A retry of
the task, or a worker that died after submitting, reattaches to the action already created: each submission
carries a marker unique to the DAG run, task and map index in its comment, looked up before submitting
(:meth:`~airflow_provider_liveresponse.hooks.action_workflow.ActionWorkflowMixin.submit_or_reattach`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseOperator

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.constants import DEFAULT_CONN_ID
from airflow_provider_liveresponse.links import MachineActionLink
from airflow_provider_liveresponse.operators.base import (
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    LiveResponseHookMixin,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_provider_liveresponse.exceptions import LiveResponseApiError
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import Command, MachineAction

#: The task state store key (Airflow 3.3+) holding the action id this task submitted.
STATE_STORE_KEY = "mde_action_id"
#: Seconds a deferral for a 429 lasts at least (see ``throttle_wait_in_worker``).
MIN_THROTTLE_DEFERRAL = 15.0
#: Seconds a deferral for a 429 lasts when MDE sends no Retry-After.
THROTTLE_DEFERRAL_WITHOUT_RETRY_AFTER = 60.0
#: How much further back than its timeout a task looks for the actions of its earlier tries.
MARKER_LOOKBACK_MARGIN = 86400.0


@dataclass
class _Deadlines:
    """UNIX times by which the task must end and, once it waits for a busy device, by which the device must be
    free; carried through deferrals in ``resume_submit``'s kwargs."""

    task: float
    busy: float | None = None


class LiveResponseOperator(BaseOperator, LiveResponseHookMixin):
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
        poll_interval: float | timedelta = DEFAULT_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        mde_conn_id: str = DEFAULT_CONN_ID,
        max_retry_wait: float | timedelta = DEFAULT_MAX_RETRY_WAIT,
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
        self.wait_for_completion = validation.flag(wait_for_completion, "wait_for_completion")
        self.poll_interval = validation.duration(poll_interval, "poll_interval")
        self.timeout = validation.duration(timeout, "timeout")
        self.deferrable = validation.flag(deferrable, "deferrable")
        self.cancel_on_kill = validation.flag(cancel_on_kill, "cancel_on_kill")
        self._set_connection(mde_conn_id, max_retry_wait)
        self.busy_timeout = validation.duration(busy_timeout, "busy_timeout")
        self.cancel_stale_after = validation.optional_duration(cancel_stale_after, "cancel_stale_after")
        self.throttle_wait_in_worker = validation.duration(
            throttle_wait_in_worker, "throttle_wait_in_worker", zero_allowed=True
        )
        self.action_id: str | None = None

    # -- execute: validate, submit or reattach, record, wait or defer ---------------------------------------

    def execute(self, context: Context) -> Any:
        commands, comment = self._validated(context)
        return self._submit_and_wait(context, commands, comment, _Deadlines(time.time() + self.timeout))

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
        commands, comment = self._validated(context)
        deadlines = _Deadlines(deadline or time.time() + self.timeout, busy_deadline)
        return self._submit_and_wait(context, commands, comment, deadlines)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Back from the trigger: succeed with the action's summary, or fail with a clear message."""
        from airflow_provider_liveresponse.outcome import action_from_event, finish

        if isinstance(event, dict) and isinstance(event.get("action_id"), str):
            self.action_id = event["action_id"]
        return finish(self._hook(), action_from_event(event, self.task_id), self.log)

    def on_kill(self) -> None:
        """Cancel the MDE action when the task is killed (``cancel_on_kill``)."""
        if not (self.cancel_on_kill and self.action_id):
            return
        self.log.info("Task killed: cancelling MDE action %s", self.action_id)
        self._hook().cancel_machine_action(self.action_id, f"Airflow task {self.task_id} was killed")

    @staticmethod
    def marker(context: Context) -> str:
        """The submission marker: unique per DAG, run, task and map index, stable across tries."""
        from airflow_provider_liveresponse.markers import marker_for_context

        return marker_for_context(context)

    def _submit_and_wait(self, context: Context, commands: list[Command], comment: str, deadlines: _Deadlines) -> Any:
        action = self._submit_when_free(context, commands, comment, deadlines)
        self._record(context, action)
        if not self.wait_for_completion:
            return action.summary()
        return self._wait(action, deadlines.task)

    # -- validate -------------------------------------------------------------------------------------------

    def _validated(self, context: Context) -> tuple[list[Command], str]:
        """The rendered parameters, checked before any API call; errors name the field and the fix."""
        from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
        from airflow_provider_liveresponse.models import parse_commands

        try:
            parsed = parse_commands(self._commands_as_list())
            machine_id = None if self.machine_id in (None, "") else validation.machine_id(self.machine_id)
            host = self.computer_dns_name
            if host not in (None, ""):
                host = validation.text(host, "computer_dns_name", hint="the device's full DNS name")
            if (machine_id is None) == (host in (None, "")):
                raise LiveResponseConfigError(
                    "give exactly one of machine_id (the 40-hex device id) or computer_dns_name (the host name); "
                    f"got machine_id={self.machine_id!r}, computer_dns_name={self.computer_dns_name!r}"
                )
            comment = validation.optional_text(self.comment, "comment", empty_allowed=True, hint="the audit comment")
        except ValueError as exc:  # LiveResponseConfigError and its TypeError subclass keep their class
            kind = type(exc) if isinstance(exc, LiveResponseConfigError) else LiveResponseConfigError
            raise kind(f"Task {self.task_id}: {exc}") from None
        return parsed, comment or self._default_comment(context)

    def _commands_as_list(self) -> Any:
        """``commands`` as rendered: a list, or a string holding a JSON list (a template's output)."""
        from airflow_provider_liveresponse.exceptions import LiveResponseConfigError

        if not isinstance(self.commands, str):
            return self.commands
        import json

        try:
            return json.loads(self.commands)
        except ValueError:
            raise LiveResponseConfigError("commands rendered to a string that is not a JSON list of commands") from None

    def _default_comment(self, context: Context) -> str:
        ti = context["ti"]
        index = getattr(ti, "map_index", -1)
        mapped = f"[{index}]" if index is not None and index >= 0 else ""
        return f"Airflow {ti.dag_id}.{ti.task_id}{mapped} run {ti.run_id}"

    # -- submit or reattach: one loop over throttling and busy devices ---------------------------------------

    def _submit_when_free(
        self, context: Context, commands: list[Command], comment: str, deadlines: _Deadlines
    ) -> MachineAction:
        """Reattach or submit. A throttled deferrable task defers; a busy device is waited for (deferring when
        deferrable), its stale session cancelled when told to, and the submit tried again."""
        from airflow_provider_liveresponse.exceptions import LiveResponseApiError

        # A deferrable task gives a throttled call to the triggerer (after throttle_wait_in_worker, if set).
        hook = self._hook(max_throttle_wait=self.throttle_wait_in_worker if self.deferrable else None)
        while True:
            try:
                return self._reattach_from_state_store(context, hook) or self._submit_or_reattach(
                    context, hook, commands, comment
                )
            except LiveResponseApiError as exc:
                if exc.status == 429 and self.deferrable:
                    self._defer_for_throttle(exc.retry_after, deadlines)
                if exc.code != "ActiveRequestAlreadyExists" or not exc.machine_id:
                    raise
                self._wait_for_busy_device(hook, exc, deadlines)

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
        action = hook.reattach(action_id)
        if action is not None:
            self.log.info(
                "Reattaching to action %s on machine %s (%s), recorded by an earlier try of this task; not running "
                "the commands again",
                action.id,
                action.machine_id,
                action.status,
            )
        return action

    def _submit_or_reattach(
        self, context: Context, hook: LiveResponseHook, commands: list[Command], comment: str
    ) -> MachineAction:
        return hook.submit_or_reattach(
            self._resolve_machine(hook),
            commands,
            comment,
            marker=self.marker(context),
            try_number=getattr(context["ti"], "try_number", None) or 1,
            lookback=self.timeout + MARKER_LOOKBACK_MARGIN,
        )

    def _resolve_machine(self, hook: LiveResponseHook) -> str:
        from airflow_provider_liveresponse.exceptions import LiveResponseConfigError

        if self.machine_id:
            return validation.machine_id(self.machine_id)
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

    def _defer_for_throttle(self, retry_after: float | None, deadlines: _Deadlines) -> NoReturn:
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

        # A deferral that ends within seconds meets Airflow's defer race (apache/airflow#67287): the scheduler
        # fails the try when the trigger fires before it has processed the deferring worker's exit.
        delay = max(retry_after or THROTTLE_DEFERRAL_WITHOUT_RETRY_AFTER, self.throttle_wait_in_worker)
        delay = max(delay, MIN_THROTTLE_DEFERRAL)
        if time.time() + delay >= deadlines.task:
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
            kwargs={"deadline": deadlines.task, "busy_deadline": deadlines.busy},
        )

    def _wait_for_busy_device(
        self, hook: LiveResponseHook, refusal: LiveResponseApiError, deadlines: _Deadlines
    ) -> None:
        """Return once the submit is worth trying again: the blocking session ended (or was cancelled as stale);
        defer while it runs when deferrable; fail past ``busy_timeout``."""
        assert refusal.machine_id is not None
        blocking = hook.blocking_session(refusal.machine_id)
        if blocking is None:
            return  # it ended between the refusal and the look-up: try again at once
        if self._is_stale(blocking):
            hook.cancel_machine_action(blocking.id, f"Stale session cancelled by Airflow task {self.task_id}")
            return
        if deadlines.busy is None:
            deadlines.busy = min(deadlines.task, time.time() + self.busy_timeout)
        if time.time() >= deadlines.busy:
            raise self._still_busy(refusal.machine_id, blocking) from refusal
        self.log.info(
            "Machine %s is busy with action %s (%s, requested by %s); waiting up to %.0f s for it to end "
            "before submitting",
            refusal.machine_id,
            blocking.id,
            blocking.status,
            blocking.requestor,
            deadlines.busy - time.time(),
        )
        if self.deferrable:
            from airflow_provider_liveresponse.triggers.machine_action import MachineActionTrigger

            self.defer(
                trigger=MachineActionTrigger(
                    blocking.id, self.mde_conn_id, self.poll_interval, end_time=deadlines.busy
                ),
                method_name="resume_submit",
                kwargs={"deadline": deadlines.task, "busy_deadline": deadlines.busy},
            )
        with contextlib.suppress(TimeoutError):  # past busy_deadline, the next refusal fails the task
            hook.wait_for_action(
                blocking.id, poll_interval=self.poll_interval, deadline=deadlines.busy, last_seen=blocking
            )

    def _is_stale(self, blocking: MachineAction) -> bool:
        """Whether ``blocking`` is a Pending session older than ``cancel_stale_after`` (logged: it is cancelled)."""
        if self.cancel_stale_after is None or str(blocking.status) != "Pending" or not blocking.creation_date_time_utc:
            return False
        age = (datetime.now(UTC) - blocking.creation_date_time_utc).total_seconds()
        if age <= self.cancel_stale_after:
            return False
        self.log.warning(
            "Cancelling stale Pending action %s on machine %s (%.0f s old, older than cancel_stale_after), "
            "requested by %s: %s",
            blocking.id,
            blocking.machine_id,
            age,
            blocking.requestor,
            blocking.requestor_comment,
        )
        return True

    def _still_busy(self, machine_id: str, blocking: MachineAction) -> LiveResponseApiError:
        from airflow_provider_liveresponse.exceptions import LiveResponseApiError

        return LiveResponseApiError(
            f"Machine {machine_id} stayed busy with another live-response session, action {blocking.id} "
            f"({blocking.status}, requested by {blocking.requestor}: {blocking.requestor_comment!r}), past "
            f"busy_timeout ({self.busy_timeout:.0f} s); nothing was submitted. What to do: wait for it, "
            "cancel it in the Defender portal, or set cancel_stale_after to let the task cancel stale "
            "Pending sessions",
            machine_id=machine_id,
            action_id=blocking.id,
            code="ActiveRequestAlreadyExists",
        )

    # -- record, then wait or defer -------------------------------------------------------------------------

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

    def _wait(self, action: MachineAction, deadline: float) -> Any:
        from airflow_provider_liveresponse.outcome import finish

        hook = self._hook()
        if not action.is_terminal and self.deferrable:
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
        if not action.is_terminal:
            action = hook.wait_for_action(
                action.id, poll_interval=self.poll_interval, deadline=deadline, last_seen=action
            )
        return finish(hook, action, self.log)
