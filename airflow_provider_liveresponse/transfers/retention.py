"""Retention locks on stored evidence: S3 Object Lock, Azure Blob version-level immutability.

With ``retention_days`` (and ``retention_mode``) on the transfer, every object of the case (the stored results, the
manifest and its signature) is put under a retention lock once it has its final name, so that for the retention
period no one can delete or overwrite that version (an overwrite writes a new version; the locked one stays):

- ``s3://``: ``PutObjectRetention`` on the object's current version, mode ``GOVERNANCE`` (``governance``; a user
  with s3:BypassGovernanceRetention may still remove it) or ``COMPLIANCE`` (``compliance``; no one can, not even
  the account's root user, until the date). The bucket must have Object Lock enabled: :func:`check_supported`
  reads its Object Lock configuration before any MDE call and fails naming ``retention_days`` and the fix
  otherwise. The connection needs s3:PutObjectRetention and s3:GetBucketObjectLockConfiguration.
- ``abfs://``: a blob immutability policy (``set_immutability_policy``; ``governance`` = an ``Unlocked`` policy,
  which an account administrator may shorten or remove, ``compliance`` = ``Locked``, which no one can). The
  container (or its account) must have version-level immutability enabled, which :func:`check_supported` checks.
- ``file://`` and other stores (``gs://``): not supported, refused before any MDE call.

The lock is applied right after the store wrote the case (:func:`lock_case`), and again by every rerun (which puts
the objects it finds, already present or rewritten, under the lock again), so a task killed between the last write
and the lock leaves an unlocked case that its retry locks. Temporary objects are never locked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError, LiveResponseError
from airflow_provider_liveresponse.transfers.destination import is_local, shown
from airflow_provider_liveresponse.transfers.manifest import MANIFEST_NAME

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_liveresponse.transfers.collect import StoredAction

RetentionMode = Literal["governance", "compliance"]
RETENTION_MODES: tuple[RetentionMode, ...] = ("governance", "compliance")
#: A hundred years: a longer period is a typo.
MAX_RETENTION_DAYS = 36_500
_S3 = frozenset({"s3", "s3a"})
_AZURE = frozenset({"abfs", "abfss", "az"})
_SIGNATURE_NAME = f"{MANIFEST_NAME}.sig"


@dataclass(frozen=True)
class Retention:
    """How long, and how strictly, stored objects are locked (checked: see :func:`retention`)."""

    days: int
    mode: RetentionMode = "governance"

    def until(self, now: datetime) -> datetime:
        """The end of the retention period of an object locked at ``now`` (an aware datetime)."""
        return now + timedelta(days=self.days)

    def describe(self) -> str:
        return f"{self.days} days ({self.mode})"


@dataclass(frozen=True)
class _ImmutabilityPolicy:
    """What azure-storage-blob's ``set_immutability_policy`` reads of its ``ImmutabilityPolicy`` argument (the
    provider does not import azure-storage-blob, which comes with adlfs and the Azure provider)."""

    expiry_time: datetime
    policy_mode: str


def retention(days: Any, mode: Any) -> Retention | None:
    """The checked ``retention_days`` / ``retention_mode`` (None without ``retention_days``)."""
    checked_days = validation.optional_count(days, "retention_days", minimum=1, maximum=MAX_RETENTION_DAYS)
    checked_mode: RetentionMode = validation.choice(mode, "retention_mode", RETENTION_MODES)
    return None if checked_days is None else Retention(checked_days, checked_mode)


def _refused(path: ObjectStoragePath, why: str) -> LiveResponseConfigError:
    return LiveResponseConfigError(f"retention_days: {why} (destination {shown(path)}); nothing was copied")


def _error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore error, or of the one s3fs translated into ``exc``."""
    for candidate in (exc, exc.__cause__, exc.__context__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
    return ""


def check_supported(path: ObjectStoragePath, lock: Retention | None) -> None:
    """Fail, naming ``retention_days`` and the fix, when ``path``'s store cannot lock objects (reads the bucket's or
    container's configuration: call it before any MDE call)."""
    if lock is None:
        return
    protocol = (path.protocol or "file").lower()
    if is_local(path):
        raise _refused(
            path,
            "retention locks need an object store with them (s3:// with Object Lock, abfs:// with "
            "version-level immutability); a local folder has none. Remove retention_days or store on one",
        )
    if protocol in _S3:
        _check_s3(path)
    elif protocol in _AZURE:
        _check_azure(path)
    else:
        raise _refused(
            path,
            f"retention locks are supported on s3:// and abfs://, not on {protocol}://. "
            "Remove retention_days, or set a retention policy on the bucket itself",
        )


def _check_s3(path: ObjectStoragePath) -> None:
    bucket = str(path.path).lstrip("/").partition("/")[0]
    try:
        answer = path.fs.call_s3("get_object_lock_configuration", Bucket=bucket)
    except Exception as exc:
        code = _error_code(exc)
        if code == "ObjectLockConfigurationNotFoundError":
            raise _refused(
                path,
                f"bucket {bucket} does not have S3 Object Lock enabled. Create the evidence "
                "bucket with Object Lock enabled (it turns versioning on), or enable it on the bucket "
                "(versioning on, then PutObjectLockConfiguration); or remove retention_days",
            ) from None
        if code in {"AccessDenied", "403"} or isinstance(exc, PermissionError):
            raise _refused(
                path,
                f"the destination connection may not read bucket {bucket}'s Object Lock "
                "configuration: grant it s3:GetBucketObjectLockConfiguration and s3:PutObjectRetention",
            ) from None
        raise _refused(
            path, f"could not read bucket {bucket}'s Object Lock configuration: {type(exc).__name__} {code}".rstrip()
        ) from None
    enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
    if enabled != "Enabled":
        raise _refused(
            path,
            f"bucket {bucket} does not have S3 Object Lock enabled (ObjectLockEnabled is "
            f"{enabled!r}); enable it on the bucket, or remove retention_days",
        )


def _check_azure(path: ObjectStoragePath) -> None:
    from fsspec.asyn import sync  # type: ignore[import-untyped]

    container = str(path.path).lstrip("/").partition("/")[0]
    fs = path.fs
    try:
        properties = sync(fs.loop, fs.service_client.get_container_client(container).get_container_properties)
    except Exception as exc:
        raise _refused(path, f"could not read container {container}'s properties: {type(exc).__name__}") from None
    if not getattr(properties, "immutable_storage_with_versioning_enabled", False):
        raise _refused(
            path,
            f"container {container} does not have version-level immutability enabled. Enable it "
            "on the container (or the storage account), or remove retention_days",
        )


def case_names(stored: StoredAction) -> list[str]:
    """Every object of the stored case by name: the results, the manifest and, when signed, its signature."""
    names = [entry.path for entry in stored.manifest.files] + [MANIFEST_NAME]
    if stored.signed_by is not None:
        names.append(_SIGNATURE_NAME)
    return names


def lock_case(stored: StoredAction, lock: Retention | None, now: datetime) -> list[str]:
    """Put every object of ``stored`` under ``lock`` from ``now``; returns the locked objects' URLs."""
    if lock is None:
        return []
    until = lock.until(now)
    locked = []
    for name in case_names(stored):
        path = stored.folder.child(name)
        try:
            _lock(path, lock, until)
        except LiveResponseError:
            raise
        except Exception as exc:
            raise LiveResponseError(
                f"could not put {shown(path)} under a retention lock ({lock.describe()}): {type(exc).__name__} "
                f"{_error_code(exc)}".rstrip()
                + "; the case is stored but not locked: rerun the task to lock it"
            ) from None
        locked.append(shown(path))
    return locked


def _s3_stronger(path: ObjectStoragePath, bucket: str, key: str, mode: str, until: datetime) -> tuple[str, datetime]:
    """The retention to put on the object's current version so that it is never weakened: the stronger mode
    (COMPLIANCE over GOVERNANCE, which S3 refuses to switch back) and the later date of the one asked for and the
    one it has; ``("", ...)`` when what it has already holds as long and as strictly (a rerun's objects)."""
    try:
        held = path.fs.call_s3("get_object_retention", Bucket=bucket, Key=key).get("Retention", {})
    except Exception as exc:
        if _error_code(exc) in {"NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"}:
            return mode, until
        raise
    held_mode, held_until = str(held.get("Mode", "")), held.get("RetainUntilDate")
    if not isinstance(held_until, datetime):
        return mode, until
    stronger = "COMPLIANCE" if "COMPLIANCE" in {mode, held_mode} else mode
    later = max(until, held_until)
    if stronger == held_mode and later == held_until:
        return "", held_until
    return stronger, later


def _lock(path: ObjectStoragePath, lock: Retention, until: datetime) -> None:
    protocol = (path.protocol or "file").lower()
    bucket, _, key = str(path.path).lstrip("/").partition("/")
    if protocol in _S3:
        mode, until = _s3_stronger(path, bucket, key, lock.mode.upper(), until)
        if mode:
            path.fs.call_s3(
                "put_object_retention", Bucket=bucket, Key=key, Retention={"Mode": mode, "RetainUntilDate": until}
            )
    elif protocol in _AZURE:
        from fsspec.asyn import sync  # type: ignore[import-untyped]

        fs = path.fs
        blob = fs.service_client.get_blob_client(bucket, key)
        policy = _ImmutabilityPolicy(until, "Locked" if lock.mode == "compliance" else "Unlocked")
        sync(fs.loop, blob.set_immutability_policy, policy)
    else:  # check_supported refused it before anything was copied
        raise LiveResponseError(f"retention locks are not supported on {protocol}://")
