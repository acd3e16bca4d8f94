"""A stand-in for the triggerer's supervisor channel (``task_runner.SUPERVISOR_COMMS``) for on_kill's tests.

It answers ``GetTaskStates`` with the Task SDK's own ``TaskStatesResult`` (a triggerer's supervisor and the
Execution API behind it cannot run inside a unit test) and records what it was asked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

RUN_ID = "manual__2026-12-02T03:00:00+00:00"


@dataclass
class TaskInstance:
    """The fields of the ``TaskInstanceDTO`` the triggerer sets on a trigger that the check reads."""

    dag_id: str = "collect_evidence"
    run_id: str = RUN_ID
    task_id: str = "collect"
    map_index: int = -1


class Supervisor:
    """Stands in for the triggerer's supervisor channel: answers ``GetTaskStates`` with ``states``, records asks."""

    def __init__(self, states: dict[str, str | None] | None = None, *, answer: Any = None, hang: bool = False):
        self.states = states or {}
        self.answer = answer
        self.hang = hang
        self.asked: list[Any] = []

    async def asend(self, msg: Any) -> Any:
        from airflow.sdk.execution_time.comms import GetTaskStates, TaskStatesResult

        if not isinstance(msg, GetTaskStates):
            return None  # MaskSecret: the hook registers the token with the masker, as in a real triggerer
        self.asked.append(msg)
        if self.hang:
            await asyncio.sleep(3600)
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer is not None:
            return self.answer
        return TaskStatesResult(task_states={RUN_ID: dict(self.states)})


def install(monkeypatch: pytest.MonkeyPatch, channel: Supervisor | None) -> Supervisor | None:
    """Make ``channel`` the process's ``SUPERVISOR_COMMS``, as the triggerer does (undone after the test)."""
    from airflow.sdk.execution_time import task_runner

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", channel, raising=False)
    return channel
