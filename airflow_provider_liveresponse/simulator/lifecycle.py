"""Live-response actions and their life cycle, advanced lazily and deterministically on the simulated clock.

An action is ``Pending`` until its device picks it up (``PICKUP_SECONDS`` after creation, or after the device
comes online), then ``InProgress``. Commands run one at a time in the order PutFile, RunScript, GetFile
(submitted order within a type; indexes stay as submitted), each ``Created`` -> ``InProgress`` ->
``Completed`` / ``Failed``. A failed command ends the action ``Failed`` and the later commands stay
``Created``; a RunScript past the timeout ends it ``TimeOut``; so does a device offline past the queue limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_liveresponse.simulator.clock import format_datetime
from airflow_provider_liveresponse.simulator.library import run_script

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.fleet import Device
    from airflow_provider_liveresponse.simulator.library import LibraryFile
    from airflow_provider_liveresponse.simulator.limits import Limits

ACTIVE_STATUSES = frozenset({"Pending", "InProgress"})
TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "TimeOut", "Cancelled"})
COMMAND_TYPES = ("PutFile", "RunScript", "GetFile")
#: Parameter keys per command type: (required, optional). Keys are case-sensitive.
COMMAND_PARAMETERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "PutFile": ("FileName", ()),
    "RunScript": ("ScriptName", ("Args",)),
    "GetFile": ("Path", ()),
}
#: Simulated seconds between an online device and the start of its session.
PICKUP_SECONDS = 5.0
PUT_FILE_SECONDS = 2.0
GET_FILE_BASE_SECONDS = 3.0
#: Upload speed of a device collecting a file, bytes per simulated second.
GET_FILE_BYTES_PER_SECOND = 20 * 1024 * 1024
LINUX_PUT_FILE_FOLDER = "/tmp"  # noqa: S108 - a path on the simulated device
PUT_FILE_FOLDER = "C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\Downloads"


@dataclass
class Result:
    """The result of a command: a collected file (served gzip-compressed) or a script transcript (JSON)."""

    kind: Literal["file", "transcript"]
    device_id: str = ""
    path: str = ""
    size: int = 0
    transcript: bytes = b""

    @property
    def file_name(self) -> str:
        """The collected file's base name (transcripts: ``transcript.json``)."""
        if self.kind == "transcript":
            return "transcript.json"
        return self.path.replace("/", "\\").rstrip("\\").rsplit("\\", 1)[-1] or "file"


@dataclass
class Command:
    """One command of an action, with its progress."""

    index: int
    type: str
    params: list[dict[str, str]]
    status: str = "Created"
    start: float | None = None
    end: float | None = None
    errors: list[str] = field(default_factory=list)
    result: Result | None = None
    finish_at: float | None = None
    planned_status: str = "Completed"
    planned_errors: list[str] = field(default_factory=list)
    planned_result: Result | None = None
    planned_effects: tuple[tuple[str, int], ...] = ()
    times_out: bool = False

    def param(self, key: str) -> str | None:
        """The value of parameter ``key`` (case-sensitive), or None."""
        for item in self.params:
            if item.get("key") == key:
                return item.get("value")
        return None

    def to_entity(self) -> dict[str, Any]:
        """The command as it appears in a MachineAction."""
        return {
            "index": self.index,
            "startTime": format_datetime(self.start) if self.start is not None else None,
            "endTime": format_datetime(self.end) if self.end is not None else None,
            "commandStatus": self.status,
            "errors": list(self.errors),
            "command": {"type": self.type, "params": [dict(item) for item in self.params]},
            "hostOutputTruncated": False,
        }


@dataclass
class Action:
    """A live-response MachineAction and where its simulation has got to (``cursor``, simulated time)."""

    id: str
    machine_id: str
    computer_dns_name: str
    requestor: str
    comment: str | None
    created: float
    commands: list[Command]
    status: str = "Pending"
    last_update: float = 0.0
    cursor: float = 0.0
    cancellation_requestor: str | None = None
    cancellation_comment: str | None = None
    cancellation_time: float | None = None
    #: When the device picked the action up (Pending -> InProgress) and when it ended, simulated epoch seconds.
    picked_up: float | None = None
    ended: float | None = None

    @property
    def is_active(self) -> bool:
        """Pending or InProgress."""
        return self.status in ACTIVE_STATUSES

    def execution_order(self) -> list[Command]:
        """Commands in the order the device runs them: PutFile, RunScript, GetFile, then by index."""
        return sorted(self.commands, key=lambda command: (COMMAND_TYPES.index(command.type), command.index))

    def to_entity(self, *, list_form: bool = False) -> dict[str, Any]:
        """The MachineAction; the list endpoint spells ``lastUpdateTimeUtc`` (contract)."""
        update_key = "lastUpdateTimeUtc" if list_form else "lastUpdateDateTimeUtc"
        return {
            "id": self.id,
            "type": "LiveResponse",
            "title": None,
            "requestor": self.requestor,
            "requestorComment": self.comment,
            "status": self.status,
            "machineId": self.machine_id,
            "computerDnsName": self.computer_dns_name,
            "creationDateTimeUtc": format_datetime(self.created),
            update_key: format_datetime(self.last_update),
            "cancellationRequestor": self.cancellation_requestor,
            "cancellationComment": self.cancellation_comment,
            "cancellationDateTimeUtc": (
                format_datetime(self.cancellation_time) if self.cancellation_time is not None else None
            ),
            "errorHResult": 0,
            "scope": None,
            "externalId": None,
            "requestSource": "PublicApi",
            "relatedFileInfo": None,
            "troubleshootInfo": None,
            "commands": [command.to_entity() for command in self.commands],
            "actionRegion": "WestEurope",
        }

    def cancel(self, requestor: str, comment: str, now: float) -> None:
        """Cancel the action at ``now`` (the caller has checked it is active)."""
        self.status = "Cancelled"
        self.ended = now
        self.cancellation_requestor = requestor
        self.cancellation_comment = comment
        self.cancellation_time = now
        self.last_update = now
        for command in self.commands:
            if command.status == "InProgress":
                command.status = "Failed"
                command.end = now
                command.errors = ["The live response session was cancelled"]


