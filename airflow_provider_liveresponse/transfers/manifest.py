"""The chain-of-custody manifest (``manifest.json``) that LiveResponseToObjectStorageOperator writes last.

One manifest describes one machine action's results under ``{destination}/{machine_id}/{action_id}/``: which
action and commands produced them, who asked, and for every stored object its name, size, SHA-256 and MD5, the
digests of the blob as MDE served it and of the collected content, and how it was downloaded. A reader checks
custody by reading each object back and comparing it with :meth:`Manifest.stored_objects`.

Three digests, three sets of bytes:

- ``files[].sha256`` / ``md5`` / ``size``: the object stored at ``files[].path`` (what a reader re-hashes);
- ``files[].blob``: the blob as MDE's storage served it (a GetFile result gzip-compressed, a transcript as is);
- ``files[].content``: the decompressed content, i.e. the file collected on the device (or the transcript).

Which of the last two was stored is ``files[].stored_form``. Load a manifest with :meth:`Manifest.from_bytes`;
:meth:`Manifest.to_bytes` gives the exact bytes the operator writes (2-space indented JSON, UTF-8, a final
newline).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, SerializerFunctionWrapHandler, model_serializer

if TYPE_CHECKING:
    from airflow_provider_liveresponse.models import ActionCommand, MachineAction
    from airflow_provider_liveresponse.transfers.gzip_stream import Streamed

#: The manifest's file name, in the action's folder.
MANIFEST_NAME: Final = "manifest.json"
#: The version of the manifest's format; a reader refuses other versions.
MANIFEST_VERSION: Final = 1
#: Bytes of an earlier manifest read at most.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

#: A point in time, written as Python's ``datetime.isoformat()`` (``2024-05-01T10:00:00.123456+00:00``).
Timestamp = Annotated[datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str)]
#: A hex SHA-256 (64 lower-case hex digits).
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
#: A hex MD5 (32 lower-case hex digits).
Md5 = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
#: A size in bytes.
ByteCount = Annotated[int, Field(ge=0)]


class Download(Protocol):
    """What an entry records of one download besides the digests: the blob's served name and type, the links
    asked for and the resumes."""

    @property
    def file_name(self) -> str | None: ...

    @property
    def content_type(self) -> str | None: ...

    @property
    def links_requested(self) -> int: ...

    @property
    def resumes(self) -> int: ...


class _Record(BaseModel):
    """Base of the manifest's parts: exactly the fields below (no more, no fewer), immutable once read; each
    field's docstring is its description in the JSON schema (``Manifest.model_json_schema()``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Generator(_Record):
    """What wrote the manifest."""

    package: str
    """The distribution's name, ``airflow-provider-liveresponse``."""
    version: str
    """Its version."""
    operator: str
    """The operator class that stored the results: ``LiveResponseToObjectStorageOperator``, or
    ``FleetLiveResponseOperator`` for a fleet sweep's devices."""

    @classmethod
    def this_package(cls, operator: str = "LiveResponseToObjectStorageOperator") -> Generator:
        """This package and ``operator``."""
        from airflow_provider_liveresponse import __version__
        from airflow_provider_liveresponse.constants import PACKAGE_NAME

        return cls(package=PACKAGE_NAME, version=__version__, operator=operator)


class ActionRecord(_Record):
    """The MDE machine action whose results the folder holds, as MDE reported it when they were copied."""

    id: str
    """The machine action's id (a GUID)."""
    status: str
    """Its status (``Succeeded``, ``Failed``, ``TimeOut``, ``Cancelled``...)."""
    machine_id: str
    """The device's MDE id (40 lower-case hex digits), also the folder's parent name."""
    computer_dns_name: str | None
    """The device's host name, if MDE gave one."""
    requestor: str | None
    """Who started the action (a user or an application id)."""
    requestor_comment: str | None
    """The comment given with the action."""
    creation_date_time_utc: Timestamp | None
    """When the action was created (UTC)."""
    last_update_date_time_utc: Timestamp | None
    """When MDE last updated it (UTC)."""

    @classmethod
    def of(cls, action: MachineAction, machine_id: str) -> ActionRecord:
        """The record of ``action`` (``machine_id`` already checked)."""
        return cls(
            id=action.id,
            status=str(action.status),
            machine_id=machine_id,
            computer_dns_name=action.computer_dns_name,
            requestor=action.requestor,
            requestor_comment=action.requestor_comment,
            creation_date_time_utc=action.creation_date_time_utc,
            last_update_date_time_utc=action.last_update_date_time_utc,
        )


