"""The "MDE action" extra link: the portal URL of an action, stored with the task instance."""

from __future__ import annotations

from typing import Any
from unittest import mock

from airflow_provider_liveresponse.constants import PORTAL_ACTION_URL
from airflow_provider_liveresponse.links import MachineActionLink

ACTION_ID = "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10"


class _TaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_the_link_opens_the_action_in_the_defender_portal() -> None:
    assert MachineActionLink.url_for(ACTION_ID) == PORTAL_ACTION_URL.format(action_id=ACTION_ID)
    assert MachineActionLink.url_for(ACTION_ID).startswith("https://security.microsoft.com/")
    assert MachineActionLink.url_for(ACTION_ID).endswith(f"actionId={ACTION_ID}")


def test_the_button_is_named_mde_action() -> None:
    assert MachineActionLink.name == "MDE action"


def test_persist_stores_the_url_under_the_links_xcom_key() -> None:
    ti = _TaskInstance()
    MachineActionLink.persist({"ti": ti}, ACTION_ID)  # type: ignore[arg-type]
    assert ti.pushed == {MachineActionLink().xcom_key: MachineActionLink.url_for(ACTION_ID)}


def test_get_link_reads_the_action_id_from_xcom() -> None:
    from airflow.providers.common.compat.sdk import XCom

    with mock.patch.object(XCom, "get_value", return_value=ACTION_ID) as get_value:
        url = MachineActionLink().get_link(mock.Mock(), ti_key="key")
    assert url == MachineActionLink.url_for(ACTION_ID)
    get_value.assert_called_once_with(ti_key="key", key="action_id")


def test_get_link_is_empty_before_an_action_exists() -> None:
    from airflow.providers.common.compat.sdk import XCom

    with mock.patch.object(XCom, "get_value", return_value=None):
        assert MachineActionLink().get_link(mock.Mock(), ti_key="key") == ""
