"""Whether a trigger's ``on_kill`` follows a user's kill, or a reassignment of the trigger to another triggerer.

Airflow 3.3 calls ``BaseTrigger.on_kill`` when a trigger disappears from its triggerer's assignment list. A
user's mark failed / success or clear does that (the task instance leaves ``deferred`` and the trigger row is
deleted), but so does a reassignment: when a triggerer's heartbeat lapses past ``[triggerer]
triggerer_health_check_threshold`` (a GC pause, a stopped container, a partition), another triggerer takes its
triggers, and when the first one comes back it kills them as if a user had (apache/airflow#73454). The task
instance is then still ``deferred``, waiting on the same trigger in the other triggerer.

So a kill counts as the user's only when the task instance is confirmed to be out of ``deferred``. The state is
read through the Task SDK's supervisor channel (``GetTaskStates``, answered by the triggerer from the Execution
API on Airflow 3.1 and 3.3): the trigger runner may not touch the metadata database (its ORM is blocked), and
no Task SDK message carries a task instance's trigger id, so the id is not read. It is not needed: a task
instance that is ``deferred`` is left alone whichever trigger it waits on (its own one, moved to another
triggerer, or a new try's, which reattaches to the same action), and one that is not deferred waits on no trigger
(Airflow clears ``trigger_id`` of every task instance that left ``deferred``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

#: Seconds the state lookup may take (Airflow gives ``on_kill`` 30 s in all, ``[triggerer] on_kill_timeout``).
LOOKUP_TIMEOUT = 20.0
#: Seconds the once-per-process warm-up lookup may take.
WARM_UP_TIMEOUT = 120.0
#: The warm-up task of this process (kept so that it is not garbage-collected while it runs).
_warm_up: asyncio.Task[None] | None = None


class TaskInstanceRef(Protocol):
    """What the triggerer sets as ``trigger.task_instance`` (a ``TaskInstanceDTO`` or a runtime task instance)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int


@dataclass(frozen=True)
class KillVerdict:
    """The answer: ``confirmed`` when the task instance left ``deferred``; ``reason`` says what was found."""

    confirmed: bool
    reason: str
    #: The task instance's state as read ("none" for a cleared one), or None when it could not be read.
    state: str | None = None


def describe_task(ti: TaskInstanceRef) -> str:
    """``dag.task[map_index] in run`` for log lines."""
    index = f"[{ti.map_index}]" if ti.map_index >= 0 else ""
    return f"{ti.dag_id}.{ti.task_id}{index} in run {ti.run_id}"


def state_key(ti: TaskInstanceRef) -> str:
    """The key of the task instance in a ``GetTaskStates`` answer (Airflow appends ``_<map index>`` if mapped)."""
    return ti.task_id if ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"


async def read_state(ti: TaskInstanceRef, comms: Any = None, lookup_seconds: float = LOOKUP_TIMEOUT) -> str:
    """The task instance's state through the Task SDK (``"none"`` when it has none, e.g. cleared).

    ``comms`` defaults to the process's supervisor channel (``task_runner.SUPERVISOR_COMMS``, which the triggerer
    sets). Raises :class:`LookupError` when there is no channel, the answer is not task states, or the task
    instance is not in it; :class:`TimeoutError` past ``lookup_seconds``; whatever the channel raises otherwise.
    """
    from airflow.sdk.execution_time.comms import GetTaskStates, TaskStatesResult

    if comms is None:
        from airflow.sdk.execution_time import task_runner

        comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None or not hasattr(comms, "asend"):
        raise LookupError("no Task SDK supervisor channel in this process")
    request = GetTaskStates(dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index)
    answer = await asyncio.wait_for(comms.asend(request), timeout=lookup_seconds)
    if not isinstance(answer, TaskStatesResult):
        raise LookupError(f"the supervisor answered {type(answer).__name__}, not task states")
    states = answer.task_states.get(ti.run_id) or {}
    key = state_key(ti)
    if key not in states:
        raise LookupError("the task instance is not in Airflow's answer (its run may have been deleted)")
    state = states[key]
    return "none" if state is None else str(getattr(state, "value", state))


def warm_up(ti: TaskInstanceRef | None, log: Any) -> None:
    """Once per triggerer process, on Airflow 3.3+: read a task instance's state in the background.

    The triggerer's supervisor answers Task SDK requests through an in-process Execution API that it builds on
    the first request; on a busy machine that took 30 s, Airflow's whole budget for ``on_kill``. Paying it when
    the first trigger starts, with nothing at stake, keeps the check inside that budget when a kill comes. It
    also says in the first trigger's log whether the check can work here. Does nothing on Airflow 3.1 (whose
    triggers have no ``on_kill``) or without a task instance.
    """
    global _warm_up
    from airflow.triggers.base import BaseTrigger

    if _warm_up is not None or ti is None or not hasattr(BaseTrigger, "on_kill"):
        return

    async def lookup() -> None:
        try:
            state = await read_state(ti, lookup_seconds=WARM_UP_TIMEOUT)
        except Exception as exc:  # only a log line: on_kill reads again and decides then
            log.warning("This triggerer cannot read task instance states (%r); on_kill will not cancel actions", exc)
        else:
            log.info("Task instance states are readable here (%s is %s): on_kill checks them", describe_task(ti), state)

    _warm_up = asyncio.get_running_loop().create_task(lookup(), name="liveresponse-kill-check-warm-up")


async def judge_kill(
    ti: TaskInstanceRef | None, comms: Any = None, lookup_seconds: float = LOOKUP_TIMEOUT
) -> KillVerdict:
    """Whether ``on_kill`` follows a user's kill: the task instance is confirmed out of ``deferred``."""
    if ti is None:
        return KillVerdict(False, "the trigger was not given its task instance, so the kill cannot be confirmed")
    try:
        state = await read_state(ti, comms, lookup_seconds)
    except Exception as exc:  # any failure to read leaves the action running
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return KillVerdict(False, f"the state of {describe_task(ti)} could not be read ({detail})")
    if state == "deferred":
        return KillVerdict(
            False,
            f"{describe_task(ti)} is still deferred (its trigger was most likely reassigned to another triggerer "
            "after this one missed its heartbeats, and is still watching the action there)",
            state,
        )
    return KillVerdict(True, f"{describe_task(ti)} left the deferral (it is now {state})", state)
