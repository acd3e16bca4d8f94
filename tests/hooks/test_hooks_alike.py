"""The sync and the async hook behave alike: every scenario runs through both against the simulator.

Each scenario arms the same faults (or the same simulator setting) before each hook's call, and the two outcomes
must be equal: the same result, or the same error type, status and message to the letter.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseError
from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
from airflow_provider_liveresponse.simulator.fleet import device_id
from airflow_provider_liveresponse.simulator.lifecycle import Command

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator import Simulator
_CORRELATION = re.compile(r"Correlation id: [^ ]+\.")


@dataclass(frozen=True)
class Scenario:
    """One behaviour: faults armed per endpoint group, hook settings, the call, and the expected outcome."""

    name: str
    call: str  # "get", "list" (two actions, by id) or "cancel"
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    hook: dict[str, Any] = field(default_factory=dict)
    #: The nextLink's base: None leaves the simulator's own https URL; "" makes links relative.
    link_base: str | None = None
    page_size: int | None = None
    ended: bool = False  # cancel an action that has already ended
    #: The HTTP status of the expected error, or None for success.
    status: int | None = None
    fragment: str = ""


SCENARIOS = [
    Scenario("429 then success", "get", {"get_action": {"throttle_next": 1, "throttle_retry_after": 0.06}}),
    Scenario(
        "429 past the budget",
        "get",
        {"get_action": {"throttle_next": 1, "throttle_retry_after": 120}},
        hook={"max_retry_wait": 0.5},
        status=429,
        fragment="longer than the retry budget (0.5 s)",
    ),
    Scenario("5xx then success", "get", {"get_action": {"fail_next": 1, "status": 503}}),
    Scenario(
        "5xx past the attempts",
        "get",
        {"get_action": {"fail_next": 5, "status": 502}},
        hook={"max_attempts": 2},
        status=502,
        fragment="after 2 attempts",
    ),
    Scenario("connection reset then success", "get", {"get_action": {"reset_next": 1}}),
    Scenario(
        "connection reset past the attempts",
        "list",
        {"list_actions": {"reset_next": 5}},
        hook={"max_attempts": 2},
        fragment="did not answer",
    ),
    Scenario("401 once then success", "get", {"get_action": {"unauthorized_next": 1}}),
    Scenario("401 twice", "get", {"get_action": {"unauthorized_next": 2}}, status=401, fragment="tenant_id"),
    Scenario("cancel of a pending action", "cancel"),
    Scenario("400 on cancel of an ended action", "cancel", ended=True),
    Scenario("paging with absolute nextLinks", "list", page_size=1),
    Scenario("paging with relative nextLinks", "list", page_size=1, link_base=""),
    Scenario(
        "nextLink to a foreign host",
        "list",
        page_size=1,
        link_base="https://attacker.invalid",
        fragment="another host (attacker.invalid",
    ),
    Scenario("non-JSON body", "get", {"get_action": {"malformed_next": 1}}, status=200, fragment="not JSON"),
]


def _actions(sim: Simulator, first: int, count: int, *, ended: bool) -> list[str]:
    """Pending actions on offline devices, made on the simulator's state directly (no API call, no token)."""
    ids = []
    for n in range(first, first + count):
        command = Command(index=0, type="RunScript", params=[{"key": "ScriptName", "value": "triage.ps1"}])
        machine = device_id(f"laptop-{n:04d}.contoso.local")
        action = sim.state.create_action(machine, [command], "alike", sim.client_id)
        if ended:
            sim.state.cancel_action(action.id, "ended before the test", sim.client_id)
        ids.append(action.id)
    return ids


def _arm(sim: Simulator, scenario: Scenario, monkeypatch: pytest.MonkeyPatch, first: int) -> list[str]:
    sim.state.faults.clear()
    ids = _actions(sim, first, 2 if scenario.call == "list" else 1, ended=scenario.ended)
    if scenario.page_size is not None:
        sim.state.set_limits(page_size=scenario.page_size)
    if scenario.link_base is not None:
        monkeypatch.setattr(sim.api, "api_url", scenario.link_base)
    for group, settings in scenario.faults.items():
        sim.state.faults.set(group, **settings)
    return ids


