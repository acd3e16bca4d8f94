"""LiveResponseAsyncHook (for triggers) against the simulator: reads, batching, retries, errors."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseApiError
from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
from airflow_provider_liveresponse.models import ActionStatus, RunScript
from airflow_provider_liveresponse.simulator.fleet import device_id

if TYPE_CHECKING:
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.simulator import Simulator


def _submit(hook: LiveResponseHook, count: int) -> list[str]:
    return [
        hook.run_live_response(device_id(f"ws-{n:04d}.contoso.local"), [RunScript("triage.ps1")], "async").id
        for n in range(100, 100 + count)
    ]


async def test_reads_one_action(simulator: Simulator, conn_id: str, hook: LiveResponseHook) -> None:
    (action_id,) = _submit(hook, 1)
    async_hook = LiveResponseAsyncHook(conn_id)
    action = await async_hook.get_machine_action(action_id)
    assert action.id == action_id
    assert action.status == ActionStatus.PENDING


async def test_reads_many_actions_in_few_calls(simulator: Simulator, conn_id: str, hook: LiveResponseHook) -> None:
    simulator.state.set_limits(run_calls_per_minute=1000, concurrent_sessions=1000)
    ids = _submit(hook, 150)
    async_hook = LiveResponseAsyncHook(conn_id)
    before = simulator.state.counters["calls:list_actions"]
    found = await async_hook.get_machine_actions(ids)
    assert set(found) == set(ids)
    # 150 ids: two batches of at most 100, each one listing call
    assert simulator.state.counters["calls:list_actions"] - before == 2
    assert async_hook.calls == 2


async def test_shares_the_token_with_the_sync_hook(simulator: Simulator, conn_id: str, hook: LiveResponseHook) -> None:
    (action_id,) = _submit(hook, 1)
    await LiveResponseAsyncHook(conn_id).get_machine_action(action_id)
    assert simulator.state.counters["token_requests"] == 1


async def test_retries_429_5xx_reset_and_401(simulator: Simulator, conn_id: str, hook: LiveResponseHook) -> None:
    (action_id,) = _submit(hook, 1)
    async_hook = LiveResponseAsyncHook(conn_id)
    async_hook.retry_policy = async_hook.retry_policy.__class__(backoff_base=0.01, backoff_max=0.02)
    faults = simulator.state.faults
    faults.set("get_action", fail_next=1, status=503)
    faults.set("get_action", reset_next=1)
    faults.set("get_action", unauthorized_next=1)
    faults.set("get_action", throttle_next=1, throttle_retry_after=True)
    action = await async_hook.get_machine_action(action_id)
    assert action.id == action_id
    assert simulator.state.counters["calls:get_action"] == 5
    assert simulator.state.counters["token_requests"] == 2


async def test_a_404_fails_at_once_with_the_action_id(simulator: Simulator, conn_id: str) -> None:
    async_hook = LiveResponseAsyncHook(conn_id)
    with pytest.raises(LiveResponseApiError) as info:
        await async_hook.get_machine_action("00000000-0000-0000-0000-000000000000")
    assert info.value.status == 404
    assert "00000000-0000-0000-0000-000000000000" in str(info.value)


async def test_cancel(simulator: Simulator, conn_id: str, hook: LiveResponseHook) -> None:
    offline = device_id("laptop-0002.contoso.local")
    action = hook.run_live_response(offline, [RunScript("triage.ps1")], "to cancel")
    cancelled = await LiveResponseAsyncHook(conn_id).cancel_machine_action(action.id, "not needed")
    assert cancelled.status == ActionStatus.CANCELLED


async def test_the_event_loop_keeps_turning_while_the_hook_reads_the_connection(
    simulator: Simulator, conn_id: str, hook: LiveResponseHook
) -> None:
    (action_id,) = _submit(hook, 1)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await LiveResponseAsyncHook(conn_id).get_machine_action(action_id)
    stop.set()
    await task
    assert ticks > 1


async def test_an_error_of_a_machine_scoped_call_names_the_machine(simulator: Simulator, conn_id: str) -> None:
    machine = "f" * 40
    async_hook = LiveResponseAsyncHook(conn_id)
    with pytest.raises(LiveResponseApiError) as info:
        await async_hook._request("GET", f"api/machines/{machine}", "Reading a machine", machine_id=machine)
    assert info.value.status == 404
    assert info.value.machine_id == machine
    assert f"Machine: {machine}." in str(info.value)
