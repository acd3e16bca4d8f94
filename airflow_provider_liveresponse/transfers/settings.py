"""The transfer's parameters, checked before any API call: one error naming the field and the fix.

Scalars go through :mod:`airflow_provider_liveresponse.validation` (durations, counts, flags, text) like every task
of the provider; what only the transfer has is checked here: the destination (a URL, an absolute path or an
``ObjectStoragePath``, whose file system must be installed) and ``command_indexes`` (a list, possibly rendered
from a template as text).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.transfers.destination import is_local, shown
from airflow_provider_liveresponse.transfers.retention import Retention, retention

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

MIN_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 256 * 1024 * 1024
_NO_FILE_SYSTEM = (
    "install the provider that brings it (s3: apache-airflow-providers-amazon[s3fs]; abfs: "
    "apache-airflow-providers-microsoft-azure; gs: apache-airflow-providers-google)"
)


@dataclass(frozen=True)
class TransferSettings:
    """The checked parameters of one run of LiveResponseToObjectStorageOperator (durations in seconds)."""

    action_id: str
    destination: ObjectStoragePath
    command_indexes: list[int] | None
    overwrite: bool
    keep_compressed: bool
    content_digests: bool
    mde_conn_id: str
    chunk_size: int
    max_resumes: int
    max_retry_wait: float
    progress_interval: float
    transcript_lines: int
    signing_conn_id: str | None = None
    retention: Retention | None = None
    """The retention lock of ``retention_days`` / ``retention_mode`` (None without ``retention_days``)."""


def check_settings(operator: Any) -> TransferSettings:
    """The operator's parameters (its attributes of the same names), checked and normalised; raises
    :class:`LiveResponseConfigError` naming the first bad one."""
    action_id = validation.action_id(operator.action_id)
    indexes = command_indexes(operator.command_indexes)
    keep_compressed = validation.flag(operator.keep_compressed, "keep_compressed")
    content_digests = validation.flag(operator.content_digests, "content_digests")
    overwrite = validation.flag(operator.overwrite, "overwrite")
    if not content_digests and not keep_compressed:
        raise LiveResponseConfigError(
            "content_digests=False applies only with keep_compressed=True: the collected file is what is "
            "stored here, and it is always hashed. Remove content_digests=False, or set keep_compressed=True"
        )
    chunk_size = validation.count(operator.chunk_size, "chunk_size", minimum=MIN_CHUNK_SIZE, maximum=MAX_CHUNK_SIZE)
    max_resumes = validation.count(operator.max_resumes, "max_resumes", minimum=0)
    max_retry_wait = validation.duration(operator.max_retry_wait, "max_retry_wait", zero_allowed=True)
    progress_interval = validation.duration(operator.progress_interval, "progress_interval")
    transcript_lines = validation.count(operator.transcript_lines, "transcript_lines", minimum=0)
    mde_conn_id = validation.conn_id(operator.mde_conn_id)
    signing_conn_id = validation.optional_text(
        getattr(operator, "signing_conn_id", None),
        "signing_conn_id",
        hint="the id of the Airflow connection whose password holds the Ed25519 signing key",
    )
    lock = retention(getattr(operator, "retention_days", None), getattr(operator, "retention_mode", "governance"))
    return TransferSettings(
        action_id=action_id,
        destination=destination(operator.destination, operator.dest_conn_id),
        command_indexes=indexes,
        overwrite=overwrite,
        keep_compressed=keep_compressed,
        content_digests=content_digests,
        mde_conn_id=mde_conn_id,
        chunk_size=chunk_size,
        max_resumes=max_resumes,
        max_retry_wait=max_retry_wait,
        progress_interval=progress_interval,
        transcript_lines=transcript_lines,
        signing_conn_id=signing_conn_id,
        retention=lock,
    )


def command_indexes(value: Any) -> list[int] | None:
    """The command indexes to copy, sorted, from a list, one index or the JSON text a template rendered."""
    indexes = value
    if indexes is None:
        return None
    if isinstance(indexes, str):
        try:
            indexes = json.loads(indexes)
        except ValueError:
            raise LiveResponseConfigError(
                f"command_indexes rendered to {indexes!r}, not a list of command indexes such as [0, 2]"
            ) from None
    if isinstance(indexes, int) and not isinstance(indexes, bool):
        indexes = [indexes]
    if not isinstance(indexes, (list, tuple)) or not indexes:
        raise LiveResponseConfigError(
            f"command_indexes must be a non-empty list of command indexes such as [0, 2], got {indexes!r}"
        )
    for index in indexes:
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise LiveResponseConfigError(
                f"command_indexes holds {index!r}: each must be a command index (an integer from 0)"
            )
    if len(set(indexes)) != len(indexes):
        raise LiveResponseConfigError(f"command_indexes {list(indexes)} names a command twice")
    return sorted(indexes)


def destination(value: Any, dest_conn_id: Any) -> ObjectStoragePath:
    """The destination as an ``ObjectStoragePath`` with its connection, its file system installed."""
    from airflow.sdk import ObjectStoragePath

    conn_id = validation.optional_text(
        dest_conn_id, "dest_conn_id", empty_allowed=True, hint="the id of the destination's Airflow connection"
    )
    if isinstance(value, ObjectStoragePath):
        path = value
        if conn_id and not conn_id_of(path):
            path = ObjectStoragePath(str(path), conn_id=conn_id)
    elif isinstance(value, (str, os.PathLike)) and str(value).strip():
        path = _parsed(str(value).strip(), conn_id)
    else:
        raise LiveResponseConfigError(
            f"destination must be a URL such as s3://bucket/evidence or an ObjectStoragePath, got {value!r}"
        )
    if not is_local(path):
        from airflow.sdk.io import has_fs

        if not has_fs(path.protocol):
            raise LiveResponseConfigError(
                f"no file system is registered for {path.protocol}:// (destination {shown(path)}): {_NO_FILE_SYSTEM}"
            )
        if not path.path.strip("/"):
            raise LiveResponseConfigError(f"destination {shown(path)} names no bucket or container")
    return path


def _parsed(text: str, conn_id: str | None) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    if "://" not in text and not text.startswith("/"):
        raise LiveResponseConfigError(
            f"destination {text!r} is neither a URL nor an absolute path: use file:///evidence, "
            "s3://bucket/prefix, abfs://container/prefix or gs://bucket/prefix"
        )
    if text.endswith("://"):  # file:// would be the worker's current folder
        raise LiveResponseConfigError(
            f"destination {text!r} names no folder, bucket or container: use file:///evidence or s3://bucket/prefix"
        )
    if "?" in text or "#" in text:
        raise LiveResponseConfigError(
            f"destination {text!r} holds '?' or '#': give the bucket and prefix only, and put "
            "credentials in an Airflow connection (dest_conn_id or scheme://conn_id@bucket/prefix)"
        )
    try:
        return ObjectStoragePath(text, conn_id=conn_id) if conn_id else ObjectStoragePath(text)
    except ValueError as exc:
        raise LiveResponseConfigError(
            f"no file system is registered for {text.split('://', 1)[0]}:// (destination {text!r}: {exc}): "
            f"{_NO_FILE_SYSTEM}"
        ) from None


def conn_id_of(path: ObjectStoragePath) -> str | None:
    """The path's connection id (``conn_id`` on Airflow 3.2+, a storage option on 3.1)."""
    value = getattr(path, "conn_id", None) or path.storage_options.get("conn_id")
    return str(value) if value else None
