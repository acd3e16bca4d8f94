"""Fault campaign 4, hostile input: property-based tests over LiveResponseOperator's parameters and MDE's answers.

- Operator parameters: a bad value fails with an error naming its field (LiveResponseConfigError, or ValueError /
  TypeError at construction) and never reaches the API; good values reach the API and nothing fails before.
  No connection is configured, and the hook's request method is replaced by one that raises
  ``ApiCallAttempted``, so an API call cannot go unnoticed.
- MDE's answers: random and mangled JSON fed to the models and, through canned HTTP answers, to the sync and
  async hooks' parsing paths: only a model or a LiveResponseError comes out, never a pydantic, type, key or
  attribute error.

``LIVERESPONSE_HYPOTHESIS_EXAMPLES`` sets the examples per test (the campaign command runs more than CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from airflow_provider_liveresponse.auth import TokenProvider
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError, LiveResponseError
from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
from airflow_provider_liveresponse.models import (
    ActionCommand,
    ApiErrorBody,
    GetFile,
    LibraryFile,
    Machine,
    MachineAction,
    PutFile,
    RunScript,
    ScriptTranscript,
    describe_outcome,
)
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator

if TYPE_CHECKING:
    from collections.abc import Iterator

EXAMPLES = int(os.environ.get("LIVERESPONSE_HYPOTHESIS_EXAMPLES", "60"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
#: Type edge cases of single fields: fewer examples suffice.
EDGE_CASES = settings(max_examples=30, deadline=None, database=None)

ACTION_ID = "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10"
MACHINE_ID = "3d4cc40f66a1574170f0e84299da28c3dac00b2f"
UNSET_CONN = "mde_hostile_unset"
API_URL = "https://mde.invalid"


class ApiCallAttempted(Exception):
    """The hook was about to send a request."""


# -- strategies: operator parameters ---------------------------------------------------------------------------

_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}
_HEX = "0123456789abcdefABCDEF"

machine_ids = st.text(alphabet=_HEX, min_size=40, max_size=40)
host_names = st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True)
library_names = st.from_regex(r"[A-Za-z0-9_-]{1,16}\.(ps1|sh|py|exe)", fullmatch=True).filter(
    lambda name: name.split(".")[0].upper() not in _RESERVED
)
windows_paths = st.from_regex(r"[A-Za-z]:\\[A-Za-z0-9_]{1,10}(\\[A-Za-z0-9_ .-]{0,8}[A-Za-z0-9_]){0,3}", fullmatch=True)
posix_paths = st.from_regex(r"/[a-z]{1,8}(/[a-z0-9_.-]{0,8}[a-z0-9_]){0,3}", fullmatch=True)
good_command_models = st.one_of(
    st.builds(RunScript, library_names, st.one_of(st.none(), st.text(max_size=40))),
    st.builds(GetFile, st.one_of(windows_paths, posix_paths)),
    st.builds(PutFile, library_names),
)
good_commands = st.lists(good_command_models, min_size=1, max_size=3).flatmap(
    lambda commands: st.sampled_from(
        [commands, [c.to_wire() for c in commands], tuple(commands), json.dumps([c.to_wire() for c in commands])]
    )
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

bad_command_items = st.one_of(
    json_values.filter(lambda v: not (isinstance(v, dict) and "type" in v)),
    st.builds(lambda t: {"type": t, "params": [{"key": "ScriptName", "value": "a.ps1"}]}, st.text(max_size=12)).filter(
        lambda c: c["type"] not in ("RunScript", "GetFile", "PutFile")
    ),
    st.sampled_from(
        [
            {"type": "RunScript", "params": []},
            {"type": "RunScript", "params": [{"key": "scriptname", "value": "a.ps1"}]},
            {"type": "RunScript", "params": [{"key": "ScriptName", "value": "dir/a.ps1"}]},
            {"type": "RunScript", "params": [{"key": "ScriptName", "value": "con.ps1"}]},
            {"type": "RunScript", "params": [{"key": "ScriptName", "value": ""}]},
            {"type": "RunScript", "params": [{"key": "ScriptName", "value": 5}]},
            {"type": "RunScript", "params": "ScriptName=a.ps1"},
            {"type": "GetFile", "params": [{"key": "Path", "value": "relative\\file.txt"}]},
            {"type": "GetFile", "params": [{"key": "Path", "value": "C:\\Windows\\Temp\\"}]},
            {"type": "GetFile", "params": [{"key": "Path", "value": "C:\\a|b.txt"}]},
            {"type": "GetFile", "params": [{"key": "Path", "value": "C:\\a\x00b.txt"}]},
            {"type": "GetFile", "params": [{"key": "Path", "value": "/var/log/"}]},
            {"type": "PutFile", "params": [{"key": "FileName", "value": "a.ps1"}, {"key": "FileName", "value": "a"}]},
            {"type": "PutFile", "params": [{"key": "FileName", "value": "a.ps1", "extra": 1}]},
            {"type": "PutFile", "params": [{"key": "Path", "value": "C:\\x.txt"}]},
            {"type": "runscript", "params": [{"key": "ScriptName", "value": "a.ps1"}]},
        ]
    ),
)
bad_commands = st.one_of(
    st.just([]),
    json_scalars,
    st.dictionaries(st.text(max_size=8), json_scalars, max_size=3),
    st.builds(lambda c: c, good_command_models),  # one command, not a list
    st.text(max_size=40).filter(lambda text: not _is_json(text)),
    json_values.filter(lambda v: not isinstance(v, list)).map(json.dumps),
    st.tuples(
        st.lists(good_command_models.map(lambda c: c.to_wire()), max_size=2), bad_command_items, st.booleans()
    ).map(lambda parts: [*parts[0], parts[1]] if parts[2] else [parts[1], *parts[0]]),
    st.tuples(st.lists(good_command_models.map(lambda c: c.to_wire()), max_size=2), bad_command_items).map(
        lambda parts: json.dumps([*parts[0], parts[1]])
    ),
)

bad_machine_ids = st.one_of(
    st.text(max_size=50).filter(lambda text: not re.fullmatch(r"[0-9a-fA-F]{40}", text.strip())),
    st.text(alphabet=_HEX, min_size=39, max_size=39),
    st.text(alphabet=_HEX, min_size=41, max_size=41),
    st.integers(),
    st.lists(st.text(max_size=5), max_size=2),
    st.builds(lambda h: h.encode(), machine_ids),
)
bad_host_names = st.one_of(
    st.text(alphabet=" \t\r\n", max_size=4),
    st.integers(),
    st.lists(host_names, max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
good_durations = st.one_of(
    st.floats(min_value=0.001, max_value=1e7),
    st.integers(min_value=1, max_value=10**7),
    st.builds(timedelta, seconds=st.floats(min_value=0.001, max_value=1e6)),
)
bad_durations = st.one_of(
    st.floats(max_value=0, allow_nan=False),
    st.integers(max_value=0),
    st.builds(timedelta, seconds=st.floats(min_value=-1e6, max_value=0)),
)
garbage_durations = st.one_of(
    st.just(math.nan),
    st.text(max_size=10).filter(lambda text: not _is_number(text)),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
DURATION_FIELDS = ("poll_interval", "timeout", "busy_timeout")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@st.composite
def good_parameters(draw: st.DrawFn) -> dict[str, Any]:
    params: dict[str, Any] = {"commands": draw(good_commands)}
    if draw(st.booleans()):
        params["machine_id"] = draw(machine_ids)
    else:
        params["computer_dns_name"] = draw(host_names)
    params["comment"] = draw(st.one_of(st.none(), st.text(max_size=60)))
    for field in DURATION_FIELDS:
        if draw(st.booleans()):
            params[field] = draw(good_durations)
    return params


@st.composite
def bad_parameters(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Good parameters with one field made bad; returns them and the field names the error may name."""
    params = draw(good_parameters())
    kind = draw(st.sampled_from(["commands", "machine_id", "computer_dns_name", "both", "neither", "duration"]))
    if kind == "commands":
        params["commands"] = draw(bad_commands)
        return params, ("commands",)
    params.pop("machine_id", None)
    params.pop("computer_dns_name", None)
    if kind == "machine_id":
        params["machine_id"] = draw(bad_machine_ids)
        return params, ("machine_id",)
    if kind == "computer_dns_name":
        params["computer_dns_name"] = draw(bad_host_names)
        return params, ("computer_dns_name",)
    if kind == "both":
        params["machine_id"], params["computer_dns_name"] = draw(machine_ids), draw(host_names)
        return params, ("machine_id", "computer_dns_name")
    if kind == "neither":
        return params, ("machine_id", "computer_dns_name")
    params["machine_id"] = draw(machine_ids)
    field = draw(st.sampled_from(DURATION_FIELDS))
    params[field] = draw(bad_durations)
    return params, (field,)


