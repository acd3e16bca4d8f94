"""MachineActionTrigger: serialization, events, and coalesced polling of many waiting actions."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.auth import reset_token_providers
from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.models import RunScript
from airflow_provider_liveresponse.simulator.fleet import device_id
from airflow_provider_liveresponse.triggers.machine_action import MachineActionTrigger

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator import Simulator


@pytest.fixture
def conn(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_MDE_TRIG", simulator.connection_json())
    reset_token_providers()
    return "mde_trig"


def test_serializes_ids_interval_and_deadline_only() -> None:
    trigger = MachineActionTrigger("7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10", "mde_x", 15.0, end_time=1_900_000_000.0)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_liveresponse.triggers.machine_action.MachineActionTrigger"
    assert kwargs == {
        "action_id": "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10",
        "mde_conn_id": "mde_x",
        "poll_interval": 15.0,
        "end_time": 1_900_000_000.0,
        "cancel_on_kill": False,
    }
    json.dumps(kwargs)
    again = MachineActionTrigger(**kwargs)  # a triggerer restart re-creates it from this
    assert again.serialize() == (path, kwargs)


async def test_fires_success_with_the_action(simulator: Simulator, conn: str) -> None:
    hook = LiveResponseHook(conn)
    action = hook.run_live_response(device_id("ws-0001.contoso.local"), [RunScript("triage.ps1")], "trigger")
    trigger = MachineActionTrigger(action.id, conn, poll_interval=0.1, end_time=time.time() + 60)
    event = await asyncio.wait_for(anext(trigger.run()), timeout=30)
    assert event.payload["status"] == "success"
    assert event.payload["action_id"] == action.id
    assert event.payload["action"]["status"] == "Succeeded"
    assert "succeeded" in event.payload["message"]


async def test_fires_error_for_a_failed_action(simulator: Simulator, conn: str) -> None:
    hook = LiveResponseHook(conn)
    action = hook.run_live_response(device_id("ws-0002.contoso.local"), [RunScript("fail.ps1")], "trigger")
    event = await asyncio.wait_for(anext(MachineActionTrigger(action.id, conn, 0.1).run()), timeout=30)
    assert event.payload["status"] == "error"
    assert "fail.ps1" in event.payload["message"]


async def test_fires_timeout_at_the_deadline(simulator: Simulator, conn: str) -> None:
    hook = LiveResponseHook(conn)
    action = hook.run_live_response(device_id("laptop-0003.contoso.local"), [RunScript("triage.ps1")], "t")
    trigger = MachineActionTrigger(action.id, conn, poll_interval=0.1, end_time=time.time() + 0.5)
    event = await asyncio.wait_for(anext(trigger.run()), timeout=30)
    assert event.payload["status"] == "timeout"
    assert action.id in event.payload["message"]


async def test_an_unknown_action_is_an_error_not_a_hang(simulator: Simulator, conn: str) -> None:
    trigger = MachineActionTrigger("00000000-0000-0000-0000-000000000000", conn, poll_interval=0.05)
    event = await asyncio.wait_for(anext(trigger.run()), timeout=30)
    assert event.payload["status"] == "error"
    assert "was not found" in event.payload["message"]


async def test_200_waiting_actions_share_one_listing_call_per_interval(simulator: Simulator, conn: str) -> None:
    simulator.state.set_limits(run_calls_per_minute=10_000, concurrent_sessions=10_000)
    for n in range(1, 201):
        simulator.state.add_device(f"bulk-{n:04d}.contoso.local")
    hook = LiveResponseHook(conn)
    ids = [
        hook.run_live_response(
            device_id(f"bulk-{n:04d}.contoso.local"), [RunScript("sleep.ps1", args="120")], "bulk"
        ).id
        for n in range(1, 201)
    ]
    before = dict(simulator.state.counters)
    triggers = [MachineActionTrigger(a, conn, poll_interval=0.25, end_time=time.time() + 120) for a in ids]
    events = await asyncio.wait_for(asyncio.gather(*(anext(t.run()) for t in triggers)), timeout=120)
    assert {e.payload["status"] for e in events} == {"success"}
    list_calls = simulator.state.counters["calls:list_actions"] - before.get("calls:list_actions", 0)
    get_calls = simulator.state.counters["calls:get_action"] - before.get("calls:get_action", 0)
    assert get_calls == 0
    # Each poll lists 200 ids in two pages of 100; the actions take ~2 real seconds at speed 60, so a few polls.
    assert list_calls % 2 == 0
    assert 2 <= list_calls <= 2 * 30, list_calls