def _transcript(name: str, exit_code: int, output: str, errors: str, error_key: str) -> bytes:
    body = {"script_name": name, "exit_code": exit_code, "script_output": output, error_key: errors}
    return json.dumps(body).encode()


def _plan(command: Command, device: Device, library: dict[str, LibraryFile], limits: Limits, start: float) -> None:
    """Decide how ``command`` ends, given the device and library as they are when it starts."""
    command.status = "InProgress"
    command.start = start
    if command.type == "PutFile":
        name = command.param("FileName") or ""
        if name.lower() not in library:
            command.finish_at = start + 1
            command.planned_status = "Failed"
            command.planned_errors = [f"File '{name}' was not found in the live response library"]
            return
        command.finish_at = start + PUT_FILE_SECONDS
        folder = LINUX_PUT_FILE_FOLDER if device.is_linux else PUT_FILE_FOLDER
        separator = "/" if device.is_linux else "\\"
        command.planned_effects = (
            (f"{folder}{separator}{library[name.lower()].file_name}", library[name.lower()].size),
        )
        return
    if command.type == "RunScript":
        name = command.param("ScriptName") or ""
        if name.lower() not in library:
            command.finish_at = start + 1
            command.planned_status = "Failed"
            command.planned_errors = [f"Script '{name}' was not found in the live response library"]
            return
        run = run_script(name, command.param("Args"), limits.run_script_timeout_seconds)
        timeout = limits.run_script_timeout_seconds
        if run.duration is None or run.duration > timeout:
            command.finish_at = start + timeout
            command.planned_status = "Failed"
            command.planned_errors = [f"Script execution timed out after {timeout:g} seconds"]
            command.times_out = True
            return
        command.finish_at = start + run.duration
        command.planned_result = Result(
            kind="transcript",
            device_id=device.id,
            transcript=_transcript(
                library[name.lower()].file_name, run.exit_code, run.output, run.errors, run.error_key
            ),
        )
        command.planned_effects = run.creates
        if run.failed:
            command.planned_status = "Failed"
            command.planned_errors = [f"Script '{name}' failed with exit code {run.exit_code}"]
        return
    path = command.param("Path") or ""
    found = device.find_file(path)
    if found is None:
        command.finish_at = start + 2
        command.planned_status = "Failed"
        command.planned_errors = [f"The system cannot find the file specified: {path}"]
        return
    command.finish_at = start + GET_FILE_BASE_SECONDS + found.size / GET_FILE_BYTES_PER_SECOND
    command.planned_result = Result(kind="file", device_id=device.id, path=path, size=found.size)


def advance(action: Action, device: Device, library: dict[str, LibraryFile], limits: Limits, until: float) -> None:
    """Move ``action`` forward to simulated time ``until``, applying every transition on the way."""
    while action.is_active:
        if action.status == "Pending":
            deadline = action.created + limits.queue_seconds
            if device.online and device.onboarded:
                pickup = max(action.created, device.online_since or action.created) + PICKUP_SECONDS
                if pickup <= deadline and pickup <= until:
                    action.status = "InProgress"
                    action.cursor = action.last_update = action.picked_up = pickup
                    continue
            if until >= deadline:
                action.status = "TimeOut"
                action.cursor = action.last_update = action.ended = deadline
            return
        pending = [command for command in action.execution_order() if command.status in ("Created", "InProgress")]
        if not pending:
            action.status = "Succeeded"
            action.last_update = action.ended = action.cursor
            return
        command = pending[0]
        if command.status == "Created":
            _plan(command, device, library, limits, action.cursor)
            action.last_update = action.cursor
        if command.finish_at is None or command.finish_at > until:
            return
        command.status = command.planned_status
        command.end = command.finish_at
        command.errors = list(command.planned_errors)
        command.result = command.planned_result
        for path, size in command.planned_effects:
            device.add_file(path, size)
        action.cursor = action.last_update = command.finish_at
        if command.status == "Failed":
            action.status = "TimeOut" if command.times_out else "Failed"
            action.ended = command.finish_at
            return
