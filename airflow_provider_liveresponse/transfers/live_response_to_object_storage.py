"""LiveResponseToObjectStorageOperator: stream the results of a finished MDE live-response action into object
storage, whole or not at all, with a chain-of-custody manifest.

Layout under the destination (every name made safe by :mod:`~airflow_provider_liveresponse.transfers.naming`)::

    {destination}/{machine_id}/{action_id}/{index}_{name}                    a GetFile's collected file
    {destination}/{machine_id}/{action_id}/{index}_{name}.gz                 ... with keep_compressed=True
    {destination}/{machine_id}/{action_id}/{index}_{script}.transcript.json  a RunScript's transcript
    {destination}/{machine_id}/{action_id}/manifest.json                     written last

While a result streams it lives under a temporary name (``.{final name}.{12 hex}.partial`` in the same
folder); it is moved to its final name only once complete and verified, so a failed or killed transfer leaves
no object under a final name, and the next run removes the leftovers and completes it. (So two tasks must not
copy the same action to the same destination at the same time: each would remove the other's temporary objects.)

The operator orchestrates; each concern has its own module: :mod:`.settings` (parameter checks),
:mod:`.destination` (local files and object stores), :mod:`.gzip_stream` (the copy), :mod:`.progress` (log
lines), :mod:`.manifest` (the manifest's model), :mod:`.transcript` (RunScript summaries), :mod:`.naming`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.constants import DEFAULT_CONN_ID
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError, LiveResponseError
from airflow_provider_liveresponse.transfers.destination import Destination, Target, shown
from airflow_provider_liveresponse.transfers.gzip_stream import Decoder, Streamed, copy_as_served, copy_decoded
from airflow_provider_liveresponse.transfers.manifest import (
    MANIFEST_NAME,
    MANIFEST_VERSION,
    MAX_MANIFEST_BYTES,
    ActionRecord,
    FileEntry,
    Generator,
    Manifest,
)
from airflow_provider_liveresponse.transfers.progress import Progress, human
from airflow_provider_liveresponse.transfers.settings import TransferSettings, check_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import timedelta

    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.hooks.result_reader import ResultReader
    from airflow_provider_liveresponse.models import ActionCommand, MachineAction

__all__ = ["DEFAULT_CHUNK_SIZE", "MANIFEST_NAME", "MANIFEST_VERSION", "LiveResponseToObjectStorageOperator"]

DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
#: The stream's decoder under its former name here (the fault benchmarks patch ``_Decoder.feed``).
_Decoder = Decoder
_QUERY = re.compile(r"\?[^\s'\"]*")


class LiveResponseToObjectStorageOperator(BaseOperator):
    """Copy each result of a finished live-response action into object storage, with a manifest.

    GetFile results are stored decompressed by default (MDE serves them gzip-compressed), RunScript
    transcripts as returned. Each result streams through a temporary name and is moved to its final name only
    once complete and verified (length, Content-MD5, gzip CRC and length, stored size). The task returns the
    manifest (never a download link) and pushes the RunScript outcomes under the XCom key ``transcripts``.

    :param action_id: the machine action whose results to copy (templated), typically
        ``"{{ ti.xcom_pull(task_ids='collect', key='action_id') }}"``.
    :param destination: where to store them: a URL (``file:///evidence``, ``s3://bucket/prefix``,
        ``abfs://container/prefix``, ``gs://...``; ``s3://conn_id@bucket/prefix`` names the connection) or an
        ``ObjectStoragePath`` (templated). Results go under ``{machine_id}/{action_id}/`` beneath it.
    :param dest_conn_id: the destination's Airflow connection, when the URL does not name one.
    :param command_indexes: the commands to copy (templated); default: every command that produced a result.
    :param overwrite: replace an existing object whose content differs. When False (the default) an existing
        object with the same SHA-256 is kept (an idempotent rerun) and one with a different SHA-256 fails the
        task, changing nothing. ``manifest.json`` is rewritten by every successful run.
    :param keep_compressed: store GetFile results as served (``.gz``) instead of decompressed; the manifest
        records the digests of both forms either way (but see ``content_digests``).
    :param content_digests: with ``keep_compressed=True``, also decompress each blob as it streams, to check its
        gzip CRC and length and record the collected file's size, SHA-256 and MD5 (the manifest's ``content``).
        ``False`` stores the blob at the speed of a plain copy (its length and Content-MD5 still checked, its
        digests recorded) and leaves ``content`` null. The collected file, when it is what is stored, is always
        hashed.
    :param mde_conn_id: the ``mde_live_response`` connection.
    :param chunk_size: bytes read from the blob host per step (memory use is a few times this).
    :param max_resumes: resumes after broken connections allowed per result before failing.
    :param max_retry_wait: seconds one MDE API call may wait out 429s and transient errors.
    :param progress_interval: seconds between progress lines in the task log (a line is also logged at each
        further tenth of a large result, at most every 5 seconds).
    :param transcript_lines: how many first lines of a transcript's output and errors go to the log and XCom.

    Durations (``max_retry_wait``, ``progress_interval``) are seconds or a ``timedelta``. Every parameter is
    checked when the task starts, before any API call; an error names the field. The attribute ``clock``
    (``time.monotonic``) times the progress lines and the log: a test hands in its own.
    """

    template_fields: Sequence[str] = ("action_id", "destination", "dest_conn_id", "command_indexes")
    ui_color = "#e8f1d5"

    def __init__(
        self,
        *,
        action_id: str,
        destination: str | ObjectStoragePath,
        dest_conn_id: str | None = None,
        command_indexes: Sequence[int] | None = None,
        overwrite: bool = False,
        keep_compressed: bool = False,
        content_digests: bool = True,
        mde_conn_id: str = DEFAULT_CONN_ID,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_resumes: int = 8,
        max_retry_wait: float | timedelta = 600.0,
        progress_interval: float | timedelta = 30.0,
        transcript_lines: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action_id = action_id
        self.destination = destination
        self.dest_conn_id = dest_conn_id
        self.command_indexes = command_indexes
        self.overwrite = overwrite
        self.keep_compressed = keep_compressed
        self.content_digests = content_digests
        self.mde_conn_id = mde_conn_id
        self.chunk_size = chunk_size
        self.max_resumes = max_resumes
        self.max_retry_wait = max_retry_wait
        self.progress_interval = progress_interval
        self.transcript_lines = transcript_lines
        self.clock: Callable[[], float] = time.monotonic
        self._settings: TransferSettings | None = None
        self._current_temp: Target | None = None

    # -- parameters (checked before any API call) -------------------------------------------------------------

    def _checked(self) -> TransferSettings:
        """Every parameter, checked (see :mod:`.settings`); the error names the task and the field."""
        try:
            return check_settings(self)
        except LiveResponseConfigError as exc:
            raise type(exc)(f"Task {self.task_id}: {exc}") from None

    @property
    def _run(self) -> TransferSettings:
        """The parameters checked at the start of this run (checked now when called outside a run)."""
        return self._settings if self._settings is not None else self._checked()

    def _hook(self) -> LiveResponseHook:
        from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

        return LiveResponseHook(self._run.mde_conn_id, max_retry_wait=self._run.max_retry_wait)

    # -- execute ----------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        self._settings = settings = self._checked()
        hook = self._hook()
        action = hook.get_machine_action(settings.action_id)
        commands = self._select(action, settings.command_indexes)
        machine_id = validation.machine_id(action.machine_id, "the action's machineId")
        folder = Destination.at(settings.destination / machine_id / action.id)
        self.log.info(
            "Copying %d result(s) of action %s on machine %s (%s) to %s",
            len(commands),
            action.id,
            machine_id,
            action.computer_dns_name or "unknown host",
            shown(folder.path),
        )
        self._prepare(folder, action)
        earlier = _earlier_manifest(folder)
        entries: list[FileEntry] = []
        transcripts: list[dict[str, Any]] = []
        for command in commands:
            entry, transcript = self._copy_command(hook, folder, action, command, earlier)
            entries.append(entry)
            if transcript is not None:
                transcripts.append(transcript)
        manifest = Manifest(
            manifest_version=MANIFEST_VERSION,
            generator=Generator.this_package(),
            written_at=datetime.now(UTC),
            location=shown(folder.path),
            keep_compressed=settings.keep_compressed,
            action=ActionRecord.of(action, machine_id),
            files=entries,
        )
        folder.write_atomically(MANIFEST_NAME, manifest.to_bytes())
        stored = sum(1 for e in entries if e.outcome == "stored")
        self.log.info(
            "Action %s: %d file(s) stored, %d already present with the same SHA-256; manifest at %s",
            action.id,
            stored,
            len(entries) - stored,
            shown(folder.child(MANIFEST_NAME)),
        )
        ti: Any = context.get("ti")
        if ti is not None:
            ti.xcom_push(key="transcripts", value=transcripts)
        return manifest.to_json_dict()

    def _select(self, action: MachineAction, indexes: list[int] | None) -> list[ActionCommand]:
        where = f"action {action.id} on machine {action.machine_id} ({action.computer_dns_name or 'unknown host'})"
        if not action.is_terminal:
            raise LiveResponseError(
                f"Task {self.task_id}: {where} is still {action.status}; its results are not final. What to do: "
                "run this task after LiveResponseOperator (wait_for_completion=True) or MachineActionSensor"
            )
        by_index = {c.index: c for c in action.commands}
        if indexes is None:
            chosen = [c for c in action.commands if c.has_result]
            if not chosen:
                listed = ", ".join(
                    f"{c.index} ({c.type} {c.command.target}: {c.command_status})" for c in action.commands
                )
                raise LiveResponseError(
                    f"Task {self.task_id}: {where} ended {action.status} with no command result to copy "
                    f"(commands: {listed or 'none'}). What to do: check the commands' errors in the Defender portal"
                )
            return sorted(chosen, key=lambda c: c.index)
        chosen = []
        for index in indexes:
            command = by_index.get(index)
            if command is None:
                raise LiveResponseError(
                    f"Task {self.task_id}: command_indexes names {index}, but {where} has commands "
                    f"{sorted(by_index)}. What to do: fix command_indexes"
                )
            if not command.has_result:
                raise LiveResponseError(
                    f"Task {self.task_id}: command {index} ({command.type} {command.command.target}) of {where} has "
                    f"no result (status {command.command_status}; errors: {'; '.join(command.errors) or 'none'}). "
                    "Only completed GetFile and RunScript commands have one. What to do: leave it out of "
                    "command_indexes"
                )
            chosen.append(command)
        return chosen

    def _prepare(self, folder: Destination, action: MachineAction) -> None:
        """Make the action's folder usable and remove what an interrupted run left there."""
        try:
            folder.prepare()
            leftovers = folder.remove_leftovers()
        except Exception as exc:
            raise LiveResponseError(
                f"Task {self.task_id}: cannot use {shown(folder.path)} for the results of action {action.id} "
                f"({type(exc).__name__}: {_scrub(str(exc))}); nothing was downloaded. What to do: check the "
                "destination's connection, bucket or container and permissions, then rerun the task"
            ) from None
        for leftover in leftovers:
            self.log.warning("Removed %s, left by an interrupted earlier transfer", leftover)

    # -- one command ------------------------------------------------------------------------------------------

    def _copy_command(
        self,
        hook: LiveResponseHook,
        folder: Destination,
        action: MachineAction,
        command: ActionCommand,
        earlier: Manifest | None,
    ) -> tuple[FileEntry, dict[str, Any] | None]:
        """Copy one result through a temporary name to its final name; its manifest entry and transcript."""
        from airflow_provider_liveresponse.transfers.transcript import summarise

        described = (
            f"command {command.index} ({command.type} {command.command.target}) of action {action.id} on machine "
            f"{action.machine_id} ({action.computer_dns_name or 'unknown host'})"
        )
        copied = self._download(hook, folder, action, command, described)
        self.log.info(
            "%s %s: %s, SHA-256 %s (%.1f s, %d link(s), %d resume(s))",
            "Stored" if copied.outcome == "stored" else "Kept the identical",
            shown(copied.final.path),
            human(copied.streamed.stored.size),
            copied.streamed.stored.sha256,
            copied.elapsed,
            copied.links_requested,
            copied.resumes,
        )
        if command.type != "RunScript":
            return self._entry(command, copied, earlier), None
        transcript = summarise(self.log, command, described, copied.streamed.transcript, self._run.transcript_lines)
        return self._entry(command, copied, earlier, exit_code=transcript.get("exit_code")), transcript

    def _download(
        self, hook: LiveResponseHook, folder: Destination, action: MachineAction, command: ActionCommand, described: str
    ) -> _Copied:
        """Stream the result into a temporary object, check it and publish it; nothing partial is left behind."""
        is_script = command.type == "RunScript"
        base = _base_name(command)
        temp = folder.temporary(base)
        self._current_temp = temp
        started = self.clock()
        try:
            with hook.open_result(action.id, command.index, max_resumes=self._run.max_resumes) as reader:
                result = self._stream(reader, temp, described, keep_transcript=is_script)
            final = folder.target(self._final_name(base, command, reader.file_name, result))
            _check_stored_size(temp, result, described)
            outcome = self._publish(temp, final, result.stored.sha256, described)
        except LiveResponseError:
            temp.remove_quietly()
            self.log.error("Copying %s failed; nothing was stored under its final name", described)
            raise
        except Exception as exc:
            temp.remove_quietly()
            raise _copy_failure(exc, described, folder) from None
        except BaseException:
            temp.remove_quietly()
            raise
        finally:
            self._current_temp = None
        return _Copied(
            final,
            outcome,
            result,
            reader.file_name,
            reader.content_type,
            reader.links_requested,
            reader.resumes,
            self.clock() - started,
        )

    def _final_name(self, base: str, command: ActionCommand, served_name: str | None, result: Streamed) -> str:
        """The stored name: ``.gz`` added to a GetFile kept compressed; the served name when the path has none."""
        from airflow_provider_liveresponse.transfers.naming import getfile_name

        if command.type == "RunScript":
            return base
        name = base + ".gz" if result.gzip and self._run.keep_compressed else base
        if not command.command.target.strip() and served_name:
            name = getfile_name(command.index, "", served_name) + (".gz" if name.endswith(".gz") else "")
        return name

    def _stream(self, reader: ResultReader, temp: Target, described: str, *, keep_transcript: bool) -> Streamed:
        """Read the blob to its end, writing the stored form to ``temp``; the reader hashes the blob as served,
        the stream the decompressed content (each beside the copy, in a worker thread once it is large)."""
        settings = self._run
        store_blob = settings.keep_compressed and not keep_transcript
        progress = Progress(self.log, described, reader.size, settings.progress_interval, self.clock)
        with temp.open_write() as sink:
            if store_blob and not settings.content_digests:
                result = copy_as_served(reader, sink, chunk_size=settings.chunk_size, progress=progress)
            else:
                result = copy_decoded(
                    reader,
                    sink,
                    described=described,
                    chunk_size=settings.chunk_size,
                    store_blob=store_blob,
                    keep_transcript=keep_transcript,
                    progress=progress,
                )
        progress.done(reader.bytes_read)
        return result

    def _publish(
        self, temp: Target, final: Target, sha256: str, described: str
    ) -> Literal["stored", "already_present"]:
        """Move ``temp`` to ``final``; returns ``stored`` or ``already_present`` (identical, kept)."""
        if final.exists():
            existing = final.sha256()
            if existing == sha256:
                temp.remove_quietly()
                return "already_present"
            if not self._run.overwrite:
                raise LiveResponseError(
                    f"{described}: {shown(final.path)} already exists with SHA-256 {existing}, but the result now "
                    f"downloaded has SHA-256 {sha256}; nothing was changed. What to do: compare the two (the existing "
                    "one may come from another action or have been altered), then set overwrite=True to replace it "
                    "or choose another destination"
                )
            self.log.warning("Replacing %s (SHA-256 %s; overwrite=True)", shown(final.path), existing)
        temp.move_to(final)
        return "stored"

    def _entry(
        self, command: ActionCommand, copied: _Copied, earlier: Manifest | None, exit_code: int | None = None
    ) -> FileEntry:
        """The manifest entry of one copied result; an identical object already present keeps its first
        retrieval time."""
        result, name = copied.streamed, copied.final.name
        retrieved_at = datetime.now(UTC)
        before = earlier.entry(name) if earlier is not None else None
        if copied.outcome == "already_present" and before is not None and before.sha256 == result.stored.sha256:
            retrieved_at = before.retrieved_at
        return FileEntry.of(
            command,
            result,
            copied,
            path=name,
            uri=shown(copied.final.path),
            outcome=copied.outcome,
            retrieved_at=retrieved_at,
            keep_compressed=self._run.keep_compressed,
            exit_code=exit_code,
        )

    def on_kill(self) -> None:
        """Remove the temporary object of the transfer in progress (a killed transfer keeps no partial)."""
        temp = self._current_temp
        if temp is not None:
            temp.remove_quietly()


