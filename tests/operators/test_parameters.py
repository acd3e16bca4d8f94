"""One set of parameter names, checked one way: every duration of every task that calls MDE fails at construction
naming its field when it is NaN, infinite, negative, text or None (max_retry_wait was checked nowhere: NaN and -5
both reached MDE, and with NaN a non-deferrable task waited out 429s forever)."""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.models import RunScript
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator
from airflow_provider_liveresponse.operators.live_response_library import LiveResponseLibraryUploadOperator
from airflow_provider_liveresponse.sensors.machine_action import MachineActionSensor
from airflow_provider_liveresponse.simulator.fleet import device_id

WS1 = device_id("ws-0001.contoso.local")
ACTION_ID = "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10"
TASKS: dict[str, Any] = {
    "operator": lambda **kw: LiveResponseOperator(task_id="t", machine_id=WS1, commands=[RunScript("a.ps1")], **kw),
    "sensor": lambda **kw: MachineActionSensor(task_id="t", action_id=ACTION_ID, **kw),
    "library": lambda **kw: LiveResponseLibraryUploadOperator(task_id="t", source="/tmp/a.ps1", **kw),
}
BAD_DURATIONS = [math.nan, math.inf, -5, 0, "600", None, True]


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("value", BAD_DURATIONS, ids=repr)
def test_a_bad_max_retry_wait_fails_at_construction_naming_it(task: str, value: Any) -> None:
    with pytest.raises(LiveResponseConfigError, match="max_retry_wait"):
        TASKS[task](max_retry_wait=value)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_that_calls_mde_takes_the_same_names(task: str) -> None:
    cls = {
        "operator": LiveResponseOperator,
        "sensor": MachineActionSensor,
        "library": LiveResponseLibraryUploadOperator,
    }
    names = set(inspect.signature(cls[task]).parameters)
    assert {"mde_conn_id", "max_retry_wait"} <= names
    if task != "library":
        assert {"deferrable", "poll_interval", "timeout"} <= names


@pytest.mark.parametrize("task", sorted(TASKS))
def test_max_retry_wait_and_the_connection_reach_the_hook(task: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_liveresponse.hooks import live_response

    made: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(live_response, "LiveResponseHook", lambda conn_id, **options: made.append((conn_id, options)))
    TASKS[task](max_retry_wait=12.5, mde_conn_id="mde_x")._hook()
    assert made == [("mde_x", {"max_retry_wait": 12.5, "max_throttle_wait": None})]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("poll_interval", math.nan),
        ("timeout", -1),
        ("busy_timeout", math.inf),
        ("cancel_stale_after", "1h"),
        ("throttle_wait_in_worker", -0.5),
        ("wait_for_completion", "yes"),
        ("deferrable", 1),
        ("cancel_on_kill", None),
        ("mde_conn_id", ""),
        ("mde_conn_id", 5),
    ],
)
def test_a_bad_operator_parameter_fails_at_construction_naming_it(field: str, value: Any) -> None:
    with pytest.raises(LiveResponseConfigError, match=field):
        TASKS["operator"](**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("poll_interval", math.nan),
        ("poke_interval", -1),
        ("timeout", math.inf),
        ("timeout", None),
        ("deferrable", "false"),
        ("mde_conn_id", None),
    ],
)
def test_a_bad_sensor_parameter_fails_at_construction_naming_it(field: str, value: Any) -> None:
    with pytest.raises(LiveResponseConfigError, match=field):
        TASKS["sensor"](**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("has_parameters", "true"), ("override_if_exists", None), ("mde_conn_id", " ")],
)
def test_a_bad_library_parameter_fails_at_construction_naming_it(field: str, value: Any) -> None:
    with pytest.raises(LiveResponseConfigError, match=field):
        TASKS["library"](**{field: value})