class _TaskInstance:
    dag_id = "hostile"
    run_id = "manual__2026-01-01T00:00:00+00:00"
    task_id = "collect"
    map_index = -1
    try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        raise AssertionError(f"XCom {key} pushed although no action can have been submitted")


def _run_operator(params: dict[str, Any]) -> BaseException | None:
    """Construct and execute the operator; the exception it ends with (ApiCallAttempted: it reached the API)."""
    os.environ.pop(f"AIRFLOW_CONN_{UNSET_CONN.upper()}", None)
    with mock.patch.object(LiveResponseHook, "_request", autospec=True, side_effect=ApiCallAttempted):
        try:
            operator = LiveResponseOperator(task_id="collect", mde_conn_id=UNSET_CONN, deferrable=False, **params)
            operator.execute({"ti": _TaskInstance()})  # type: ignore[typeddict-item,arg-type,unused-ignore]
        except Exception as exc:
            return exc
    return None


# -- (a) operator parameters -------------------------------------------------------------------------------------


@PROPERTY
@given(bad_parameters())
def test_a_bad_parameter_fails_naming_its_field_before_any_api_call(
    case: tuple[dict[str, Any], tuple[str, ...]],
) -> None:
    params, fields = case
    error = _run_operator(params)
    assert error is not None, f"accepted {params!r}"
    assert not isinstance(error, ApiCallAttempted), f"called the API with {params!r}"
    assert isinstance(error, (LiveResponseConfigError, ValueError, TypeError)), repr(error)
    assert any(field in str(error) for field in fields), f"{error} does not name {fields}"


