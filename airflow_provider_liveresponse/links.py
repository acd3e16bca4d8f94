"""Operator extra link to a machine action in the Microsoft Defender portal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

from airflow_provider_liveresponse.constants import PORTAL_ACTION_URL

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context


class MachineActionLink(BaseOperatorLink):
    """ "MDE action" button: opens the action in the Defender portal's action center."""

    name = "MDE action"

    @classmethod
    def url_for(cls, action_id: str) -> str:
        """The portal URL of ``action_id``."""
        return PORTAL_ACTION_URL.format(action_id=action_id)

    @classmethod
    def persist(cls, context: Context, action_id: str) -> None:
        """Store the link with the task instance, where Airflow 3's UI reads it."""
        context["ti"].xcom_push(key=cls().xcom_key, value=cls.url_for(action_id))

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:  # TaskInstanceKey moved between 3.1 and 3.3
        from airflow.providers.common.compat.sdk import XCom

        action_id: Any = XCom.get_value(ti_key=ti_key, key="action_id")
        return self.url_for(action_id) if action_id else ""
