"""The one completion path of the operator and the sensor: reading a trigger's event, describing an ended
action, and the script failures that go into the message."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseError
from airflow_provider_liveresponse.models import MachineAction, ScriptTranscript
from airflow_provider_liveresponse.outcome import FIRST_ERROR_CHARS, action_from_event, finish, script_failures

ACTION_ID = "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10"
MACHINE_ID = "3d4cc40f66a1574170f0e84299da28c3dac00b2f"


def _command(index: int, kind: str, status: str, target: str, errors: list[str] | None = None) -> dict[str, Any]:
    key = {"RunScript": "ScriptName", "GetFile": "Path"}[kind]
    return {
        "index": index,
        "commandStatus": status,
        "errors": errors or [],
        "command": {"type": kind, "params": [{"key": key, "value": target}]},
    }


def _action(status: str, *commands: dict[str, Any]) -> MachineAction:
    return MachineAction.model_validate(
        {
            "id": ACTION_ID,
            "status": status,
            "machineId": MACHINE_ID,
            "computerDnsName": "ws-0001.contoso.local",
            "commands": list(commands),
        }
    )


class _Hook:
    """Serves the transcripts of RunScript commands by index, or fails for those not given."""

    def __init__(self, transcripts: dict[int, ScriptTranscript]) -> None:
        self.transcripts = transcripts
        self.read: list[int] = []

    def get_script_transcript(self, action_id: str, index: int) -> ScriptTranscript:
        assert action_id == ACTION_ID
        self.read.append(index)
        if index not in self.transcripts:
            raise ConnectionError("blob unreachable")
        return self.transcripts[index]


def _hook(transcripts: dict[int, ScriptTranscript] | None = None) -> Any:
    return _Hook(transcripts or {})


# -- events ----------------------------------------------------------------------------------------------------


def test_a_success_or_error_event_carries_the_ended_action() -> None:
    action = _action("Failed", _command(0, "GetFile", "Failed", "C:\\x.txt", ["File not found"]))
    for status in ("success", "error"):
        event = {"status": status, "action": action.model_dump(mode="json", by_alias=True), "message": "m"}
        assert action_from_event(event, "collect") == action


def test_a_timeout_event_raises_timeout_error_with_its_message() -> None:
    with pytest.raises(TimeoutError, match="waited 3600 s"):
        action_from_event({"status": "timeout", "message": "waited 3600 s"}, "collect")


def test_an_error_event_without_an_action_raises_its_message() -> None:
    with pytest.raises(LiveResponseError, match="token refused"):
        action_from_event({"status": "error", "message": "token refused", "action": None}, "collect")


@pytest.mark.parametrize("event", [None, "success", {}, {"status": "done"}, {"status": ["success"]}])
def test_a_malformed_event_is_named_with_the_task(event: Any) -> None:
    with pytest.raises(LiveResponseError, match="Task collect: the trigger sent an unexpected event"):
        action_from_event(event, "collect")


def test_an_event_whose_action_cannot_be_read_says_so() -> None:
    with pytest.raises(LiveResponseError, match="no readable action"):
        action_from_event({"status": "success", "action": {"id": ACTION_ID}}, "collect")


# -- finishing -------------------------------------------------------------------------------------------------


def test_a_succeeded_action_returns_its_summary_and_logs_success(caplog: pytest.LogCaptureFixture) -> None:
    action = _action("Succeeded", _command(0, "GetFile", "Completed", "C:\\x.txt"))
    with caplog.at_level(logging.INFO):
        summary = finish(_hook(), action, logging.getLogger("task"))
    assert summary == action.summary()
    assert f"action {ACTION_ID}" in caplog.text
    assert "succeeded" in caplog.text


def test_a_failed_action_raises_naming_the_action_machine_and_failed_command() -> None:
    action = _action("Failed", _command(0, "GetFile", "Failed", "C:\\missing.txt", ["File not found"]))
    with pytest.raises(LiveResponseError) as info:
        finish(_hook(), action, logging.getLogger("task"))
    message = str(info.value)
    assert ACTION_ID in message
    assert MACHINE_ID in message
    assert "File not found" in message
    assert "C:\\missing.txt" in message


def test_a_script_that_exited_non_zero_is_in_the_failure_message() -> None:
    action = _action(
        "Failed",
        _command(0, "RunScript", "Completed", "triage.ps1"),
        _command(1, "GetFile", "Failed", "C:\\out.zip", ["File not found"]),
    )
    hook = _hook({0: ScriptTranscript(exit_code=3, script_errors="Access denied\nat line 2")})
    with pytest.raises(LiveResponseError, match=r"script triage\.ps1 \(command 0\) exited 3: Access denied"):
        finish(hook, action, logging.getLogger("task"))


# -- script failures -------------------------------------------------------------------------------------------


def test_only_completed_run_scripts_are_read() -> None:
    action = _action(
        "Failed",
        _command(0, "RunScript", "Completed", "a.ps1"),
        _command(1, "RunScript", "Failed", "b.ps1", ["Script failed"]),
        _command(2, "GetFile", "Completed", "C:\\x.txt"),
    )
    hook = _hook({0: ScriptTranscript(exit_code=0)})
    assert script_failures(hook, action) == []
    assert hook.read == [0]


def test_a_zero_or_missing_exit_code_is_not_a_failure() -> None:
    action = _action(
        "Succeeded", _command(0, "RunScript", "Completed", "a.ps1"), _command(1, "RunScript", "Completed", "b.ps1")
    )
    assert script_failures(_hook({0: ScriptTranscript(exit_code=0), 1: ScriptTranscript()}), action) == []


def test_a_failure_without_error_text_gives_the_exit_code_alone() -> None:
    action = _action("Succeeded", _command(0, "RunScript", "Completed", "a.ps1"))
    assert script_failures(_hook({0: ScriptTranscript(exit_code=1)}), action) == ["script a.ps1 (command 0) exited 1"]


def test_the_first_error_line_is_cut_to_its_limit() -> None:
    action = _action("Succeeded", _command(0, "RunScript", "Completed", "a.ps1"))
    hook = _hook({0: ScriptTranscript(exit_code=1, script_errors="E" * (FIRST_ERROR_CHARS + 50) + "\nsecond")})
    (line,) = script_failures(hook, action)
    assert line == "script a.ps1 (command 0) exited 1: " + "E" * FIRST_ERROR_CHARS


def test_an_unreadable_transcript_is_named_not_raised() -> None:
    action = _action("Succeeded", _command(4, "RunScript", "Completed", "a.ps1"))
    assert script_failures(_hook(), action) == ["transcript of command 4 unavailable (ConnectionError)"]
