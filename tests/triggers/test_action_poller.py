"""The coalesced poller when a poll fails in an unforeseen way: its waiting triggers hear about it, none hangs."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from unittest import mock

from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
from airflow_provider_liveresponse.triggers import action_poller
from airflow_provider_liveresponse.triggers.machine_action import MachineActionTrigger

if TYPE_CHECKING:
    import pytest

ACTION_ID = "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10"


async def test_a_poll_that_raises_an_unexpected_error_fails_the_waiting_triggers_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: Any, action_ids: Any) -> Any:
        raise RuntimeError("a bug in the listing code")

    monkeypatch.setattr(action_poller, "MAX_CONSECUTIVE_FAILURES", 2)
    with mock.patch.object(LiveResponseAsyncHook, "get_machine_actions", broken):
        trigger = MachineActionTrigger(ACTION_ID, "mde_poller_failures", poll_interval=0.01)
        event = await asyncio.wait_for(anext(trigger.run()), timeout=10)
    assert event.payload["status"] == "error"
    assert "RuntimeError" in event.payload["message"]
    assert ACTION_ID in event.payload["message"]
