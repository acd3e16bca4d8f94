"""Pydantic models of the MDE Live Response API: the entities it returns and the requests it takes.

Entities parse leniently (unknown fields are kept, camelCase aliases, timezone-aware datetimes with MDE's
seven fractional digits); requests validate strictly and name the bad field, so a DAG author hears about a
typo before any call reaches a device.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from collections.abc import Sequence


def _ensure_utc(value: datetime) -> datetime:
    """MDE's datetimes are UTC; one without an offset is read as UTC, never as local time."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_ensure_utc)]


class _LenientStrEnum(StrEnum):
    """A string enum that accepts values it does not know (MDE adds them) as pseudo-members."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str) or not value:
            return None
        for member in cls:
            if member.value.lower() == value.lower():
                return member
        pseudo = str.__new__(cls, value)
        pseudo._name_ = value
        pseudo._value_ = value
        return pseudo


class ActionStatus(_LenientStrEnum):
    """Status of a machine action. ``Succeeded``, ``Failed``, ``TimeOut`` and ``Cancelled`` are final."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMEOUT = "TimeOut"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the action has ended; an unknown status is taken as not ended."""
        return self in _TERMINAL_ACTION_STATUSES


_TERMINAL_ACTION_STATUSES = frozenset(
    {ActionStatus.SUCCEEDED, ActionStatus.FAILED, ActionStatus.TIMEOUT, ActionStatus.CANCELLED}
)


class CommandStatus(_LenientStrEnum):
    """Status of one command of a live-response action; values MDE adds are kept and are not final."""

    CREATED = "Created"
    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"

    @property
    def is_final(self) -> bool:
        """Whether the command has ended (``Completed`` or ``Failed``)."""
        return self in (CommandStatus.COMPLETED, CommandStatus.FAILED)


class CommandType(StrEnum):
    """The three live-response command types, in the order MDE runs them."""

    PUT_FILE = "PutFile"
    RUN_SCRIPT = "RunScript"
    GET_FILE = "GetFile"


#: Parameter keys each command type takes (case-sensitive on the API), required ones first.
COMMAND_PARAMS: dict[CommandType, tuple[frozenset[str], frozenset[str]]] = {
    CommandType.PUT_FILE: (frozenset({"FileName"}), frozenset()),
    CommandType.RUN_SCRIPT: (frozenset({"ScriptName"}), frozenset({"Args"})),
    CommandType.GET_FILE: (frozenset({"Path"}), frozenset()),
}

_WINDOWS_FORBIDDEN = re.compile(r'[<>"|?*\x00-\x1f]')
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:\\|\\\\[^\\]+\\[^\\]+)")
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {f"LPT{i}" for i in range(1, 10)}
)
_MAX_PATH = 32_767
_MAX_NAME = 255


def check_library_file_name(field: str, name: str) -> None:
    if not name.strip():
        raise ValueError(f"{field} is empty: give the name of a file in the live-response library")
    if "/" in name or "\\" in name:
        raise ValueError(
            f"{field} {name!r} contains a path separator: PutFile and RunScript take the bare name of a "
            "file already uploaded to the live-response library (for example 'triage.ps1')"
        )
    if _WINDOWS_FORBIDDEN.search(name) or name.endswith((" ", ".")) or len(name) > _MAX_NAME:
        raise ValueError(
            f'{field} {name!r} cannot be a library file name: remove control characters and <>:"|?*, '
            f"trailing dots or spaces, and keep it under {_MAX_NAME} characters"
        )
    if ":" in name:
        raise ValueError(f"{field} {name!r} contains ':': library file names cannot")
    if name.split(".")[0].upper() in _RESERVED_NAMES:
        raise ValueError(f"{field} {name!r} is a reserved Windows device name: rename the file")


