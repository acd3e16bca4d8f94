"""MachineActionSensor: waits for an MDE machine action to end (poke, reschedule or deferrable)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.constants import DEFAULT_CONN_ID
from airflow_provider_liveresponse.operators.base import (
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    LiveResponseHookMixin,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_provider_liveresponse.models import MachineAction


def poll_interval_of(poll_interval: Any, poke_interval: Any) -> float:
    """The sensor's interval in seconds, from ``poll_interval`` (the provider's name) or ``poke_interval``
    (BaseSensorOperator's), never both."""
    from airflow_provider_liveresponse.exceptions import LiveResponseConfigError

    if poll_interval is not None and poke_interval is not None:
        raise LiveResponseConfigError(
            f"give poll_interval or poke_interval, not both (got poll_interval={poll_interval!r}, "
            f"poke_interval={poke_interval!r}; poke_interval may come from the DAG's default_args): they are one "
            "setting, the seconds between status reads"
        )
    if poke_interval is not None:
        return validation.duration(poke_interval, "poke_interval")
    return validation.duration(DEFAULT_POLL_INTERVAL if poll_interval is None else poll_interval, "poll_interval")


class MachineActionSensor(BaseSensorOperator, LiveResponseHookMixin):
    """Wait for a machine action to end: succeed on Succeeded, fail clearly on Failed, TimeOut or Cancelled.

    Returns the final action's summary through XCom. A failed action is described as LiveResponseOperator
    describes it, a RunScript's exit code and first error line included.

    :param action_id: the machine action (templated; typically ``LiveResponseOperator``'s XCom ``action_id``).
    :param mde_conn_id: the ``mde_live_response`` connection.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between status reads (default 30); ``poke_interval``, BaseSensorOperator's name
        for it, is accepted too (give one of them).
    :param timeout: how long to wait for the action to end (default: MDE's 3-day queue plus an hour).
    :param max_retry_wait: seconds one API call may wait out 429s and transient errors.
    """

    template_fields: Sequence[str] = ("action_id",)

    def __init__(
        self,
        *,
        action_id: str,
        mde_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta | None = None,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        max_retry_wait: float | timedelta = DEFAULT_MAX_RETRY_WAIT,
        poke_interval: float | timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        interval = poll_interval_of(poll_interval, poke_interval)
        seconds = validation.duration(timeout, "timeout")
        super().__init__(poke_interval=interval, timeout=seconds, **kwargs)
        self.action_id = action_id
        self.poll_interval = interval
        self.deferrable = validation.flag(deferrable, "deferrable")
        self._set_connection(mde_conn_id, max_retry_wait)

    def _read(self) -> MachineAction:
        from airflow_provider_liveresponse.exceptions import LiveResponseConfigError

        try:
            action_id = validation.action_id(self.action_id)
        except LiveResponseConfigError as exc:
            raise LiveResponseConfigError(f"Task {self.task_id}: {exc}") from None
        return self._hook().get_machine_action(action_id)

    def _done(self, action: MachineAction) -> dict[str, Any]:
        from airflow_provider_liveresponse.outcome import finish

        return finish(self._hook(), action, self.log)

    def poke(self, context: Context) -> PokeReturnValue | bool:
        action = self._read()
        if not action.is_terminal:
            self.log.info("Action %s on machine %s is %s", action.id, action.machine_id, action.status)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._done(action))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        action = self._read()
        if action.is_terminal:
            return self._done(action)
        from airflow_provider_liveresponse.triggers.machine_action import MachineActionTrigger

        self.defer(
            trigger=MachineActionTrigger(
                action.id, self.mde_conn_id, self.poll_interval, end_time=time.time() + float(self.timeout)
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 600),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Back from the trigger: the same completion path as LiveResponseOperator's."""
        from airflow_provider_liveresponse.outcome import action_from_event

        return self._done(action_from_event(event, self.task_id))
