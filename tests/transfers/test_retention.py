"""Retention locks on the transfer (retention_days / retention_mode), against the servers that run here.

- S3 Object Lock is tested for real on SeaweedFS, which enforces it: in a bucket created with Object Lock
  enabled, every object of the case (results and manifest) gets the retention asked for, and deleting a locked
  version is refused, by the transfer's identity and by the Admin one; an identical rerun locks the new manifest
  version too. A bucket without Object Lock fails the task naming retention_days and the fix, before any MDE call.
  (SeaweedFS lets only an identity with its Admin action call PutObjectRetention, so the locking connection here
  uses that identity; on AWS it is the s3:PutObjectRetention permission.)
- Azure immutability policies cannot be tested here: Azurite (3.35) does not implement them (Set Blob Immutability
  Policy and legal holds answer "Current API is not implemented yet"), so only the check before any MDE call is
  tested: an Azurite container has no version-level immutability, and the task fails saying so.
- file:// and gs:// are refused, naming retention_days.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.transfers.retention import Retention, retention
from tests.transfers.test_object_stores import COMMANDS, NAMES
from tests.transfers.transfer_helpers import WS1, RecordingTaskInstance

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.simulator import Simulator
    from tests.transfers.storage_servers import AzuriteServer, GcsServer, S3Server
    from tests.transfers.transfer_helpers import Actions, Transfer

#: The wall clock handed to the operator: locks run from here (a date in the future, as S3 requires of the end).
LOCKED_AT = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)


def calls(simulator: Simulator) -> int:
    return sum(value for key, value in simulator.state.counters.items() if key.startswith("calls:"))


def run_locked(transfer: Transfer, **kwargs: Any) -> dict[str, Any]:
    operator = transfer.operator(**kwargs)
    operator.wall_clock = lambda: LOCKED_AT
    return operator.execute({"ti": RecordingTaskInstance()})  # type: ignore[arg-type]


@pytest.fixture
def locked_bucket(seaweedfs: S3Server, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A new bucket with Object Lock enabled, and a connection (the Admin identity) that may lock in it."""
    bucket = f"locked-{uuid.uuid4().hex[:10]}"
    admin: Any = seaweedfs.client(admin=True)
    admin.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    monkeypatch.setenv("AIRFLOW_CONN_SEAWEED_LOCKING", seaweedfs.connection_json(admin=True))
    return bucket, "seaweed_locking"


def test_s3_object_lock_holds_every_object_of_the_case(
    actions: Actions, transfer: Transfer, seaweedfs: S3Server, locked_bucket: tuple[str, str]
) -> None:
    import botocore.exceptions

    bucket, conn_id = locked_bucket
    action_id = actions.finish(COMMANDS)
    destination = f"s3://{conn_id}@{bucket}/cases"
    run_locked(transfer, action_id=action_id, destination=destination, retention_days=30, retention_mode="compliance")

    admin: Any = seaweedfs.client(admin=True)
    folder = f"cases/{WS1}/{action_id}"
    for name in [*NAMES, "manifest.json"]:
        held = admin.get_object_retention(Bucket=bucket, Key=f"{folder}/{name}")["Retention"]
        assert held["Mode"] == "COMPLIANCE", name
        assert held["RetainUntilDate"] == Retention(30).until(LOCKED_AT), name
    (version,) = admin.list_object_versions(Bucket=bucket, Prefix=f"{folder}/{NAMES[1]}")["Versions"]
    for client in (seaweedfs.client(), admin):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            client.delete_object(Bucket=bucket, Key=f"{folder}/{NAMES[1]}", VersionId=version["VersionId"])
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    body = admin.get_object(Bucket=bucket, Key=f"{folder}/{NAMES[1]}", VersionId=version["VersionId"])["Body"]
    assert len(body.read()) > 0

    # A rerun asking for less (governance, 10 days) never weakens a lock; the manifest it rewrites (a new version)
    # is locked too, the first version still is.
    again = run_locked(transfer, action_id=action_id, destination=destination, retention_days=10)
    assert [f["outcome"] for f in again["files"]] == ["already_present"] * 3
    held = admin.get_object_retention(Bucket=bucket, Key=f"{folder}/{NAMES[1]}")["Retention"]
    assert (held["Mode"], held["RetainUntilDate"]) == ("COMPLIANCE", Retention(30).until(LOCKED_AT))
    manifests = admin.list_object_versions(Bucket=bucket, Prefix=f"{folder}/manifest.json")["Versions"]
    assert len(manifests) == 2
    kept = [
        admin.get_object_retention(Bucket=bucket, Key=f"{folder}/manifest.json", VersionId=item["VersionId"])
        for item in manifests
    ]
    assert sorted((k["Retention"]["Mode"], k["Retention"]["RetainUntilDate"]) for k in kept) == [
        ("COMPLIANCE", Retention(30).until(LOCKED_AT)),
        ("GOVERNANCE", Retention(10).until(LOCKED_AT)),
    ]


