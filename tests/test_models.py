"""The API models: wire shapes, lenient parsing of entities, strict validation of requests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_provider_liveresponse.models import (
    ActionStatus,
    Command,
    CommandStatus,
    CommandType,
    GetFile,
    LibraryFile,
    Machine,
    MachineAction,
    PutFile,
    RunLiveResponseRequest,
    RunScript,
    ScriptTranscript,
    parse_commands,
)

ACTION = {
    "id": "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10",
    "type": "LiveResponse",
    "requestor": "analyst@contoso.com",
    "requestorComment": "Testing Live Response API",
    "status": "Pending",
    "machineId": "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
    "computerDnsName": "ws-0001.contoso.local",
    "creationDateTimeUtc": "2021-02-04T15:36:52.7788848Z",
    "lastUpdateDateTimeUtc": "2021-02-04T15:37:52.7788848Z",
    "cancellationRequestor": None,
    "errorHResult": 0,
    "troubleshootInfo": None,
    "aFieldMdeAddedLater": {"x": 1},
    "commands": [
        {
            "index": 0,
            "startTime": None,
            "endTime": None,
            "commandStatus": "Created",
            "errors": [],
            "command": {
                "type": "RunScript",
                "params": [{"key": "ScriptName", "value": "minidump.ps1"}, {"key": "Args", "value": "x"}],
            },
        },
        {
            "index": 1,
            "commandStatus": "SomethingNew",
            "errors": None,
            "command": {"type": "GetFile", "params": [{"key": "Path", "value": "C:\\x.zip"}]},
        },
    ],
}


def test_friendly_constructors_build_the_wire_shape() -> None:
    assert RunScript("minidump.ps1", args="OfficeClickToRun").to_wire() == {
        "type": "RunScript",
        "params": [{"key": "ScriptName", "value": "minidump.ps1"}, {"key": "Args", "value": "OfficeClickToRun"}],
    }
    assert GetFile(r"C:\windows\TEMP\x.dmp.zip").to_wire() == {
        "type": "GetFile",
        "params": [{"key": "Path", "value": "C:\\windows\\TEMP\\x.dmp.zip"}],
    }
    assert PutFile("tool.exe").to_wire() == {"type": "PutFile", "params": [{"key": "FileName", "value": "tool.exe"}]}


def test_wire_dicts_are_accepted_and_equal_the_constructors() -> None:
    wire = {"type": "GetFile", "params": [{"key": "Path", "value": "/var/log/syslog"}]}
    assert Command.model_validate(wire) == GetFile("/var/log/syslog")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ({"type": "Collect", "params": []}, "unknown command type 'Collect'"),
        ({"type": "getfile", "params": [{"key": "Path", "value": "C:\\x"}]}, "did you mean 'GetFile'"),
        ({"type": "GetFile", "params": []}, "missing required param Path"),
        ({"type": "GetFile", "params": [{"key": "path", "value": "C:\\x"}]}, "did you mean 'Path'"),
        ({"type": "RunScript", "params": [{"key": "Script", "value": "a.ps1"}]}, "unknown param key 'Script'"),
        ({"type": "GetFile", "params": [{"key": "Path", "value": ""}]}, "Path is empty"),
        ({"type": "GetFile", "params": [{"key": "Path", "value": "x.zip"}]}, "not an absolute device path"),
        ({"type": "GetFile", "params": [{"key": "Path", "value": "C:\\a|b"}]}, "cannot hold"),
        ({"type": "GetFile", "params": [{"key": "Path", "value": "C:\\dir\\"}]}, "names a folder"),
        ({"type": "RunScript", "params": [{"key": "ScriptName", "value": "C:\\a.ps1"}]}, "path separator"),
        ({"type": "PutFile", "params": [{"key": "FileName", "value": "CON.txt"}]}, "reserved Windows device name"),
        (
            {
                "type": "GetFile",
                "params": [{"key": "Path", "value": "C:\\a"}, {"key": "Path", "value": "C:\\b"}],
            },
            "twice",
        ),
    ],
)
def test_bad_commands_name_the_field_and_the_fix(command: dict, message: str) -> None:
    with pytest.raises(ValueError, match="commands\\[1\\]") as info:
        parse_commands([GetFile("C:\\ok.txt"), command])
    assert message in str(info.value)


def test_parse_commands_rejects_a_single_command_and_an_empty_list() -> None:
    with pytest.raises(ValueError, match="must be a list"):
        parse_commands(GetFile("C:\\x"))
    with pytest.raises(ValueError, match="is empty"):
        parse_commands([])


def test_request_body_uses_the_api_names() -> None:
    body = RunLiveResponseRequest.model_validate({"Commands": [RunScript("a.ps1")], "Comment": "why"}).to_wire()
    assert body == {
        "Commands": [{"type": "RunScript", "params": [{"key": "ScriptName", "value": "a.ps1"}]}],
        "Comment": "why",
    }


def test_machine_action_parses_leniently_and_keeps_unknown_fields() -> None:
    action = MachineAction.model_validate(ACTION)
    assert action.status is ActionStatus.PENDING
    assert not action.is_terminal
    assert action.creation_date_time_utc == datetime(2021, 2, 4, 15, 36, 52, 778884, tzinfo=UTC)
    assert action.model_extra is not None
    assert action.model_extra["aFieldMdeAddedLater"] == {"x": 1}
    assert action.commands[0].command.param("Args") == "x"
    assert action.commands[1].errors == []
    unknown = action.commands[1].command_status
    assert unknown == "SomethingNew"
    assert not unknown.is_final


def test_list_endpoint_spelling_of_last_update_is_accepted() -> None:
    data = dict(ACTION)
    del data["lastUpdateDateTimeUtc"]
    data["lastUpdateTimeUtc"] = "2021-02-04T15:40:00.1234567Z"
    action = MachineAction.model_validate(data)
    assert action.last_update_date_time_utc == datetime(2021, 2, 4, 15, 40, 0, 123456, tzinfo=UTC)


def test_naive_datetimes_are_read_as_utc() -> None:
    machine = Machine.model_validate({"id": "a" * 40, "lastSeen": "2024-01-01T00:00:00"})
    assert machine.last_seen == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("status", ["Succeeded", "Failed", "TimeOut", "Cancelled"])
def test_terminal_statuses(status: str) -> None:
    assert ActionStatus(status).is_terminal


def test_unknown_action_status_is_not_terminal() -> None:
    assert not ActionStatus("Queued").is_terminal
    assert ActionStatus("succeeded") is ActionStatus.SUCCEEDED


def test_summary_is_json_safe() -> None:
    import json

    summary = MachineAction.model_validate(ACTION).summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["commands"][1] == {
        "index": 1,
        "type": "GetFile",
        "target": "C:\\x.zip",
        "status": "SomethingNew",
        "errors": [],
        "start_time": None,
        "end_time": None,
    }


def test_script_transcript_accepts_both_spellings_of_errors() -> None:
    one = ScriptTranscript.model_validate(
        {"script_name": "a.ps1", "exit_code": 1, "script_output": "o\x00k", "script_error": "boom"}
    )
    two = ScriptTranscript.model_validate({"script_name": "a.ps1", "exit_code": 1, "script_errors": "boom"})
    assert one.script_errors == two.script_errors == "boom"
    assert one.script_output == "o\x00k"


def test_library_file_and_command_status() -> None:
    item = LibraryFile.model_validate(
        {"fileName": "a.ps1", "sha256": "ab", "hasParameters": True, "creationTime": "2024-01-01T00:00:00Z"}
    )
    assert item.file_name == "a.ps1"
    assert item.has_parameters
    assert CommandStatus("Completed").is_final
    assert CommandType("GetFile") is CommandType.GET_FILE
