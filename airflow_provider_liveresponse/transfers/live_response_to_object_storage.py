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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow.sdk import BaseOperator

from airflow_provider_liveresponse.constants import DEFAULT_CONN_ID
from airflow_provider_liveresponse.digests import Digests, StreamDigest

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.hooks.result_reader import ResultReader
    from airflow_provider_liveresponse.models import ActionCommand, MachineAction

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
_MIN_CHUNK_SIZE = 64 * 1024
_MAX_CHUNK_SIZE = 256 * 1024 * 1024
#: Bytes of decompressed output produced per step: bounds memory even for a highly compressible blob.
_INFLATE_STEP = 1024 * 1024
#: A transcript larger than this is stored but not parsed for the log and XCom.
_MAX_TRANSCRIPT_BYTES = 16 * 1024 * 1024
_TRANSCRIPT_LINE_CHARS = 300
_GZIP_MAGIC = b"\x1f\x8b"
_LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
_PARTIAL = re.compile(r"^\.(?P<final>.+)\.[0-9a-f]{12}\.partial$")


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
        max_retry_wait: float = 600.0,
        progress_interval: float = 30.0,
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
        self._current_temp: _Target | None = None

    # -- validation (before any API call) ----------------------------------------------------------------

    def _config_error(self, message: str) -> Exception:
        from airflow_provider_liveresponse.exceptions import LiveResponseConfigError

        return LiveResponseConfigError(f"Task {self.task_id}: {message}")

    def _validated_action_id(self) -> str:
        from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
        from airflow_provider_liveresponse.hooks.live_response import validate_action_id

        try:
            return validate_action_id(self.action_id)
        except LiveResponseConfigError as exc:
            raise self._config_error(str(exc)) from None

    def _validated_indexes(self) -> list[int] | None:
        indexes: Any = self.command_indexes
        if indexes is None:
            return None
        if isinstance(indexes, str):
            try:
                indexes = json.loads(indexes)
            except ValueError:
                raise self._config_error(
                    f"command_indexes rendered to {indexes!r}, not a list of command indexes such as [0, 2]"
                ) from None
        if isinstance(indexes, int) and not isinstance(indexes, bool):
            indexes = [indexes]
        if not isinstance(indexes, (list, tuple)) or not indexes:
            raise self._config_error(
                f"command_indexes must be a non-empty list of command indexes such as [0, 2], got {indexes!r}"
            )
        for index in indexes:
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise self._config_error(
                    f"command_indexes holds {index!r}: each must be a command index (an integer from 0)"
                )
        if len(set(indexes)) != len(indexes):
            raise self._config_error(f"command_indexes {list(indexes)} names a command twice")
        return sorted(indexes)

    def _validated_settings(self) -> None:
        for name in ("keep_compressed", "content_digests", "overwrite"):
            if not isinstance(getattr(self, name), bool):
                raise self._config_error(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not self.content_digests and not self.keep_compressed:
            raise self._config_error(
                "content_digests=False applies only with keep_compressed=True: the collected file is what is "
                "stored here, and it is always hashed. Remove content_digests=False, or set keep_compressed=True"
            )
        if not isinstance(self.chunk_size, int) or not _MIN_CHUNK_SIZE <= self.chunk_size <= _MAX_CHUNK_SIZE:
            raise self._config_error(
                f"chunk_size {self.chunk_size!r} must be an integer from {_MIN_CHUNK_SIZE} to {_MAX_CHUNK_SIZE} bytes"
            )
        if not isinstance(self.max_resumes, int) or self.max_resumes < 0:
            raise self._config_error(f"max_resumes {self.max_resumes!r} must be a non-negative integer")
        if self.progress_interval <= 0:
            raise self._config_error(f"progress_interval {self.progress_interval!r} must be positive")
        if not isinstance(self.transcript_lines, int) or self.transcript_lines < 0:
            raise self._config_error(f"transcript_lines {self.transcript_lines!r} must be a non-negative integer")

    def _validated_destination(self) -> ObjectStoragePath:
        from airflow.sdk import ObjectStoragePath

        destination: Any = self.destination
        if isinstance(destination, ObjectStoragePath):
            path = destination
            if self.dest_conn_id and not _conn_id(path):
                path = ObjectStoragePath(str(path), conn_id=self.dest_conn_id)
        elif isinstance(destination, (str, os.PathLike)) and str(destination).strip():
            text = str(destination).strip()
            if "://" not in text and not text.startswith("/"):
                raise self._config_error(
                    f"destination {text!r} is neither a URL nor an absolute path: use file:///evidence, "
                    "s3://bucket/prefix, abfs://container/prefix or gs://bucket/prefix"
                )
            if "?" in text or "#" in text:
                raise self._config_error(
                    f"destination {text!r} holds '?' or '#': give the bucket and prefix only, and put "
                    "credentials in an Airflow connection (dest_conn_id or scheme://conn_id@bucket/prefix)"
                )
            try:
                path = (
                    ObjectStoragePath(text, conn_id=self.dest_conn_id) if self.dest_conn_id else ObjectStoragePath(text)
                )
            except ValueError as exc:
                raise self._config_error(
                    f"no file system is registered for {text.split('://', 1)[0]}:// (destination {text!r}: {exc}): "
                    "install the provider that brings it (s3: apache-airflow-providers-amazon[s3fs]; abfs: "
                    "apache-airflow-providers-microsoft-azure; gs: apache-airflow-providers-google)"
                ) from None
        else:
            raise self._config_error(
                f"destination must be a URL such as s3://bucket/evidence or an ObjectStoragePath, got {destination!r}"
            )
        protocol = path.protocol or "file"
        if protocol not in _LOCAL_PROTOCOLS:
            from airflow.sdk.io import has_fs

            if not has_fs(protocol):
                raise self._config_error(
                    f"no file system is registered for {protocol}:// (destination {_shown(path)}): install the "
                    "provider that brings it (s3: apache-airflow-providers-amazon[s3fs]; abfs: "
                    "apache-airflow-providers-microsoft-azure; gs: apache-airflow-providers-google)"
                )
            if not path.path.strip("/"):
                raise self._config_error(f"destination {_shown(path)} names no bucket or container")
        return path

    # -- execute ------------------------------------------------------------------------------------------

    def _hook(self) -> LiveResponseHook:
        from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

        return LiveResponseHook(self.mde_conn_id, max_retry_wait=self.max_retry_wait)

    def execute(self, context: Context) -> dict[str, Any]:
        action_id = self._validated_action_id()
        indexes = self._validated_indexes()
        self._validated_settings()
        root = self._validated_destination()

        hook = self._hook()
        action = hook.get_machine_action(action_id)
        commands = self._select(action, indexes)
        from airflow_provider_liveresponse.hooks.live_response import validate_machine_id

        machine_id = validate_machine_id(action.machine_id, "the action's machineId")
        folder = _Folder(root / machine_id / action.id)
        self.log.info(
            "Copying %d result(s) of action %s on machine %s (%s) to %s",
            len(commands),
            action.id,
            machine_id,
            action.computer_dns_name or "unknown host",
            _shown(folder.path),
        )
        try:
            folder.prepare()
            leftovers = folder.remove_leftovers()
        except Exception as exc:
            from airflow_provider_liveresponse.exceptions import LiveResponseError

            raise LiveResponseError(
                f"Task {self.task_id}: cannot use {_shown(folder.path)} for the results of action {action.id} "
                f"({type(exc).__name__}: {_scrub(str(exc))}); nothing was downloaded. What to do: check the "
                "destination's connection, bucket or container and permissions, then rerun the task"
            ) from None
        for leftover in leftovers:
            self.log.warning("Removed %s, left by an interrupted earlier transfer", leftover)
        earlier = folder.read_manifest()
        earlier_files = {f.get("path"): f for f in earlier.get("files", [])} if earlier else {}

        entries: list[dict[str, Any]] = []
        transcripts: list[dict[str, Any]] = []
        for command in commands:
            entry, transcript = self._copy_command(hook, folder, action, command, earlier_files)
            entries.append(entry)
            if transcript is not None:
                transcripts.append(transcript)

        manifest = _manifest(action, machine_id, folder, entries, self.keep_compressed)
        folder.write_atomically(MANIFEST_NAME, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
        stored = sum(1 for e in entries if e["outcome"] == "stored")
        self.log.info(
            "Action %s: %d file(s) stored, %d already present with the same SHA-256; manifest at %s",
            action.id,
            stored,
            len(entries) - stored,
            _shown(folder.child(MANIFEST_NAME)),
        )
        ti: Any = context.get("ti")
        if ti is not None:
            ti.xcom_push(key="transcripts", value=transcripts)
        return manifest

    def _select(self, action: MachineAction, indexes: list[int] | None) -> list[ActionCommand]:
        from airflow_provider_liveresponse.exceptions import LiveResponseError

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

    def _copy_command(
        self,
        hook: LiveResponseHook,
        folder: _Folder,
        action: MachineAction,
        command: ActionCommand,
        earlier_files: dict[Any, dict[str, Any]],
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        from airflow_provider_liveresponse.exceptions import LiveResponseError
        from airflow_provider_liveresponse.transfers.naming import getfile_name, transcript_name

        is_script = command.type == "RunScript"
        described = (
            f"command {command.index} ({command.type} {command.command.target}) of action {action.id} on machine "
            f"{action.machine_id} ({action.computer_dns_name or 'unknown host'})"
        )
        base = (
            transcript_name(command.index, command.command.target)
            if is_script
            else getfile_name(command.index, command.command.target)
        )
        temp = folder.temporary(base)
        self._current_temp = temp
        started = time.monotonic()
        try:
            with hook.open_result(action.id, command.index, max_resumes=self.max_resumes) as reader:
                result = self._stream(reader, temp, described, keep_transcript=is_script)
            gzip_blob = bool(result.gzip)
            name = base + ".gz" if gzip_blob and self.keep_compressed and not is_script else base
            if not is_script and not command.command.target.strip() and reader.file_name:
                name = getfile_name(command.index, "", reader.file_name) + (".gz" if name.endswith(".gz") else "")
            stored_size = temp.size()
            if stored_size != result.stored.size:
                raise LiveResponseError(
                    f"{described}: the destination holds {stored_size} bytes of the {result.stored.size} written "
                    f"to {_shown(temp.path)}; the store lost data. Nothing was kept under the final name: rerun "
                    "the task"
                )
            final = folder.target(name)
            outcome = self._publish(temp, final, result.stored.sha256, described)
        except LiveResponseError:
            temp.remove_quietly()
            self.log.error("Copying %s failed; nothing was stored under its final name", described)
            raise
        except Exception as exc:
            temp.remove_quietly()
            if type(exc).__module__.split(".")[0] in ("requests", "urllib3"):
                where = "the result could not be read from MDE's blob storage"
                hint = "check the network path to MDE's blob storage (proxy, firewall), then rerun the task"
            else:
                where = f"writing to {_shown(folder.path)} failed"
                hint = "check the destination's connection, bucket or container and permissions, then rerun the task"
            raise LiveResponseError(
                f"Copying {described}: {where} ({type(exc).__name__}: {_scrub(str(exc))}). Nothing was kept under "
                f"the final name. What to do: {hint}"
            ) from None
        except BaseException:
            temp.remove_quietly()
            raise
        finally:
            self._current_temp = None
        elapsed = time.monotonic() - started
        self.log.info(
            "%s %s: %s, SHA-256 %s (%.1f s, %d link(s), %d resume(s))",
            "Stored" if outcome == "stored" else "Kept the identical",
            _shown(final.path),
            _human(result.stored.size),
            result.stored.sha256,
            elapsed,
            reader.links_requested,
            reader.resumes,
        )
        earlier = earlier_files.get(name)
        retrieved_at = _now()
        if outcome == "already_present" and earlier and earlier.get("sha256") == result.stored.sha256:
            retrieved_at = earlier.get("retrieved_at") or retrieved_at
        entry: dict[str, Any] = {
            "path": name,
            "uri": _shown(final.path),
            "size": result.stored.size,
            "sha256": result.stored.sha256,
            "md5": result.stored.md5,
            "stored_form": (
                "transcript" if is_script else "compressed" if gzip_blob and self.keep_compressed else "collected_file"
            ),
            "outcome": outcome,
            "retrieved_at": retrieved_at,
            "command": {
                "index": command.index,
                "type": command.type,
                "device_path": None if is_script else command.command.target,
                "script_name": command.command.target if is_script else None,
                "script_args": command.command.param("Args") if is_script else None,
                "status": str(command.command_status),
                "start_time": _iso(command.start_time),
                "end_time": _iso(command.end_time),
            },
            "blob": {
                "file_name": reader.file_name,
                "content_type": reader.content_type,
                "compression": "gzip" if gzip_blob else "none",
                "size": result.blob.size,
                "sha256": result.blob.sha256,
                "md5": result.blob.md5,
            },
            "content": (
                {"size": result.content.size, "sha256": result.content.sha256, "md5": result.content.md5}
                if result.content is not None
                else None
            ),
            "transfer": {"links_requested": reader.links_requested, "resumes": reader.resumes},
        }
        transcript = None
        if is_script:
            transcript = self._surface_transcript(command, described, result.transcript)
            entry["exit_code"] = transcript.get("exit_code")
        return entry, transcript

    def _stream(self, reader: ResultReader, temp: _Target, described: str, *, keep_transcript: bool) -> _Streamed:
        """Read the blob to its end, writing the stored form to ``temp``; the reader hashes the blob as served,
        this loop the decompressed content (each beside the copy, in a worker thread once it is large)."""
        from airflow_provider_liveresponse.exceptions import ResultIntegrityError

        store_blob = self.keep_compressed and not keep_transcript
        if store_blob and not self.content_digests:
            return self._copy_as_served(reader, temp, described)
        content = StreamDigest()
        transcript = bytearray() if keep_transcript else None
        decoder = _Decoder()
        progress = _Progress(self.log, described, reader.size, self.progress_interval)
        buffer = bytearray(self.chunk_size)
        view = memoryview(buffer)
        written = 0
        try:
            with content, temp.open_write() as sink:
                while count := reader.readinto(buffer):
                    chunk = view[:count]
                    if store_blob:
                        sink.write(chunk)
                        written += count
                    for piece in decoder.feed(chunk):
                        content.update(piece)
                        if not store_blob:
                            sink.write(piece)
                            written += len(piece)
                        if transcript is not None and len(transcript) <= _MAX_TRANSCRIPT_BYTES:
                            transcript.extend(piece)
                    progress.update(reader.bytes_read)
                for piece in decoder.finish():
                    content.update(piece)
                    if not store_blob:
                        sink.write(piece)
                        written += len(piece)
                    if transcript is not None and len(transcript) <= _MAX_TRANSCRIPT_BYTES:
                        transcript.extend(piece)
                result = content.digests()
        except zlib.error as exc:
            raise ResultIntegrityError(
                f"{described}: the blob is not a complete gzip stream ({exc}) although its length and MD5 matched; "
                "MDE served a damaged result. What to do: rerun the task; if it persists, collect the file again "
                "with a new live-response action"
            ) from None
        progress.done(reader.bytes_read)
        blob = Digests(reader.bytes_read, reader.sha256, reader.md5)
        return _Streamed(
            gzip=bool(decoder.gzip),
            blob=blob,
            content=result,
            stored=blob if store_blob else result,
            written=written,
            transcript=bytes(transcript) if transcript is not None else None,
        )

    def _copy_as_served(self, reader: ResultReader, temp: _Target, described: str) -> _Streamed:
        """Store the blob as served, not decompressed (``keep_compressed=True, content_digests=False``)."""
        progress = _Progress(self.log, described, reader.size, self.progress_interval)
        buffer = bytearray(self.chunk_size)
        view = memoryview(buffer)
        head = b""
        written = 0
        with temp.open_write() as sink:
            while count := reader.readinto(buffer):
                if len(head) < len(_GZIP_MAGIC):
                    head += bytes(view[: min(count, len(_GZIP_MAGIC) - len(head))])
                sink.write(view[:count])
                written += count
                progress.update(reader.bytes_read)
        progress.done(reader.bytes_read)
        blob = Digests(reader.bytes_read, reader.sha256, reader.md5)
        return _Streamed(gzip=head == _GZIP_MAGIC, blob=blob, content=None, stored=blob, written=written)

    def _publish(self, temp: _Target, final: _Target, sha256: str, described: str) -> str:
        """Move ``temp`` to ``final``; returns ``stored`` or ``already_present`` (identical, kept)."""
        from airflow_provider_liveresponse.exceptions import LiveResponseError

        if final.exists():
            existing = final.sha256()
            if existing == sha256:
                temp.remove_quietly()
                return "already_present"
            if not self.overwrite:
                raise LiveResponseError(
                    f"{described}: {_shown(final.path)} already exists with SHA-256 {existing}, but the result now "
                    f"downloaded has SHA-256 {sha256}; nothing was changed. What to do: compare the two (the existing "
                    "one may come from another action or have been altered), then set overwrite=True to replace it "
                    "or choose another destination"
                )
            self.log.warning("Replacing %s (SHA-256 %s; overwrite=True)", _shown(final.path), existing)
        temp.move_to(final)
        return "stored"

    def _surface_transcript(self, command: ActionCommand, described: str, raw: bytes | None) -> dict[str, Any]:
        """Exit code and first lines of a RunScript transcript, masked, for the log and XCom."""
        from airflow_provider_liveresponse.models import ScriptTranscript
        from airflow_provider_liveresponse.secrets import redact

        summary: dict[str, Any] = {"index": command.index, "script_name": command.command.target}
        if raw is None or len(raw) > _MAX_TRANSCRIPT_BYTES:
            self.log.warning(
                "%s: the transcript is larger than %d bytes; stored, not summarised", described, len(raw or b"")
            )
            return {**summary, "exit_code": None, "stdout_head": [], "stderr_head": []}
        try:
            transcript = ScriptTranscript.model_validate(json.loads(raw.decode("utf-8-sig")))
        except (ValueError, UnicodeDecodeError):
            self.log.warning("%s: the result is not a JSON script transcript; stored as returned", described)
            return {**summary, "exit_code": None, "stdout_head": [], "stderr_head": []}
        stdout = [redact(line) for line in _head(transcript.script_output, self.transcript_lines)]
        stderr = [redact(line) for line in _head(transcript.script_errors, self.transcript_lines)]
        summary.update(exit_code=transcript.exit_code, stdout_head=stdout, stderr_head=stderr)
        self.log.info(
            "Script %s (command %d) exited with code %s", command.command.target, command.index, transcript.exit_code
        )
        for label, lines in (("stdout", stdout), ("stderr", stderr)):
            for line in lines:
                self.log.info("  %s | %s", label, line)
        return summary

    def on_kill(self) -> None:
        """Remove the temporary object of the transfer in progress (a killed transfer keeps no partial)."""
        temp = self._current_temp
        if temp is not None:
            temp.remove_quietly()


# -- streaming helpers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Streamed:
    gzip: bool
    blob: Digests
    content: Digests | None
    stored: Digests
    written: int
    transcript: bytes | None = None


class _Decoder:
    """Decompresses a gzip stream (one or more members) in bounded steps, or passes other bytes through.

    Whether the blob is gzip is decided from its first two bytes (MDE serves GetFile results gzip-compressed,
    transcripts as plain JSON).
    """

    def __init__(self) -> None:
        self.gzip: bool | None = None
        self._head = b""
        self._inflater: Any = None
        self._members = 0

    def feed(self, data: bytes | memoryview) -> Iterator[bytes]:
        if self.gzip is None:
            self._head += bytes(data)
            if len(self._head) < len(_GZIP_MAGIC):
                return
            data, self._head = self._head, b""
            self._decide(data)
        if not self.gzip:
            yield bytes(data)
            return
        yield from self._inflate(bytes(data))

    def _decide(self, head: bytes) -> None:
        self.gzip = head.startswith(_GZIP_MAGIC)
        if self.gzip:
            self._inflater = zlib.decompressobj(wbits=31)

    def _inflate(self, pending: bytes) -> Iterator[bytes]:
        while True:
            inflater = self._inflater
            out = inflater.decompress(pending, _INFLATE_STEP)
            if out:
                yield out
            if inflater.eof:
                self._members += 1
                rest = inflater.unused_data
                if not rest:
                    return
                if not rest.startswith(_GZIP_MAGIC[: len(rest)]):
                    raise zlib.error(f"{len(rest)} bytes of trailing data after gzip member {self._members}")
                self._inflater = zlib.decompressobj(wbits=31)
                pending = rest
                continue
            pending = inflater.unconsumed_tail
            if not pending and len(out) < _INFLATE_STEP:
                return

    def finish(self) -> Iterator[bytes]:
        if self.gzip is None:
            head, self._head = self._head, b""
            self._decide(head)
            if head:
                yield from self.feed(head)
        if not self.gzip:
            return
        tail = self._inflater.flush()
        if tail:
            yield tail
        if not self._inflater.eof:
            raise zlib.error("the gzip stream ends before its last member is complete")


class _Progress:
    """Calm progress lines: every ``interval`` seconds, or at each further tenth (at most every 5 s)."""

    def __init__(self, log: Any, described: str, total: int | None, interval: float) -> None:
        self._log = log
        self._described = described
        self._total = total
        self._interval = interval
        self._started = time.monotonic()
        self._last = self._started
        self._tenth = 0
        log.info("Downloading %s: %s", described, _human(total) if total is not None else "size unknown")

    def update(self, done: int) -> None:
        now = time.monotonic()
        since = now - self._last
        tenth = done * 10 // self._total if self._total else 0
        if since < self._interval and not (tenth > self._tenth and since >= 5.0):
            return
        self._last = now
        self._tenth = tenth
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self._total:
            left = (self._total - done) / rate if rate > 0 else float("inf")
            self._log.info(
                "Downloading %s: %s of %s (%.0f%%), %s/s, about %s left",
                self._described,
                _human(done),
                _human(self._total),
                100.0 * done / self._total,
                _human(int(rate)),
                _duration(left),
            )
        else:
            self._log.info("Downloading %s: %s, %s/s", self._described, _human(done), _human(int(rate)))

    def done(self, total: int) -> None:
        elapsed = time.monotonic() - self._started
        rate = total / elapsed if elapsed > 0 else 0.0
        self._log.info("Downloaded %s: %s in %.1f s (%s/s)", self._described, _human(total), elapsed, _human(int(rate)))


# -- destination ---------------------------------------------------------------------------------------------


class _Target:
    """One object or file at the destination."""

    def __init__(self, path: ObjectStoragePath) -> None:
        self.path = path
        self.local = (path.protocol or "file") in _LOCAL_PROTOCOLS

    @property
    def _key(self) -> str:
        return str(self.path.path)

    def open_write(self) -> Any:
        if self.local:
            return _DurableLocalFile(self._key)
        return self.path.fs.open(self._key, "wb")

    def exists(self) -> bool:
        if self.local:
            return os.path.isfile(self._key)
        fs = self.path.fs
        fs.invalidate_cache(self._key)
        return bool(fs.exists(self._key))

    def size(self) -> int:
        if self.local:
            return os.path.getsize(self._key)
        fs = self.path.fs
        fs.invalidate_cache(self._key)
        return int(fs.size(self._key))

    def sha256(self) -> str:
        digest = hashlib.sha256()
        opener = open(self._key, "rb") if self.local else self.path.fs.open(self._key, "rb")  # noqa: SIM115
        with opener as handle:
            while chunk := handle.read(4 * 1024 * 1024):
                digest.update(chunk)
        return digest.hexdigest()

    def move_to(self, final: _Target) -> None:
        if self.local:
            os.replace(self._key, final._key)
            _fsync_directory(os.path.dirname(final._key))
            return
        fs = self.path.fs
        fs.mv(self._key, final._key)
        fs.invalidate_cache(final._key)

    def remove_quietly(self) -> None:
        try:
            if self.local:
                os.unlink(self._key)
            else:
                self.path.fs.rm(self._key)
        except Exception:  # noqa: S110 - best effort; the next run removes leftovers
            pass


class _DurableLocalFile:
    """A local file opened for writing that is flushed to disk (fsync) before it is closed."""

    def __init__(self, path: str) -> None:
        self._handle = open(path, "xb")  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> BinaryIO:
        return self._handle

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self._handle.flush()
                os.fsync(self._handle.fileno())
        finally:
            self._handle.close()


def _fsync_directory(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class _Folder:
    """The action's folder at the destination."""

    path: ObjectStoragePath
    local: bool = field(init=False)

    def __post_init__(self) -> None:
        self.local = (self.path.protocol or "file") in _LOCAL_PROTOCOLS

    def child(self, name: str) -> ObjectStoragePath:
        return self.path / name

    def target(self, name: str) -> _Target:
        return _Target(self.child(name))

    def temporary(self, final_name: str) -> _Target:
        return self.target(f".{final_name}.{uuid.uuid4().hex[:12]}.partial")

    def prepare(self) -> None:
        if self.local:
            os.makedirs(str(self.path.path), exist_ok=True)

    def _names(self) -> list[str]:
        key = str(self.path.path)
        if self.local:
            try:
                return os.listdir(key)
            except FileNotFoundError:
                return []
        fs = self.path.fs
        fs.invalidate_cache(key)
        try:
            entries = fs.ls(key, detail=False)
        except FileNotFoundError:
            return []
        return [str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries]

    def remove_leftovers(self) -> list[str]:
        """Remove temporary objects left by an interrupted run; returns what was removed."""
        removed = []
        for name in self._names():
            if _PARTIAL.match(name):
                target = self.target(name)
                target.remove_quietly()
                removed.append(_shown(target.path))
        return removed

    def read_manifest(self) -> dict[str, Any] | None:
        target = self.target(MANIFEST_NAME)
        try:
            if not target.exists():
                return None
            opener = open(target._key, "rb") if self.local else target.path.fs.open(target._key, "rb")  # noqa: SIM115
            with opener as handle:
                data = json.loads(handle.read(64 * 1024 * 1024))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_atomically(self, name: str, data: bytes) -> None:
        temp = self.temporary(name)
        try:
            with temp.open_write() as sink:
                sink.write(data)
            temp.move_to(self.target(name))
        except BaseException:
            temp.remove_quietly()
            raise


# -- manifest and small helpers ------------------------------------------------------------------------------


def _manifest(
    action: MachineAction, machine_id: str, folder: _Folder, entries: list[dict[str, Any]], keep_compressed: bool
) -> dict[str, Any]:
    from airflow_provider_liveresponse import __version__
    from airflow_provider_liveresponse.constants import PACKAGE_NAME

    return {
        "manifest_version": MANIFEST_VERSION,
        "generator": {
            "package": PACKAGE_NAME,
            "version": __version__,
            "operator": "LiveResponseToObjectStorageOperator",
        },
        "written_at": _now(),
        "location": _shown(folder.path),
        "keep_compressed": keep_compressed,
        "action": {
            "id": action.id,
            "status": str(action.status),
            "machine_id": machine_id,
            "computer_dns_name": action.computer_dns_name,
            "requestor": action.requestor,
            "requestor_comment": action.requestor_comment,
            "creation_date_time_utc": _iso(action.creation_date_time_utc),
            "last_update_date_time_utc": _iso(action.last_update_date_time_utc),
        },
        "files": entries,
    }


def _conn_id(path: ObjectStoragePath) -> str | None:
    """The path's connection id (``conn_id`` on Airflow 3.2+, a storage option on 3.1)."""
    value = getattr(path, "conn_id", None) or path.storage_options.get("conn_id")
    return str(value) if value else None


def _shown(path: ObjectStoragePath) -> str:
    """The path as a URL for logs and the manifest (it holds a connection id, never a credential)."""
    return str(path)


_QUERY = re.compile(r"\?[^\s'\"]*")


def _scrub(text: str) -> str:
    """``text`` without URL query strings (where a result link carries its SAS signature)."""
    return _QUERY.sub("?<query removed>", text)


def _head(text: str, lines: int) -> list[str]:
    """The first ``lines`` non-empty lines of ``text``, control characters replaced, each cut short."""
    result = []
    for line in text.splitlines():
        cleaned = "".join(ch if ch.isprintable() or ch == "\t" else "\N{REPLACEMENT CHARACTER}" for ch in line).rstrip()
        if not cleaned:
            continue
        if len(cleaned) > _TRANSCRIPT_LINE_CHARS:
            cleaned = cleaned[:_TRANSCRIPT_LINE_CHARS] + "..."
        result.append(cleaned)
        if len(result) >= lines:
            break
    return result


def _human(count: int | None) -> str:
    if count is None:
        return "unknown size"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown time"
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _now() -> str:
    return datetime.now(UTC).isoformat()