def _check_device_path(path: str) -> None:
    if not path.strip():
        raise ValueError("Path is empty: give the full path of the file to collect, e.g. C:\\Windows\\Temp\\x.zip")
    if len(path) > _MAX_PATH:
        raise ValueError(f"Path is {len(path)} characters long; device paths are at most {_MAX_PATH}")
    if "\x00" in path or any(ord(ch) < 32 for ch in path):
        raise ValueError(f"Path {path!r} contains control characters: remove them")
    if path.startswith("/"):  # macOS and Linux devices
        if path.endswith("/"):
            raise ValueError(f"Path {path!r} names a folder: GetFile collects one file")
        return
    if not _WINDOWS_ABSOLUTE.match(path):
        raise ValueError(
            f"Path {path!r} is not an absolute device path: use a full Windows path such as "
            "C:\\Windows\\Temp\\triage.zip (a raw string in Python: r'C:\\...') or a full POSIX path such "
            "as /var/log/syslog"
        )
    if _WINDOWS_FORBIDDEN.search(path[2:]) or ":" in path[2:]:
        raise ValueError(f'Path {path!r} contains a character Windows paths cannot hold (<>:"|?*)')
    if path.endswith("\\"):
        raise ValueError(f"Path {path!r} names a folder: GetFile collects one file")


class _ApiModel(BaseModel):
    """Base of the API entities: camelCase aliases, unknown fields kept, population by name allowed."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class CommandParam(BaseModel):
    """One ``{"key": ..., "value": ...}`` parameter of a live-response command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    value: str