def test_s3_a_bucket_without_object_lock_fails_before_any_mde_call(
    simulator: Simulator, actions: Actions, transfer: Transfer, seaweedfs: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEAWEED_LOCKING", seaweedfs.connection_json(admin=True))
    action_id = actions.finish(COMMANDS)
    before = calls(simulator)
    with pytest.raises(LiveResponseConfigError) as info:
        run_locked(
            transfer, action_id=action_id, destination=f"s3://seaweed_locking@{seaweedfs.bucket}/c", retention_days=7
        )
    message = str(info.value)
    assert "retention_days" in message
    assert f"bucket {seaweedfs.bucket} does not have S3 Object Lock enabled" in message
    assert "nothing was copied" in message
    assert calls(simulator) == before


def test_s3_a_connection_that_may_not_read_the_lock_configuration_is_named(
    simulator: Simulator,
    actions: Actions,
    transfer: Transfer,
    seaweedfs: S3Server,
    s3_conn: str,
    locked_bucket: tuple[str, str],
) -> None:
    bucket, _ = locked_bucket
    action_id = actions.finish(COMMANDS)
    before = calls(simulator)
    with pytest.raises(LiveResponseConfigError) as info:
        run_locked(transfer, action_id=action_id, destination=f"s3://{s3_conn}@{bucket}/c", retention_days=7)
    assert "s3:GetBucketObjectLockConfiguration" in str(info.value)
    assert calls(simulator) == before


def test_abfs_a_container_without_version_level_immutability_fails_before_any_mde_call(
    simulator: Simulator, actions: Actions, transfer: Transfer, azurite: AzuriteServer, azure_conn: str
) -> None:
    action_id = actions.finish(COMMANDS)
    before = calls(simulator)
    with pytest.raises(LiveResponseConfigError) as info:
        run_locked(
            transfer, action_id=action_id, destination=f"abfs://{azure_conn}@{azurite.container}/c", retention_days=7
        )
    assert f"container {azurite.container} does not have version-level immutability enabled" in str(info.value)
    assert calls(simulator) == before


def test_local_folders_and_gs_are_refused_naming_retention_days(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path, fake_gcs: GcsServer, gcs_conn: str
) -> None:
    action_id = actions.finish(COMMANDS)
    before = calls(simulator)
    evidence = tmp_path / "evidence"
    with pytest.raises(LiveResponseConfigError, match="retention_days: retention locks need an object store"):
        run_locked(transfer, action_id=action_id, destination=evidence.as_uri(), retention_days=7)
    with pytest.raises(LiveResponseConfigError, match="supported on s3:// and abfs://, not on gs://"):
        run_locked(transfer, action_id=action_id, destination=f"gs://{gcs_conn}@{fake_gcs.bucket}/c", retention_days=7)
    assert calls(simulator) == before
    assert not evidence.exists()


@pytest.mark.parametrize(
    ("days", "mode", "message"),
    [
        (0, "governance", "retention_days must be a whole number from 1 to 36500; got 0"),
        (36_501, "governance", "retention_days must be a whole number from 1 to 36500"),
        ("30", "governance", "retention_days must be a whole number, got '30'"),
        (True, "governance", "retention_days must be a whole number, got True"),
        (7, "COMPLIANCE", "retention_mode must be one of 'governance', 'compliance'; got 'COMPLIANCE'"),
        (None, "legal-hold", "retention_mode must be one of"),
    ],
)
def test_bad_retention_settings_name_the_field(days: Any, mode: Any, message: str) -> None:
    with pytest.raises(LiveResponseConfigError) as info:
        retention(days, mode)
    assert message in str(info.value)


def test_retention_settings_are_checked_with_the_others(transfer: Transfer) -> None:
    assert retention(None, "governance") is None
    assert retention(7, "compliance") == Retention(7, "compliance")
    operator = transfer.operator(action_id=str(uuid.uuid4()), destination="s3://b/c", retention_days=-1)
    with pytest.raises(LiveResponseConfigError, match="retention_days must be a whole number from 1"):
        operator._checked()