class CommandRecord(_Record):
    """The live-response command that produced one result."""

    index: int
    """Its index in the action (the ``{index}_`` prefix of the stored name)."""
    type: str
    """``GetFile`` or ``RunScript``."""
    device_path: str | None
    """A GetFile's path on the device, exactly as given (None for RunScript)."""
    script_name: str | None
    """A RunScript's library script (None for GetFile)."""
    script_args: str | None
    """A RunScript's arguments, if any (None for GetFile)."""
    status: str
    """The command's status (``Completed``)."""
    start_time: Timestamp | None
    """When the command started on the device."""
    end_time: Timestamp | None
    """When it ended."""

    @classmethod
    def of(cls, command: ActionCommand) -> CommandRecord:
        """The record of ``command``."""
        is_script = command.type == "RunScript"
        return cls(
            index=command.index,
            type=command.type,
            device_path=None if is_script else command.command.target,
            script_name=command.command.target if is_script else None,
            script_args=command.command.param("Args") if is_script else None,
            status=str(command.command_status),
            start_time=command.start_time,
            end_time=command.end_time,
        )


class BlobRecord(_Record):
    """The result blob as MDE's storage served it: its digests cover the bytes downloaded, before decompression."""

    file_name: str | None
    """The file name MDE's storage gave it (``Content-Disposition``), e.g. ``triage.zip.gz``."""
    content_type: str | None
    """Its ``Content-Type``."""
    compression: Literal["gzip", "none"]
    """``gzip`` if it began with the gzip magic bytes (GetFile results), else ``none`` (transcripts)."""
    size: ByteCount
    """Bytes downloaded (checked against ``Content-Length``)."""
    sha256: Sha256
    """SHA-256 of those bytes."""
    md5: Md5
    """MD5 of those bytes (checked against ``Content-MD5`` when the storage sent one)."""


class ContentRecord(_Record):
    """The decompressed content: the file collected on the device (or the transcript), as it was there."""

    size: ByteCount
    """Its size in bytes (the gzip trailer's length checked for a GetFile)."""
    sha256: Sha256
    """SHA-256 of the collected file."""
    md5: Md5
    """MD5 of the collected file."""


class TransferRecord(_Record):
    """How the blob was downloaded."""

    links_requested: int
    """Download links asked of MDE (a link lasts 30 minutes; an expired one is replaced)."""
    resumes: int
    """Resumes (``Range`` requests) after broken connections."""


