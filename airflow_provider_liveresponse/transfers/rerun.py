"""Identical reruns without a download: keep a stored result whose copy and blob are provably unchanged.

A rerun of a transfer (or a sweep's retry) into a folder that already holds an action's results used to stream
every blob again, only to find it identical. :func:`kept_without_download` decides, per command, whether that
download can be skipped. All of these must hold, checked cheapest first:

1. the earlier ``manifest.json`` of the same action has an entry for the same command (the same
   :class:`~.manifest.CommandRecord`), stored under the name and in the form this run would store it
   (``keep_compressed`` unchanged), with content digests if this run computes them;
2. the object at that name exists and has the entry's size;
3. the blob answers a ``HEAD`` on a fresh link (:meth:`LiveResponseHook.get_result_properties`, the hook is the
   only one to see the link) with a ``Content-MD5`` and a ``Content-Length`` equal to the entry's ``blob.md5``
   and ``blob.size`` (the MD5 and length of the bytes downloaded then, checked against the blob's Content-MD5);
4. the stored object, re-read from the store in bounded chunks, has the entry's SHA-256.

Step 4 reads the stored copy back (from the object store, not from MDE); it is kept because the manifest is
custody evidence: a cheaper check (size and the store's ETag) would keep an object altered in place with its size
unchanged. A blob without Content-MD5, a failed ``HEAD`` or any difference means the result is downloaded as
before (and compared, or replaced with ``overwrite=True``). A skipped result keeps its earlier manifest entry
(digests, first retrieval time, how it was downloaded) with ``outcome: already_present``, so the manifest's JSON
format does not change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.transfers.destination import shown
from airflow_provider_liveresponse.transfers.gzip_stream import MAX_TRANSCRIPT_BYTES
from airflow_provider_liveresponse.transfers.manifest import CommandRecord
from airflow_provider_liveresponse.transfers.progress import human

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import ActionCommand, MachineAction
    from airflow_provider_liveresponse.transfers.collect import CopyOptions
    from airflow_provider_liveresponse.transfers.destination import Destination
    from airflow_provider_liveresponse.transfers.manifest import FileEntry, Manifest

    #: ``name_for(gzip, served_name)``: the final name this run would give the result.
    NameFn = Callable[[bool, "str | None"], str]


def kept_without_download(
    hook: LiveResponseHook,
    folder: Destination,
    action: MachineAction,
    command: ActionCommand,
    earlier: Manifest | None,
    *,
    name_for: NameFn,
    options: CopyOptions,
    log: Any,
    described: str,
) -> tuple[FileEntry, bytes | None] | None:
    """The entry to write for ``command`` when its download can be skipped (with a transcript's stored bytes), or
    None when it must be downloaded; every step is logged (never a link)."""
    before = _candidate(action, command, earlier, name_for, options)
    if before is None:
        return None
    target = folder.target(before.path)
    where = shown(target.path)
    if not target.exists() or target.size() != before.size:
        log.info("%s: %s is missing or its size changed; downloading the result again", described, where)
        return None
    try:
        served = hook.get_result_properties(action.id, command.index)
    except Exception as exc:
        log.info("%s: the blob's properties could not be read (%s); downloading it", described, type(exc).__name__)
        return None
    if served.md5 is None:
        log.info("%s: the blob has no Content-MD5 to compare; downloading it", described)
        return None
    if served.md5 != before.blob.md5 or served.size != before.blob.size:
        log.info("%s: the blob's Content-MD5 or length differs from the manifest's; downloading it", described)
        return None
    if target.sha256() != before.sha256:
        log.info("%s: %s no longer has the manifest's SHA-256; downloading the result again", described, where)
        return None
    log.info(
        "Skipped %s (%s): identical to the stored copy: size, SHA-256, Content-MD5 match (%s, SHA-256 %s)",
        where,
        described,
        human(before.size),
        before.sha256,
    )
    transcript = folder.read(before.path, MAX_TRANSCRIPT_BYTES + 1) if command.type == "RunScript" else None
    return before.model_copy(update={"outcome": "already_present", "uri": where}), transcript


def _candidate(
    action: MachineAction, command: ActionCommand, earlier: Manifest | None, name_for: NameFn, options: CopyOptions
) -> FileEntry | None:
    """The earlier entry of ``command`` if it is stored as this run would store it, else None."""
    if earlier is None or earlier.action.id != action.id:
        return None
    record = CommandRecord.of(command)
    before = next((entry for entry in earlier.files if entry.command == record), None)
    if before is None:
        return None
    gzip = before.blob.compression == "gzip"
    if command.type == "RunScript":
        form = "transcript"
    else:
        form = "compressed" if gzip and options.keep_compressed else "collected_file"
    if before.stored_form != form or before.path != name_for(gzip, before.blob.file_name):
        return None
    if options.content_digests and before.content is None:
        return None
    return before