def _quick(hook: Any) -> Any:
    """Backoff of a millisecond: the scenarios test decisions, not waits."""
    hook.retry_policy = dataclasses.replace(hook.retry_policy, backoff_base=0.001, backoff_max=0.002)
    return hook


def _sync_outcome(conn_id: str, scenario: Scenario, ids: list[str]) -> Any:
    hook = _quick(LiveResponseHook(conn_id, sleep=lambda seconds: None, **scenario.hook))
    try:
        if scenario.call == "get":
            return ("ok", hook.get_machine_action(ids[0]).id)
        if scenario.call == "list":
            return ("ok", sorted(a.id for a in hook.list_machine_actions(action_ids=ids)))
        return ("ok", str(hook.cancel_machine_action(ids[0], "stop").status))
    except LiveResponseError as exc:
        return (type(exc).__name__, getattr(exc, "status", None), str(exc))


async def _async_outcome(conn_id: str, scenario: Scenario, ids: list[str]) -> Any:
    hook = _quick(LiveResponseAsyncHook(conn_id, **scenario.hook))
    try:
        if scenario.call == "get":
            return ("ok", (await hook.get_machine_action(ids[0])).id)
        if scenario.call == "list":
            return ("ok", sorted(await hook.get_machine_actions(ids)))
        return ("ok", str((await hook.cancel_machine_action(ids[0], "stop")).status))
    except LiveResponseError as exc:
        return (type(exc).__name__, getattr(exc, "status", None), str(exc))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_both_hooks_give_the_same_outcome(
    simulator: Simulator, conn_id: str, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_ids = _arm(simulator, scenario, monkeypatch, first=1)
    sync = _sync_outcome(conn_id, scenario, sync_ids)
    async_ids = _arm(simulator, scenario, monkeypatch, first=3)
    outcome = await _async_outcome(conn_id, scenario, async_ids)
    # Each run has fresh actions: compare with their ids replaced by their order of creation.
    assert _anonymous(outcome, async_ids) == _anonymous(sync, sync_ids)
    if scenario.status is None and not scenario.fragment:
        assert outcome[0] == "ok", outcome
    else:
        assert outcome[0] == "LiveResponseApiError", outcome
        assert outcome[1] == scenario.status
        assert scenario.fragment in outcome[2]


def _anonymous(outcome: tuple[Any, ...], ids: list[str]) -> tuple[Any, ...]:
    """``outcome`` with the action ids numbered and MDE's correlation id (new on every answer) blanked."""

    def clean(value: Any) -> Any:
        if isinstance(value, list):
            return sorted(clean(item) for item in value)
        if isinstance(value, str):
            for number, action_id in enumerate(ids):
                value = value.replace(action_id, f"<action {number}>")
            return _CORRELATION.sub("Correlation id: <id>.", value)
        return value

    return tuple(clean(value) for value in outcome)


async def test_both_hooks_log_the_same_lines_for_renewals_and_waits(
    simulator: Simulator, conn_id: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="airflow_provider_liveresponse.hooks.protocol")
    scenario = Scenario(
        "every kind of wait",
        "get",
        {"get_action": {"unauthorized_next": 1, "throttle_next": 1, "throttle_retry_after": 0.06, "fail_next": 1}},
    )
    lines = []
    for first, run in ((1, "sync"), (3, "async")):
        caplog.clear()
        ids = _arm(simulator, scenario, monkeypatch, first=first)
        if run == "sync":
            _sync_outcome(conn_id, scenario, ids)
        else:
            await _async_outcome(conn_id, scenario, ids)
        lines.append([_anonymous((record.getMessage(),), ids) for record in caplog.records])
    assert len(lines[0]) == 3
    assert lines[0] == lines[1]
