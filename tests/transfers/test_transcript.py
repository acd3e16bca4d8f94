"""RunScript transcripts summarised for the log and XCom: exit code, first lines cleaned and cut, nothing parsed
that is too large or not a transcript."""

from __future__ import annotations

import json

from airflow_provider_liveresponse.models import ActionCommand
from airflow_provider_liveresponse.transfers.gzip_stream import MAX_TRANSCRIPT_BYTES
from airflow_provider_liveresponse.transfers.transcript import LINE_CHARS, head, summarise
from tests.transfers.transfer_helpers import LogLines

COMMAND = ActionCommand.model_validate(
    {
        "index": 2,
        "commandStatus": "Completed",
        "command": {"type": "RunScript", "params": [{"key": "ScriptName", "value": "triage.ps1"}]},
    }
)


def test_the_exit_code_and_first_lines_are_summarised_and_logged() -> None:
    log = LogLines()
    raw = json.dumps({"exit_code": 3, "script_output": "one\n\ntwo\nthree\n", "script_errors": "bad\x00thing"})
    summary = summarise(log, COMMAND, "command 2", raw.encode(), lines=2)
    assert summary == {
        "index": 2,
        "script_name": "triage.ps1",
        "exit_code": 3,
        "stdout_head": ["one", "two"],
        "stderr_head": ["bad\N{REPLACEMENT CHARACTER}thing"],
    }
    assert log.lines == [
        "Script triage.ps1 (command 2) exited with code 3",
        "  stdout | one",
        "  stdout | two",
        "  stderr | bad\N{REPLACEMENT CHARACTER}thing",
    ]


def test_a_result_that_is_not_a_transcript_is_stored_but_not_summarised() -> None:
    log = LogLines()
    summary = summarise(log, COMMAND, "command 2", b"\xff not json", lines=10)
    assert (summary["exit_code"], summary["stdout_head"], summary["stderr_head"]) == (None, [], [])
    assert log.lines == ["command 2: the result is not a JSON script transcript; stored as returned"]


def test_a_transcript_over_the_limit_is_not_parsed() -> None:
    log = LogLines()
    summary = summarise(log, COMMAND, "command 2", b" " * (MAX_TRANSCRIPT_BYTES + 1), lines=10)
    assert summary["exit_code"] is None
    assert "larger than" in log.lines[0]


def test_long_lines_are_cut_short() -> None:
    (line,) = head("x" * (LINE_CHARS + 50), 5)
    assert line == "x" * LINE_CHARS + "..."
