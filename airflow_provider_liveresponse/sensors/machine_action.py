"""MachineActionSensor: waits for an MDE machine action to end (poke, reschedule or deferrable)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_liveresponse.constants import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_provider_liveresponse.models import MachineAction


class MachineActionSensor(BaseSensorOperator):
    """Wait for a machine action to end: succeed on Succeeded, fail clearly on Failed, TimeOut or Cancelled.

    Returns the final action's summary through XCom.

    :param action_id: the machine action (templated; typically ``LiveResponseOperator``'s XCom ``action_id``).
    :param mde_conn_id: the ``mde_live_response`` connection.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("action_id",)

    def __init__(
        self,
        *,
        action_id: str,
        mde_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 30.0,
        timeout: float = 3 * 24 * 3600 + 3600,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.action_id = action_id
        self.mde_conn_id = mde_conn_id
        self.deferrable = deferrable

    def _read(self) -> MachineAction:
        from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook, validate_action_id

        return LiveResponseHook(self.mde_conn_id).get_machine_action(validate_action_id(self.action_id))

    def _done(self, action: MachineAction) -> dict[str, Any]:
        from airflow_provider_liveresponse.exceptions import LiveResponseError
        from airflow_provider_liveresponse.models import describe_outcome

        status, message = describe_outcome(action)
        if status != "success":
            raise LiveResponseError(message)
        self.log.info("%s", message)
        return action.summary()

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
                action.id, self.mde_conn_id, float(self.poke_interval), end_time=time.time() + float(self.timeout)
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 600),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Back from the trigger."""
        from airflow_provider_liveresponse.exceptions import LiveResponseError
        from airflow_provider_liveresponse.models import MachineAction

        if not event or event.get("status") not in ("success", "error", "timeout"):
            raise LiveResponseError(f"Task {self.task_id}: the trigger sent an unexpected event {event!r}")
        if event["status"] == "timeout":
            raise TimeoutError(event.get("message"))
        if event.get("action") is None:
            raise LiveResponseError(event.get("message"))
        return self._done(MachineAction.model_validate(event["action"]))