@PROPERTY
@given(good_parameters())
def test_good_parameters_reach_the_api_and_nothing_fails_before(params: dict[str, Any]) -> None:
    error = _run_operator(params)
    assert isinstance(error, ApiCallAttempted), f"{params!r} failed before the API: {error!r}"


@EDGE_CASES
@given(st.sampled_from(DURATION_FIELDS), garbage_durations)
def test_a_duration_that_is_not_a_number_fails_naming_its_field(field: str, value: Any) -> None:
    error = _run_operator({"machine_id": MACHINE_ID, "commands": [RunScript("a.ps1")], field: value})
    assert isinstance(error, (LiveResponseConfigError, ValueError, TypeError)), repr(error)
    assert field in str(error)


@EDGE_CASES
@given(
    st.one_of(
        garbage_durations,
        st.floats(max_value=-1e-9),
        st.integers(max_value=-1),
        st.just(math.inf),
        st.booleans(),
    )
)
def test_a_throttle_wait_that_is_not_zero_or_more_seconds_fails_naming_its_field(value: Any) -> None:
    params = {"machine_id": MACHINE_ID, "commands": [RunScript("a.ps1")], "throttle_wait_in_worker": value}
    error = _run_operator(params)
    assert isinstance(error, (LiveResponseConfigError, ValueError, TypeError)), repr(error)
    assert "throttle_wait_in_worker" in str(error)


@EDGE_CASES
@given(
    st.one_of(
        st.integers().filter(bool), st.lists(st.text(), min_size=1), st.dictionaries(st.text(), st.text(), min_size=1)
    )
)
def test_a_comment_that_is_not_text_fails_naming_its_field(comment: Any) -> None:
    error = _run_operator({"machine_id": MACHINE_ID, "commands": [RunScript("a.ps1")], "comment": comment})
    assert isinstance(error, (LiveResponseConfigError, ValueError, TypeError)), repr(error)
    assert "comment" in str(error)


# -- (b) MDE's answers -------------------------------------------------------------------------------------------

ENTITY: dict[str, Any] = {
    "id": ACTION_ID,
    "type": "LiveResponse",
    "requestor": "analyst@contoso.com",
    "requestorComment": "triage [airflow:af-1.1]",
    "status": "Succeeded",
    "machineId": MACHINE_ID,
    "computerDnsName": "ws-0001.contoso.local",
    "creationDateTimeUtc": "2021-02-04T15:36:52.7788848Z",
    "lastUpdateDateTimeUtc": "2021-02-04T15:40:12.1234567Z",
    "errorHResult": 0,
    "commands": [
        {
            "index": 0,
            "startTime": "2021-02-04T15:37:00.1234567Z",
            "endTime": None,
            "commandStatus": "Completed",
            "errors": [],
            "command": {"type": "RunScript", "params": [{"key": "ScriptName", "value": "triage.ps1"}]},
        }
    ],
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


@st.composite
def mangled_entities(draw: st.DrawFn) -> Any:
    """The documented MachineAction with a few of its values, at any depth, replaced by random JSON."""
    entity = json.loads(json.dumps(ENTITY))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(entity)))
        if not path:
            return draw(json_values)
        parent = entity
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
        entity = entity if path else parent
    return entity


answers = st.one_of(json_values, mangled_entities())
list_answers = st.one_of(
    st.builds(lambda items: {"value": items}, st.lists(answers, max_size=3)),
    st.builds(lambda value: {"value": value}, json_values),
    st.builds(lambda link: {"value": [ENTITY], "@odata.nextLink": link}, json_values),
    answers,
)
bodies = st.one_of(
    answers.map(lambda value: json.dumps(value).encode()),
    list_answers.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=64),
    st.builds(lambda cut: json.dumps(ENTITY).encode()[:cut], st.integers(min_value=0, max_value=400)),
)
statuses = st.one_of(st.just(200), st.sampled_from([200, 201, 204, 400, 401, 403, 404, 409, 429, 500, 503]))
retry_after = st.one_of(st.none(), st.sampled_from(["nan", "inf", "-1", "0", "1e400", "abc"]), st.text(max_size=8))


