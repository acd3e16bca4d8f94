"""MachineActionTrigger: waits in the triggerer for a machine action to end.

It serializes ids, the connection id, the interval and a deadline only (never a token or a link), polls
through the process-wide coalesced poller, and sends one uniform event::

    {"status": "success" | "error" | "timeout", "message": str, "action_id": str, "end_time": float | None,
     "action": dict | None}
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.constants import DEFAULT_CONN_ID
from airflow_provider_liveresponse.hooks.action_workflow import PROGRESS_EVERY
from airflow_provider_liveresponse.models import MachineAction, describe_outcome

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook

#: Seconds ``on_kill`` may spend reading the action (for its device and status) before it decides.
KILL_READ_TIMEOUT = 10.0


class MachineActionTrigger(BaseTrigger):
    """Fires when a machine action ends (or its deadline passes).

    :param action_id: the machine action to wait for.
    :param mde_conn_id: the ``mde_live_response`` connection.
    :param poll_interval: seconds between polls (shared with other triggers of the same connection).
    :param end_time: a UNIX timestamp after which the trigger reports ``timeout``; None waits forever.
    :param cancel_on_kill: on Airflow 3.3+, cancel the action in MDE when a user kills the deferred task
        (mark failed / success, clear); never on a triggerer restart.

    Every argument is checked here, so a bad one fails in the task that defers, naming it. ``serialize()``
    keeps the keys ``action_id``, ``mde_conn_id``, ``poll_interval``, ``end_time`` and ``cancel_on_kill``: a
    trigger row written by an earlier release still loads.
    """

    def __init__(
        self,
        action_id: str,
        mde_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.action_id = validation.action_id(action_id)
        self.mde_conn_id = validation.conn_id(mde_conn_id)
        self.poll_interval = validation.duration(poll_interval, "poll_interval")
        self.end_time = validation.optional_timestamp(end_time, "end_time")
        self.cancel_on_kill = validation.flag(cancel_on_kill, "cancel_on_kill")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "action_id": self.action_id,
                "mde_conn_id": self.mde_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _event(self, status: str, message: str, action: MachineAction | None) -> TriggerEvent:
        return TriggerEvent(  # type: ignore[no-untyped-call,unused-ignore]
            {
                "status": status,
                "message": message,
                "action_id": self.action_id,
                "end_time": self.end_time,
                "action": action.model_dump(mode="json", by_alias=True) if action is not None else None,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
        from airflow_provider_liveresponse.triggers.action_poller import poller_for
        from airflow_provider_liveresponse.triggers.kill_check import warm_up

        if self.cancel_on_kill:  # only then does on_kill need the state
            warm_up(self.task_instance, self.log)
        poller = poller_for(self.mde_conn_id, LiveResponseAsyncHook)
        token, queue = poller.register(self.action_id, self.poll_interval)
        started = last_log = time.monotonic()
        last_status: str | None = None
        try:
            while True:
                remaining = None if self.end_time is None else self.end_time - time.time()
                if remaining is not None and remaining <= 0:
                    yield self._event(
                        "timeout",
                        f"Gave up waiting for action {self.action_id} after the task's timeout; the action may "
                        "still be running in MDE: cancel it in the Defender portal or rerun the task to reattach",
                        None,
                    )
                    return
                try:
                    update = await asyncio.wait_for(queue.get(), timeout=remaining)
                except TimeoutError:
                    continue
                if isinstance(update, BaseException):
                    yield self._event("error", f"Waiting for action {self.action_id} failed: {update}", None)
                    return
                now = time.monotonic()
                if str(update.status) != last_status or now - last_log >= PROGRESS_EVERY:
                    last_status, last_log = str(update.status), now
                    self.log.info("Action %s is %s after %.0f s", self.action_id, update.status, now - started)
                if update.is_terminal:
                    status, message = describe_outcome(update)
                    yield self._event(status, message, update)
                    return
        finally:
            poller.unregister(token)

    async def on_kill(self) -> None:
        """Airflow 3.3+: the trigger was killed; cancel the action when ``cancel_on_kill`` and the kill was a user's.

        Airflow 3.3 also kills a trigger that was reassigned to another triggerer (apache/airflow#73454). The
        action is cancelled only when the task instance is confirmed out of ``deferred``
        (:func:`~airflow_provider_liveresponse.triggers.kill_check.judge_kill`); otherwise it is left running
        and the log says why, with the action, the device and what to do.
        """
        if not self.cancel_on_kill:
            return
        from airflow_provider_liveresponse.exceptions import LiveResponseError
        from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
        from airflow_provider_liveresponse.triggers.kill_check import judge_kill

        hook = LiveResponseAsyncHook(self.mde_conn_id)
        # The verdict and the action (its device and status) are read at once: on_kill has 30 s in all.
        verdict, action = await asyncio.gather(judge_kill(self.task_instance), self._current_action(hook))
        device = _device(action)
        if not verdict.confirmed:
            self.log.warning(
                "Not cancelling MDE action %s on device %s: %s. The action keeps running; cancel it in the "
                "Defender portal if the kill was yours",
                self.action_id,
                device,
                verdict.reason,
            )
            return
        if action is not None and action.is_terminal:
            self.log.info(
                "The deferred task was killed (%s); MDE action %s already ended %s, nothing to cancel",
                verdict.reason,
                self.action_id,
                action.status,
            )
            return
        self.log.info(
            "The deferred task was killed (%s): cancelling MDE action %s on device %s",
            verdict.reason,
            self.action_id,
            device,
        )
        try:
            await hook.cancel_machine_action(self.action_id, "Cancelled because its Airflow task was killed")
        except LiveResponseError as exc:
            self.log.warning(
                "Could not cancel action %s on device %s (%s); cancel it in the Defender portal if it still runs",
                self.action_id,
                device,
                exc,
            )

    async def _current_action(self, hook: LiveResponseAsyncHook) -> MachineAction | None:
        """The action as MDE has it now, for its device and status; None when it cannot be read in time."""
        from airflow_provider_liveresponse.exceptions import LiveResponseError

        try:
            return await asyncio.wait_for(hook.get_machine_action(self.action_id), timeout=KILL_READ_TIMEOUT)
        except (LiveResponseError, TimeoutError) as exc:
            self.log.info("Could not read action %s before acting on the kill (%r)", self.action_id, exc)
            return None


def _device(action: MachineAction | None) -> str:
    """``host (machine id)`` of an action, for log lines; ``unknown`` when the action could not be read."""
    if action is None or not action.machine_id:
        return "unknown (the action could not be read)"
    return f"{action.computer_dns_name or 'unknown host'} ({action.machine_id})"
