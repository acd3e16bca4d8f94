"""Store one finished action's results into a case folder: the transfer's core, callable per device.

:func:`store_action_results` is what :class:`~.live_response_to_object_storage.LiveResponseToObjectStorageOperator`
runs for its one action, and what a fleet sweep runs for each device's finished action, with the same guarantees:

- each result streams into a temporary name (``.{final name}.{12 hex}.partial``) and is moved to its final name
  only once complete and verified (length, Content-MD5, gzip CRC and length, stored size);
- leftovers of an interrupted earlier run are removed first, so a rerun completes what it left;
- an identical object already present (same SHA-256) is kept (an idempotent rerun) and keeps its first
  retrieval time; a different one fails unless ``overwrite=True``; when the earlier manifest, the stored copy
  (size, SHA-256) and the blob's Content-MD5 and length all agree, it is not even downloaded (:mod:`.rerun`);
- ``manifest.json`` is written last, atomically; with a ``signer``
  (:class:`~airflow_provider_liveresponse.signing.ManifestSigner`), ``manifest.json.sig`` right after it, over the
  manifest's exact bytes. A signature left by an earlier run is removed before the manifest is rewritten, so an
  unsigned rerun (or one killed between the two writes) leaves an unsigned manifest, never one whose signature
  does not match it.

How to call it (``hook`` a :class:`~airflow_provider_liveresponse.hooks.live_response.LiveResponseHook`, ``action``
the finished :class:`~airflow_provider_liveresponse.models.MachineAction` as ``hook.get_machine_action`` returns it,
``destination`` an ``ObjectStoragePath`` such as ``settings.destination(url, conn_id)`` returns)::

    from airflow_provider_liveresponse.transfers.collect import CopyOptions, store_action_results

    stored = store_action_results(
        hook, action, destination / machine_id / action.id, options=CopyOptions(), log=self.log, owner=f"Task {tid}",
        signer=ManifestSigner.from_connection("manifest_signing"),  # optional; build it before any API call
    )
    stored.manifest          # the Manifest written (stored.manifest_bytes: its exact bytes)
    stored.files             # [{"path", "size", "sha256"}] per stored object
    stored.transcripts       # the RunScript outcomes (as the operator pushes under XCom key "transcripts")
    stored.signed_by         # the signing key's fingerprint, or None

Two callers must not store the same action into the same folder at the same time (each would remove the other's
temporary objects). Errors are :class:`~airflow_provider_liveresponse.exceptions.LiveResponseError`, prefixed with
``owner``; none carries a download link.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_liveresponse.exceptions import LiveResponseError
from airflow_provider_liveresponse.transfers.destination import Destination, Target, shown
from airflow_provider_liveresponse.transfers.gzip_stream import Streamed, copy_as_served, copy_decoded
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
from airflow_provider_liveresponse.transfers.selection import select_commands

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.hooks.result_reader import ResultReader
    from airflow_provider_liveresponse.models import ActionCommand, MachineAction
    from airflow_provider_liveresponse.signing import ManifestSigner
    from airflow_provider_liveresponse.transfers.settings import TransferSettings

    #: ``stream(reader, temp, described, keep_transcript=...)``: the copy of one blob (a test or benchmark wraps it).
    StreamFn = Callable[..., Streamed]

__all__ = [
    "CopyOptions",
    "ResultCollector",
    "StoredAction",
    "asset_event_extra",
    "select_commands",
    "store_action_results",
]

_QUERY = re.compile(r"\?[^\s'\"]*")


@dataclass(frozen=True)
class CopyOptions:
    """How results are copied (the transfer operator's parameters of the same names, already checked)."""

    overwrite: bool = False
    keep_compressed: bool = False
    content_digests: bool = True
    chunk_size: int = 4 * 1024 * 1024
    max_resumes: int = 8
    progress_interval: float = 30.0
    transcript_lines: int = 10
    generator: str = "LiveResponseToObjectStorageOperator"  # the operator class the manifest names

    @classmethod
    def of(cls, settings: TransferSettings) -> CopyOptions:
        """The copy options of a transfer's checked settings."""
        return cls(
            overwrite=settings.overwrite,
            keep_compressed=settings.keep_compressed,
            content_digests=settings.content_digests,
            chunk_size=settings.chunk_size,
            max_resumes=settings.max_resumes,
            progress_interval=settings.progress_interval,
            transcript_lines=settings.transcript_lines,
        )


@dataclass(frozen=True)
class StoredAction:
    """One action's results stored: the manifest written (and its exact bytes), the folder, the transcripts."""

    manifest: Manifest
    manifest_bytes: bytes
    folder: Destination
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    signed_by: str | None = None
    """The fingerprint of the key that signed the manifest (``SHA256:<hex>``), or None when it is unsigned."""

    @property
    def files(self) -> list[dict[str, Any]]:
        """One row per stored object: its path in the folder, size and SHA-256."""
        return [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in self.manifest.files]

    @property
    def manifest_uri(self) -> str:
        """Where the manifest is (a URL with no credentials)."""
        return shown(self.folder.child(MANIFEST_NAME))


def asset_event_extra(stored: StoredAction) -> dict[str, Any]:
    """The extra of the asset event announcing ``stored``: ``{machine_id, host, action_id, manifest, files}``,
    ``manifest`` the manifest's URL (no credentials), ``files`` the rows ``{path, size, sha256}``."""
    action = stored.manifest.action
    return {
        "machine_id": action.machine_id,
        "host": action.computer_dns_name,
        "action_id": action.id,
        "manifest": stored.manifest_uri,
        "files": stored.files,
    }


def store_action_results(
    hook: LiveResponseHook,
    action: MachineAction,
    folder_path: ObjectStoragePath,
    *,
    options: CopyOptions,
    log: Any,
    owner: str,
    command_indexes: Sequence[int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    signer: ManifestSigner | None = None,
) -> StoredAction:
    """Store the results of the finished ``action`` under ``folder_path`` and write its manifest last.

    ``command_indexes`` chooses the commands (default: every command with a result); ``owner`` prefixes every
    error (``"Task collect"``, ``"Sweep s, device ws-1"``); ``log`` is a logger (a task's ``self.log``); ``clock``
    times the progress lines; ``signer`` signs the manifest (build it before any API call: a bad key then fails
    before anything is copied).
    """
    collector = ResultCollector(options, log, owner, clock=clock)
    return collector.store(hook, action, folder_path, command_indexes, signer=signer)


class ResultCollector:
    """Stores actions' results (see :func:`store_action_results`); ``current_temp`` is the temporary object being
    written, for a caller's ``on_kill`` to remove."""

    def __init__(
        self,
        options: CopyOptions,
        log: Any,
        owner: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        stream: StreamFn | None = None,
    ) -> None:
        self.options = options
        self.log = log
        self.owner = owner
        self.clock = clock
        self.current_temp: Target | None = None
        self._stream_fn: StreamFn = stream if stream is not None else self.stream

    def store(
        self,
        hook: LiveResponseHook,
        action: MachineAction,
        folder_path: ObjectStoragePath,
        command_indexes: Sequence[int] | None = None,
        *,
        signer: ManifestSigner | None = None,
    ) -> StoredAction:
        """Copy the chosen commands' results into ``folder_path``, then write the manifest and, with ``signer``,
        its signature (see the module). The signer is an argument, not an attribute, so it is never kept."""
        from airflow_provider_liveresponse import validation

        commands = select_commands(action, command_indexes, self.owner)
        machine_id = validation.machine_id(action.machine_id, "the action's machineId")
        folder = Destination.at(folder_path)
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
            generator=Generator.this_package(self.options.generator),
            written_at=datetime.now(UTC),
            location=shown(folder.path),
            keep_compressed=self.options.keep_compressed,
            action=ActionRecord.of(action, machine_id),
            files=entries,
        )
        data = manifest.to_bytes()
        signed_by = self._write_manifest(folder, data, signer)
        stored = sum(1 for e in entries if e.outcome == "stored")
        self.log.info(
            "Action %s: %d file(s) stored, %d already present with the same SHA-256; manifest at %s",
            action.id,
            stored,
            len(entries) - stored,
            shown(folder.child(MANIFEST_NAME)),
        )
        return StoredAction(manifest, data, folder, transcripts, signed_by)

    def _write_manifest(self, folder: Destination, data: bytes, signer: ManifestSigner | None) -> str | None:
        """Remove an earlier signature, write the manifest, then its signature; the signer's fingerprint."""
        from airflow_provider_liveresponse.signing import signature_name

        sig_name = signature_name(MANIFEST_NAME)
        if folder.exists(sig_name):
            folder.remove(sig_name)
            if signer is None:
                self.log.warning(
                    "Removed %s, the signature of the earlier manifest: this run is not signed (no signing_conn_id)",
                    shown(folder.child(sig_name)),
                )
        folder.write_atomically(MANIFEST_NAME, data)
        if signer is None:
            return None
        folder.write_atomically(sig_name, signer.sign(data, MANIFEST_NAME))
        self.log.info("Signed %s with key %s", shown(folder.child(MANIFEST_NAME)), signer.fingerprint)
        return signer.fingerprint

    def _prepare(self, folder: Destination, action: MachineAction) -> None:
        """Make the action's folder usable and remove what an interrupted run left there."""
        try:
            folder.prepare()
            leftovers = folder.remove_leftovers()
        except Exception as exc:
            raise LiveResponseError(
                f"{self.owner}: cannot use {shown(folder.path)} for the results of action {action.id} "
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
        kept = self._kept(hook, folder, action, command, earlier, described)
        if kept is not None:
            entry, raw = kept
            if command.type != "RunScript":
                return entry, None
            return entry, summarise(self.log, command, described, raw, self.options.transcript_lines)
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
        transcript = summarise(self.log, command, described, copied.streamed.transcript, self.options.transcript_lines)
        return self._entry(command, copied, earlier, exit_code=transcript.get("exit_code")), transcript

    def _kept(
        self,
        hook: LiveResponseHook,
        folder: Destination,
        action: MachineAction,
        command: ActionCommand,
        earlier: Manifest | None,
        described: str,
    ) -> tuple[FileEntry, bytes | None] | None:
        """The earlier entry when the stored copy and the blob are unchanged (no download), see :mod:`.rerun`."""
        from airflow_provider_liveresponse.transfers.rerun import kept_without_download

        base = _base_name(command)
        return kept_without_download(
            hook,
            folder,
            action,
            command,
            earlier,
            name_for=lambda gzip, served: self._final_name(base, command, served, gzip=gzip),
            options=self.options,
            log=self.log,
            described=described,
        )

    def _download(
        self, hook: LiveResponseHook, folder: Destination, action: MachineAction, command: ActionCommand, described: str
    ) -> _Copied:
        """Stream the result into a temporary object, check it and publish it; nothing partial is left behind."""
        is_script = command.type == "RunScript"
        base = _base_name(command)
        temp = folder.temporary(base)
        self.current_temp = temp
        started = self.clock()
        try:
            with hook.open_result(action.id, command.index, max_resumes=self.options.max_resumes) as reader:
                result = self._stream_fn(reader, temp, described, keep_transcript=is_script)
            final = folder.target(self._final_name(base, command, reader.file_name, gzip=result.gzip))
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
            self.current_temp = None
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

    def _final_name(self, base: str, command: ActionCommand, served_name: str | None, *, gzip: bool) -> str:
        """The stored name: ``.gz`` added to a GetFile kept compressed; the served name when the path has none."""
        from airflow_provider_liveresponse.transfers.naming import getfile_name

        if command.type == "RunScript":
            return base
        name = base + ".gz" if gzip and self.options.keep_compressed else base
        if not command.command.target.strip() and served_name:
            name = getfile_name(command.index, "", served_name) + (".gz" if name.endswith(".gz") else "")
        return name

    def stream(self, reader: ResultReader, temp: Target, described: str, *, keep_transcript: bool) -> Streamed:
        """Read the blob to its end, writing the stored form to ``temp``; the reader hashes the blob as served,
        the stream the decompressed content (each beside the copy, in a worker thread once it is large)."""
        options = self.options
        store_blob = options.keep_compressed and not keep_transcript
        progress = Progress(self.log, described, reader.size, options.progress_interval, self.clock)
        with temp.open_write() as sink:
            if store_blob and not options.content_digests:
                result = copy_as_served(reader, sink, chunk_size=options.chunk_size, progress=progress)
            else:
                result = copy_decoded(
                    reader,
                    sink,
                    described=described,
                    chunk_size=options.chunk_size,
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
            if not self.options.overwrite:
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
            keep_compressed=self.options.keep_compressed,
            exit_code=exit_code,
        )


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