class FileEntry(_Record):
    """One stored object: where it is, the digests of its bytes, and where those bytes came from."""

    path: str
    """Its name in the action's folder: ``{index}_{name}``, ``{index}_{name}.gz`` or
    ``{index}_{script}.transcript.json``."""
    uri: str
    """Its full URL (with a connection id in place of credentials, never a download link)."""
    size: ByteCount
    """Size in bytes of the stored object."""
    sha256: Sha256
    """SHA-256 of the stored object: a reader re-hashes the object at ``path`` and compares with this."""
    md5: Md5
    """MD5 of the stored object."""
    stored_form: Literal["collected_file", "compressed", "transcript"]
    """What was stored: ``collected_file`` (decompressed; the same digests as ``content``), ``compressed`` (the
    blob as served, with ``keep_compressed=True``; the same digests as ``blob``) or ``transcript`` (a RunScript's
    JSON, as returned)."""
    outcome: Literal["stored", "already_present"]
    """``stored`` by this run, or ``already_present`` (an identical object, same SHA-256, kept as it was: either
    downloaded again and compared, or not downloaded at all because the earlier manifest's entry, the object's size
    and SHA-256 and the blob's Content-MD5 and length all matched; such an entry is the earlier one unchanged)."""
    retrieved_at: Timestamp
    """When the object was first retrieved (kept from the earlier manifest when it was already present)."""
    command: CommandRecord
    """The command that produced it."""
    blob: BlobRecord
    """The blob as served."""
    content: ContentRecord | None
    """The decompressed content; None when it was not computed (``keep_compressed=True, content_digests=False``)."""
    transfer: TransferRecord
    """How it was downloaded (by the run that stored it, when this run kept it without a download)."""
    exit_code: int | None = None
    """A transcript's exit code (None if it could not be read); written for transcripts only."""

    @classmethod
    def of(
        cls,
        command: ActionCommand,
        streamed: Streamed,
        download: Download,
        *,
        path: str,
        uri: str,
        outcome: Literal["stored", "already_present"],
        retrieved_at: datetime,
        keep_compressed: bool,
        exit_code: int | None = None,
    ) -> FileEntry:
        """The entry of one copied result: ``streamed``'s digests, ``download``'s facts, where it is stored."""
        is_script = command.type == "RunScript"
        kept_compressed = streamed.gzip and keep_compressed
        content = streamed.content
        return cls(
            path=path,
            uri=uri,
            size=streamed.stored.size,
            sha256=streamed.stored.sha256,
            md5=streamed.stored.md5,
            stored_form="transcript" if is_script else "compressed" if kept_compressed else "collected_file",
            outcome=outcome,
            retrieved_at=retrieved_at,
            command=CommandRecord.of(command),
            blob=BlobRecord(
                file_name=download.file_name,
                content_type=download.content_type,
                compression="gzip" if streamed.gzip else "none",
                size=streamed.blob.size,
                sha256=streamed.blob.sha256,
                md5=streamed.blob.md5,
            ),
            content=ContentRecord(size=content.size, sha256=content.sha256, md5=content.md5) if content else None,
            transfer=TransferRecord(links_requested=download.links_requested, resumes=download.resumes),
            exit_code=exit_code,
        )

    @model_serializer(mode="wrap")
    def _exit_code_for_transcripts_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.stored_form != "transcript":
            data.pop("exit_code", None)
        return data


class StoredObject(NamedTuple):
    """What a verifier checks of one stored object: its name in the folder, size and SHA-256."""

    path: str
    size: int
    sha256: str


class Manifest(_Record):
    """``manifest.json``: the action, and every object stored for it, with the digests that prove custody."""

    manifest_version: Literal[1]
    """The format's version (:data:`MANIFEST_VERSION`)."""
    generator: Generator
    """What wrote it."""
    written_at: Timestamp
    """When it was written (UTC); every successful run rewrites it."""
    location: str
    """The action's folder (URL), where ``files[].path`` are."""
    keep_compressed: bool
    """Whether GetFile results were stored compressed (``.gz``), as served."""
    action: ActionRecord
    """The machine action."""
    files: list[FileEntry]
    """The stored objects, in command order."""

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Manifest:
        """Read a manifest; raises ``pydantic.ValidationError`` (a ``ValueError``) if it is not a valid one."""
        return cls.model_validate_json(data)

    def to_json_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data (what the operator returns to XCom)."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data

    def to_bytes(self) -> bytes:
        """The bytes of ``manifest.json``."""
        return (json.dumps(self.to_json_dict(), indent=2, ensure_ascii=False) + "\n").encode()

    def stored_objects(self) -> list[StoredObject]:
        """Each stored object's name in :attr:`location`, size and SHA-256, in command order."""
        return [StoredObject(entry.path, entry.size, entry.sha256) for entry in self.files]

    def entry(self, path: str) -> FileEntry | None:
        """The entry of the object stored as ``path``, if any."""
        return next((entry for entry in self.files if entry.path == path), None)
