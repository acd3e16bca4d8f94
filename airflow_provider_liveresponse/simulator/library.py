"""The live-response library (files for PutFile and RunScript) and what each seeded script does on a device.

Seeded library (``createdBy`` ``seed@contoso.com``):

- ``triage.ps1``: runs 20 s, exit 0, writes ``C:\\Windows\\Temp\\triage.zip`` (1.5 MiB) on the device.
- ``minidump.ps1``: ``Args`` = a process name; runs 30 s, exit 0, writes
  ``C:\\Windows\\TEMP\\<Args>.dmp.zip`` (8 MiB); its output holds a NUL character and its transcript spells
  the error key ``script_errors``. Without ``Args`` it exits 1 (the command fails).
- ``fail.ps1``: runs 5 s, exits 1 with text on stderr: the command and the action fail.
- ``slow.ps1``: never ends: the command fails and the action ends ``TimeOut`` after 10 minutes.
- ``sleep.ps1``: ``Args`` = seconds to run (default 60), exit 0; more than 10 minutes times out.
- ``collect.sh``: Linux triage, runs 10 s, writes ``/tmp/collect.tar.gz`` (256 KiB).
- ``procdump64.exe``: a tool for PutFile.
Any other library script runs 5 s and exits 0. RunScript of a file that is not in the library fails.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

SEED_AUTHOR = "seed@contoso.com"
LINUX_TRIAGE_OUTPUT = "/tmp/collect.tar.gz"  # noqa: S108 - a path on the simulated device
TRIAGE_OUTPUT = "C:\\Windows\\Temp\\triage.zip"


@dataclass
class LibraryFile:
    """A file in the live-response library."""

    file_name: str
    sha256: str
    size: int
    description: str
    has_parameters: bool
    parameters_description: str | None
    creation_time: float
    last_updated_time: float
    created_by: str

    def to_entity(self, format_datetime: Any) -> dict[str, Any]:
        """The file as the API's library entity."""
        return {
            "fileName": self.file_name,
            "sha256": self.sha256,
            "description": self.description,
            "creationTime": format_datetime(self.creation_time),
            "createdBy": self.created_by,
            "hasParameters": self.has_parameters,
            "parametersDescription": self.parameters_description,
            "lastUpdatedTime": format_datetime(self.last_updated_time),
            "lastUpdatedBy": self.created_by,
        }


@dataclass(frozen=True)
class ScriptRun:
    """The outcome of one RunScript: how long it runs (None: forever), its transcript and the files it writes."""

    duration: float | None
    exit_code: int
    output: str
    errors: str
    error_key: str = "script_error"
    creates: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    @property
    def failed(self) -> bool:
        """A non-zero exit code fails the command."""
        return self.exit_code != 0


_SEED_SCRIPTS: dict[str, tuple[str, bool, str | None, str]] = {
    "triage.ps1": ("Collects a triage package to C:\\Windows\\Temp\\triage.zip", False, None, "Compress-Archive"),
    "minidump.ps1": ("Dumps a process to C:\\Windows\\TEMP\\<name>.dmp.zip", True, "Process name", "procdump -ma"),
    "fail.ps1": ("Always fails with exit code 1", False, None, "exit 1"),
    "slow.ps1": ("Never ends (times out after 10 minutes)", False, None, "while ($true) {}"),
    "sleep.ps1": ("Sleeps for the given number of seconds", True, "Seconds to sleep", "Start-Sleep $args[0]"),
    "collect.sh": ("Collects Linux triage to /tmp/collect.tar.gz", False, None, "tar czf /tmp/collect.tar.gz"),
    "procdump64.exe": ("Sysinternals ProcDump (simulated)", False, None, "MZ"),
}


def seed_library(now: float) -> dict[str, LibraryFile]:
    """The seeded library, keyed by lower-cased file name."""
    files: dict[str, LibraryFile] = {}
    for name, (description, has_parameters, parameters, body) in _SEED_SCRIPTS.items():
        content = f"# {name}: {description}\n{body}\n".encode()
        files[name.lower()] = LibraryFile(
            file_name=name,
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
            description=description,
            has_parameters=has_parameters,
            parameters_description=parameters,
            creation_time=now - 30 * 86400,
            last_updated_time=now - 30 * 86400,
            created_by=SEED_AUTHOR,
        )
    return files


def run_script(name: str, args: str | None, timeout: float) -> ScriptRun:
    """What running library script ``name`` with ``args`` does (a duration of None runs past ``timeout``)."""
    lowered = name.lower()
    if lowered == "triage.ps1":
        return ScriptRun(
            duration=20,
            exit_code=0,
            output=f"Collecting triage...\nWrote {TRIAGE_OUTPUT}\n",
            errors="",
            creates=((TRIAGE_OUTPUT, 1536 * 1024),),
        )
    if lowered == "minidump.ps1":
        if not args:
            return ScriptRun(5, 1, "", "minidump.ps1: a process name is required in Args\n", "script_errors")
        target = f"C:\\Windows\\TEMP\\{args.strip()}.dmp.zip"
        return ScriptRun(
            duration=30,
            exit_code=0,
            output=f"ProcDump v11.0 - Sysinternals process dump utility\x00\nDump 1 written: {target}\n",
            errors="",
            error_key="script_errors",
            creates=((target, 8 * 1024 * 1024),),
        )
    if lowered == "fail.ps1":
        return ScriptRun(5, 1, "Starting...\n", "fail.ps1: simulated failure (exit code 1)\n", "script_errors")
    if lowered == "slow.ps1":
        return ScriptRun(None, 0, "", "")
    if lowered == "sleep.ps1":
        try:
            seconds = float(args) if args else 60.0
        except ValueError:
            seconds = 60.0
        seconds = max(seconds, 0.0)
        return ScriptRun(seconds if seconds <= timeout else None, 0, f"Slept {seconds:g} seconds\n", "")
    if lowered == "collect.sh":
        return ScriptRun(10, 0, f"Collected {LINUX_TRIAGE_OUTPUT}\n", "", creates=((LINUX_TRIAGE_OUTPUT, 256 * 1024),))
    return ScriptRun(5, 0, f"Executed {name}\n", "")