class Command(BaseModel):
    """A live-response command in the API's wire shape, validated.

    Build one with :func:`RunScript`, :func:`GetFile` or :func:`PutFile`, or validate a wire dict::

        Command.model_validate({"type": "GetFile", "params": [{"key": "Path", "value": "C:\\\\x.zip"}]})
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: CommandType
    params: tuple[CommandParam, ...] = ()

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in {t.value for t in CommandType}:
            known = ", ".join(t.value for t in CommandType)
            matches = [t.value for t in CommandType if t.value.lower() == value.lower()]
            hint = f" (did you mean {matches[0]!r}? the API is case-sensitive)" if matches else ""
            raise ValueError(f"unknown command type {value!r}{hint}; use one of {known}")
        return value

    @model_validator(mode="after")
    def _check_params(self) -> Self:
        required, optional = COMMAND_PARAMS[self.type]
        allowed = required | optional
        seen: set[str] = set()
        for param in self.params:
            if param.key not in allowed:
                matches = [k for k in allowed if k.lower() == param.key.lower()]
                hint = (
                    f"did you mean {matches[0]!r}? keys are case-sensitive"
                    if matches
                    else f"{self.type} takes {', '.join(sorted(allowed))}"
                )
                raise ValueError(f"{self.type} has unknown param key {param.key!r}: {hint}")
            if param.key in seen:
                raise ValueError(f"{self.type} has param {param.key!r} twice: give it once")
            seen.add(param.key)
        missing = required - seen
        if missing:
            raise ValueError(f"{self.type} is missing required param {', '.join(sorted(missing))}")
        values = {p.key: p.value for p in self.params}
        if self.type is CommandType.GET_FILE:
            _check_device_path(values["Path"])
        elif self.type is CommandType.RUN_SCRIPT:
            check_library_file_name("ScriptName", values["ScriptName"])
        else:
            check_library_file_name("FileName", values["FileName"])
        return self

    def param(self, key: str) -> str | None:
        """The value of parameter ``key``, or None."""
        return next((p.value for p in self.params if p.key == key), None)

    @property
    def target(self) -> str:
        """What the command acts on: the device path, the script or the library file name."""
        key = {CommandType.GET_FILE: "Path", CommandType.RUN_SCRIPT: "ScriptName"}.get(self.type, "FileName")
        return self.param(key) or ""

    def to_wire(self) -> dict[str, Any]:
        """The command as the API takes it."""
        return {"type": self.type.value, "params": [p.model_dump() for p in self.params]}


def RunScript(script_name: str, args: str | None = None) -> Command:
    """A ``RunScript`` command: run a script from the live-response library, with optional arguments."""
    params = [CommandParam(key="ScriptName", value=script_name)]
    if args is not None:
        params.append(CommandParam(key="Args", value=args))
    return Command(type=CommandType.RUN_SCRIPT, params=tuple(params))


def GetFile(path: str) -> Command:
    """A ``GetFile`` command: collect one file from the device (a full device path)."""
    return Command(type=CommandType.GET_FILE, params=(CommandParam(key="Path", value=path),))


def PutFile(file_name: str) -> Command:
    """A ``PutFile`` command: put a file from the live-response library on the device."""
    return Command(type=CommandType.PUT_FILE, params=(CommandParam(key="FileName", value=file_name),))


def parse_commands(commands: Any, field: str = "commands") -> list[Command]:
    """Validate a list of commands given as models or wire dicts; errors name the command's position."""
    if isinstance(commands, (Command, dict)) or not isinstance(commands, (list, tuple)):
        raise ValueError(
            f"{field} must be a list of commands (RunScript(...), GetFile(...), PutFile(...) or wire dicts), "
            f"got {type(commands).__name__}"
        )
    if not commands:
        raise ValueError(f"{field} is empty: give at least one command")
    parsed: list[Command] = []
    for position, item in enumerate(commands):
        if isinstance(item, Command):
            parsed.append(item)
            continue
        try:
            parsed.append(Command.model_validate(item))
        except ValueError as exc:
            raise ValueError(f"{field}[{position}] is not a valid command: {_first_error(exc)}") from None
    return parsed


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        details = errors()
        if details:
            first = details[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            message = str(first.get("msg", "")).removeprefix("Value error, ")
            return f"{where}: {message}" if where else message
    return str(exc)


class RunLiveResponseRequest(BaseModel):
    """The body of ``POST /api/machines/{id}/runliveresponse``."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    commands: list[Command] = Field(alias="Commands", min_length=1)
    comment: str = Field(alias="Comment", min_length=1)

    @field_validator("commands", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return parse_commands(value, "Commands")

    def to_wire(self) -> dict[str, Any]:
        """The request body as the API takes it."""
        return {"Commands": [c.to_wire() for c in self.commands], "Comment": self.comment}


class CommandSpec(_ApiModel):
    """A command as the API echoes it back inside a machine action (parsed leniently)."""

    type: str
    params: list[CommandParam] = Field(default_factory=list)

    def param(self, key: str) -> str | None:
        """The value of parameter ``key``, or None."""
        return next((p.value for p in self.params if p.key == key), None)

    @property
    def target(self) -> str:
        """The device path, script or library file the command acts on."""
        return self.param("Path") or self.param("ScriptName") or self.param("FileName") or ""


class ActionCommand(_ApiModel):
    """One command of a live-response machine action: index, status, times and errors."""

    index: int
    start_time: UtcDatetime | None = None
    end_time: UtcDatetime | None = None
    command_status: CommandStatus = CommandStatus.CREATED
    errors: list[str] = Field(default_factory=list)
    command: CommandSpec

    @field_validator("errors", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def type(self) -> str:
        """The command's type (``RunScript``, ``GetFile``, ``PutFile``)."""
        return self.command.type

    @property
    def has_result(self) -> bool:
        """Whether a result can be downloaded: a completed ``GetFile`` or ``RunScript``."""
        return self.command_status == CommandStatus.COMPLETED and self.type in (
            CommandType.GET_FILE.value,
            CommandType.RUN_SCRIPT.value,
        )


class MachineAction(_ApiModel):
    """A machine action (``/api/machineactions/{id}``), the handle of a live-response session."""

    id: str
    type: str = "LiveResponse"
    title: str | None = None
    requestor: str | None = None
    requestor_comment: str | None = None
    status: ActionStatus
    machine_id: str | None = None
    computer_dns_name: str | None = None
    creation_date_time_utc: UtcDatetime | None = None
    last_update_date_time_utc: UtcDatetime | None = Field(
        default=None,
        validation_alias=AliasChoices("lastUpdateDateTimeUtc", "lastUpdateTimeUtc", "last_update_date_time_utc"),
    )
    cancellation_requestor: str | None = None
    cancellation_comment: str | None = None
    cancellation_date_time_utc: UtcDatetime | None = None
    error_h_result: int | None = Field(default=None, alias="errorHResult")
    scope: str | None = None
    external_id: str | None = None
    request_source: str | None = None
    commands: list[ActionCommand] = Field(default_factory=list)

    @field_validator("commands", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def is_terminal(self) -> bool:
        """Whether the action has ended."""
        return self.status.is_terminal

    @property
    def failed_commands(self) -> list[ActionCommand]:
        """The commands that ended ``Failed``."""
        return [c for c in self.commands if c.command_status == CommandStatus.FAILED]

    def summary(self) -> dict[str, Any]:
        """JSON-safe data for XCom: ids, status, machine and each command's status and errors."""
        return {
            "id": self.id,
            "status": str(self.status),
            "machine_id": self.machine_id,
            "computer_dns_name": self.computer_dns_name,
            "requestor": self.requestor,
            "requestor_comment": self.requestor_comment,
            "creation_date_time_utc": _iso(self.creation_date_time_utc),
            "last_update_date_time_utc": _iso(self.last_update_date_time_utc),
            "commands": [
                {
                    "index": c.index,
                    "type": c.type,
                    "target": c.command.target,
                    "status": str(c.command_status),
                    "errors": list(c.errors),
                    "start_time": _iso(c.start_time),
                    "end_time": _iso(c.end_time),
                }
                for c in self.commands
            ],
        }


def describe_outcome(action: MachineAction, details: Sequence[str] = ()) -> tuple[str, str]:
    """The event status and a responder-ready message for an ended action; ``details`` (the script failures of
    :func:`airflow_provider_liveresponse.outcome.script_failures`) go before what to do."""
    where = f"action {action.id} on machine {action.machine_id} ({action.computer_dns_name or 'unknown host'})"
    if action.status == ActionStatus.SUCCEEDED and not action.failed_commands:
        return "success", f"Live response {where} succeeded"
    parts = [f"Live response {where} ended {action.status}"]
    for command in action.commands:
        if command.command_status == "Failed":
            errors = "; ".join(command.errors) or "no error text"
            parts.append(f"command {command.index} ({command.type} {command.command.target}) failed: {errors}")
    not_run = [c for c in action.commands if not c.command_status.is_final]
    if not_run:
        listed = ", ".join(f"{c.index} ({c.type} {c.command.target})" for c in not_run)
        parts.append(f"commands not run: {listed}")
    parts.extend(details)
    if action.status == ActionStatus.TIMEOUT:
        parts.append(
            "What to do: MDE gave up because the device stayed offline past the queue limit or a script ran "
            "past 10 minutes; check that the device is online and the script's run time, then rerun the task"
        )
    elif action.status == ActionStatus.CANCELLED:
        who = action.cancellation_requestor or "someone"
        why = f" ({action.cancellation_comment})" if action.cancellation_comment else ""
        parts.append(f"It was cancelled by {who}{why}. What to do: rerun the task if the collection is still needed")
    else:
        parts.append(
            "What to do: read the failed command's errors, fix the path, script or library file, then rerun "
            "the task (a rerun of a finished action submits a new one)"
        )
    return "error", ". ".join(parts)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class ScriptTranscript(BaseModel):
    """The JSON result of a ``RunScript`` command: exit code, output and errors."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    script_name: str | None = None
    exit_code: int | None = None
    script_output: str = ""
    script_errors: str = Field(default="", validation_alias=AliasChoices("script_errors", "script_error"))

    @field_validator("script_output", "script_errors", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value


class LibraryFile(_ApiModel):
    """A file in the live-response library, runnable with RunScript or put with PutFile."""

    file_name: str
    sha256: str | None = None
    description: str | None = None
    has_parameters: bool | None = None
    parameters_description: str | None = None
    creation_time: UtcDatetime | None = None
    last_updated_time: UtcDatetime | None = None
    created_by: str | None = None


class Machine(_ApiModel):
    """A device known to MDE (``/api/machines``)."""

    id: str
    computer_dns_name: str | None = None
    os_platform: str | None = None
    health_status: str | None = None
    last_seen: UtcDatetime | None = None
    machine_tags: list[str] = Field(default_factory=list)
    onboarding_status: str | None = None
    rbac_group_id: int | None = None
    rbac_group_name: str | None = None

    @field_validator("machine_tags", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class ApiErrorDetail(BaseModel):
    """The ``error`` object of an MDE error body."""

    model_config = ConfigDict(extra="allow")

    code: str = ""
    message: str = ""
    target: str | None = None


class ApiErrorBody(BaseModel):
    """An MDE error body: ``{"error": {"code": ..., "message": ..., "target": ...}}``."""

    model_config = ConfigDict(extra="allow")

    error: ApiErrorDetail