@pytest.mark.parametrize(
    "model",
    [MachineAction, ActionCommand, Machine, LibraryFile, ScriptTranscript, ApiErrorBody],
    ids=lambda m: m.__name__,
)
@PROPERTY
@given(data=answers)
def test_a_model_parses_any_json_or_raises_a_validation_error(model: type[BaseModel], data: Any) -> None:
    try:
        parsed = model.model_validate(data)
    except ValidationError:
        return
    if isinstance(parsed, MachineAction):
        parsed.summary()
        json.dumps(parsed.model_dump(mode="json", by_alias=True))
        if parsed.is_terminal:
            describe_outcome(parsed)
        for command in parsed.commands:
            assert isinstance(command.has_result, bool)


class _CannedAnswers(BaseAdapter):
    """Answers the first request with a canned response, later ones (paging) with an empty list."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        super().__init__()
        self.answer = (status, body, headers)
        self.sent = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent += 1
        status, body, headers = self.answer if self.sent == 1 else (200, b'{"value": []}', {})
        response = requests.Response()
        response.status_code = status
        response._content = body
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **headers})
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        return None


def _strict_sleep(seconds: float) -> None:
    """time.sleep's contract without the wait: a NaN or negative wait is an error."""
    if not seconds >= 0:
        raise ValueError(f"sleep length must be non-negative, got {seconds!r}")


@pytest.fixture(scope="module")
def answer_connection() -> Iterator[str]:
    conn_id = "mde_hostile_answers"
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    extra = {"tenant_id": "8d2f1a36-5c4b-4e1f-9a7d-2b6c3e4f5a10", "api_url": API_URL}
    os.environ[variable] = json.dumps(
        {"conn_type": "mde_live_response", "login": "app", "password": "s", "extra": extra}
    )
    with mock.patch.object(TokenProvider, "token", autospec=True, return_value="token"):
        yield conn_id
    os.environ.pop(variable, None)


SYNC_CALLS = {
    "get_machine_action": lambda hook: hook.get_machine_action(ACTION_ID),
    "list_machine_actions": lambda hook: hook.list_machine_actions(machine_id=MACHINE_ID),
    "cancel_machine_action": lambda hook: hook.cancel_machine_action(ACTION_ID, "stop"),
    "get_result_download_link": lambda hook: hook.get_result_download_link(ACTION_ID, 0),
    "get_machine": lambda hook: hook.get_machine(MACHINE_ID),
    "find_machines": lambda hook: hook.find_machines(computer_dns_name="ws-0001.contoso.local"),
    "list_library_files": lambda hook: hook.list_library_files(),
}


@PROPERTY
@given(call=st.sampled_from(sorted(SYNC_CALLS)), status=statuses, body=bodies, retry=retry_after)
def test_the_sync_hook_turns_any_answer_into_a_model_or_a_live_response_error(
    answer_connection: str, call: str, status: int, body: bytes, retry: str | None
) -> None:
    hook = LiveResponseHook(answer_connection, max_retry_wait=1.0, max_attempts=2, sleep=_strict_sleep)
    hook.get_conn().mount(API_URL, _CannedAnswers(status, body, {"Retry-After": retry} if retry else {}))
    with contextlib.suppress(LiveResponseError):
        SYNC_CALLS[call](hook)


ASYNC_CALLS = {
    "get_machine_action": lambda hook: hook.get_machine_action(ACTION_ID),
    "get_machine_actions": lambda hook: hook.get_machine_actions([ACTION_ID]),
    "cancel_machine_action": lambda hook: hook.cancel_machine_action(ACTION_ID, "stop"),
}


@PROPERTY
@given(call=st.sampled_from(sorted(ASYNC_CALLS)), status=statuses, body=bodies, retry=retry_after)
def test_the_async_hook_turns_any_answer_into_a_model_or_a_live_response_error(
    answer_connection: str, call: str, status: int, body: bytes, retry: str | None
) -> None:
    hook = LiveResponseAsyncHook(answer_connection, max_retry_wait=0.05, max_attempts=2)
    answers_sent = iter([(status, {"Retry-After": retry} if retry else {}, body)])

    async def send(*args: Any) -> tuple[int, dict[str, str], bytes]:
        hook.calls += 1
        return next(answers_sent, (200, {}, b'{"value": []}'))

    hook._send = send  # type: ignore[method-assign,assignment]

    async def run() -> None:
        with contextlib.suppress(LiveResponseError):
            await ASYNC_CALLS[call](hook)

    asyncio.run(run())