@dataclass(frozen=True)
class _Copied:
    """One result copied and published: where, with what outcome, the stream's digests and the reader's facts."""

    final: Target
    outcome: Literal["stored", "already_present"]
    streamed: Streamed
    file_name: str | None
    content_type: str | None
    links_requested: int
    resumes: int
    elapsed: float


def _base_name(command: ActionCommand) -> str:
    from airflow_provider_liveresponse.transfers.naming import getfile_name, transcript_name

    target = command.command.target
    return (
        transcript_name(command.index, target) if command.type == "RunScript" else getfile_name(command.index, target)
    )


def _check_stored_size(temp: Target, result: Streamed, described: str) -> None:
    """The destination must hold every byte written (a store that lost data fails the copy)."""
    stored_size = temp.size()
    if stored_size != result.stored.size:
        raise LiveResponseError(
            f"{described}: the destination holds {stored_size} bytes of the {result.stored.size} written "
            f"to {shown(temp.path)}; the store lost data. Nothing was kept under the final name: rerun "
            "the task"
        )


def _copy_failure(exc: Exception, described: str, folder: Destination) -> LiveResponseError:
    """The error for a copy that failed outside the provider's own checks: the blob host's side or the store's."""
    if type(exc).__module__.split(".")[0] in ("requests", "urllib3"):
        where = "the result could not be read from MDE's blob storage"
        hint = "check the network path to MDE's blob storage (proxy, firewall), then rerun the task"
    else:
        where = f"writing to {shown(folder.path)} failed"
        hint = "check the destination's connection, bucket or container and permissions, then rerun the task"
    return LiveResponseError(
        f"Copying {described}: {where} ({type(exc).__name__}: {_scrub(str(exc))}). Nothing was kept under "
        f"the final name. What to do: {hint}"
    )


def _earlier_manifest(folder: Destination) -> Manifest | None:
    """The manifest an earlier run wrote, or None if there is none or it is not a valid manifest."""
    raw = folder.read(MANIFEST_NAME, MAX_MANIFEST_BYTES)
    if raw is None:
        return None
    try:
        return Manifest.from_bytes(raw)
    except ValueError:
        return None


def _scrub(text: str) -> str:
    """``text`` without URL query strings (where a result link carries its SAS signature)."""
    return _QUERY.sub("?<query removed>", text)
