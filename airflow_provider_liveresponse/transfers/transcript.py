"""A RunScript transcript summarised for the task log and XCom: exit code and first lines, masked.

The transcript is stored as returned; what goes to the log and XCom is its exit code and the first lines of its
output and errors, control characters replaced, each line cut short, every value Airflow's secrets masker knows
replaced by ``***``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.transfers.gzip_stream import MAX_TRANSCRIPT_BYTES

if TYPE_CHECKING:
    from airflow_provider_liveresponse.models import ActionCommand

#: Characters of one transcript line kept for the log and XCom.
LINE_CHARS = 300


def summarise(log: Any, command: ActionCommand, described: str, raw: bytes | None, lines: int) -> dict[str, Any]:
    """Exit code and first ``lines`` lines of output and errors of ``command``'s transcript, masked, logged."""
    from airflow_provider_liveresponse.models import ScriptTranscript
    from airflow_provider_liveresponse.secrets import redact

    summary: dict[str, Any] = {"index": command.index, "script_name": command.command.target}
    if raw is None or len(raw) > MAX_TRANSCRIPT_BYTES:
        log.warning("%s: the transcript is larger than %d bytes; stored, not summarised", described, len(raw or b""))
        return {**summary, "exit_code": None, "stdout_head": [], "stderr_head": []}
    try:
        transcript = ScriptTranscript.model_validate(json.loads(raw.decode("utf-8-sig")))
    except (ValueError, UnicodeDecodeError):
        log.warning("%s: the result is not a JSON script transcript; stored as returned", described)
        return {**summary, "exit_code": None, "stdout_head": [], "stderr_head": []}
    stdout = [redact(line) for line in head(transcript.script_output, lines)]
    stderr = [redact(line) for line in head(transcript.script_errors, lines)]
    summary.update(exit_code=transcript.exit_code, stdout_head=stdout, stderr_head=stderr)
    log.info("Script %s (command %d) exited with code %s", command.command.target, command.index, transcript.exit_code)
    for label, shown in (("stdout", stdout), ("stderr", stderr)):
        for line in shown:
            log.info("  %s | %s", label, line)
    return summary


def head(text: str, lines: int) -> list[str]:
    """The first ``lines`` non-empty lines of ``text``, control characters replaced, each cut short."""
    result = []
    for line in text.splitlines():
        cleaned = "".join(ch if ch.isprintable() or ch == "\t" else "\N{REPLACEMENT CHARACTER}" for ch in line).rstrip()
        if not cleaned:
            continue
        if len(cleaned) > LINE_CHARS:
            cleaned = cleaned[:LINE_CHARS] + "..."
        result.append(cleaned)
        if len(result) >= lines:
            break
    return result
