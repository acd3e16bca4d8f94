"""The transfer to real object stores, s3:// on SeaweedFS and abfs:// on Azurite, and the result reader against
real Azure SAS links served by Azurite."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_liveresponse.exceptions import LiveResponseApiError, LiveResponseError
from airflow_provider_liveresponse.hooks.result_reader import ResultReader
from airflow_provider_liveresponse.models import GetFile, RunScript
from tests.transfers.storage_servers import AZURITE_ACCOUNT, AZURITE_KEY, S3_SECRET_KEY
from tests.transfers.transfer_helpers import WS1

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator import Simulator
    from tests.transfers.storage_servers import AzuriteServer, S3Server
    from tests.transfers.transfer_helpers import Actions, Transfer

MIB = 1024 * 1024
COMMANDS = [RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\triage.zip"), GetFile(r"C:\Evidence\sim-size-0.bin")]
NAMES = ["0_triage.ps1.transcript.json", "1_triage.zip", "2_sim-size-0.bin"]


def s3_objects(server: S3Server, prefix: str) -> dict[str, bytes]:
    client: Any = server.client()
    listed = client.list_objects_v2(Bucket=server.bucket, Prefix=prefix).get("Contents", [])
    return {
        item["Key"][len(prefix) :]: client.get_object(Bucket=server.bucket, Key=item["Key"])["Body"].read()
        for item in listed
    }


def azure_objects(server: AzuriteServer, prefix: str) -> dict[str, bytes]:
    container: Any = server.service().get_container_client(server.container)  # type: ignore[attr-defined]
    return {
        blob.name[len(prefix) :]: container.download_blob(blob.name).readall()
        for blob in container.list_blobs(name_starts_with=prefix)
    }


def check_round_trip(sim: Simulator, action_id: str, manifest: dict[str, Any], objects: dict[str, bytes]) -> None:
    folder = f"{WS1}/{action_id}/"
    assert sorted(objects) == sorted(folder + name for name in [*NAMES, "manifest.json"])
    assert json.loads(objects[folder + "manifest.json"]) == manifest
    for index, entry in enumerate(manifest["files"]):
        body = objects[folder + entry["path"]]
        assert (len(body), hashlib.sha256(body).hexdigest()) == (entry["size"], entry["sha256"])
        assert hashlib.md5(body, usedforsecurity=False).hexdigest() == entry["md5"]
        assert entry["sha256"] == sim.state.result_digest(action_id, index)["raw"]["sha256"]
        assert entry["uri"].endswith(folder + entry["path"])


# -- S3 (SeaweedFS) ----------------------------------------------------------------------------------------


def test_the_s3_server_checks_request_signatures(seaweedfs: S3Server) -> None:
    import botocore.exceptions

    forged: Any = seaweedfs.client(secret_key="not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        forged.list_objects_v2(Bucket=seaweedfs.bucket)
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_s3_round_trip_and_idempotent_rerun(
    simulator: Simulator, actions: Actions, transfer: Transfer, seaweedfs: S3Server, s3_conn: str
) -> None:
    action_id = actions.finish(COMMANDS)
    prefix = f"cases/{uuid.uuid4().hex}/"
    destination = f"s3://{s3_conn}@{seaweedfs.bucket}/{prefix.rstrip('/')}"
    manifest = transfer.run(action_id=action_id, destination=destination)
    check_round_trip(simulator, action_id, manifest, s3_objects(seaweedfs, prefix))
    assert manifest["location"] == f"s3://{s3_conn}@{seaweedfs.bucket}/{prefix}{WS1}/{action_id}"

    again = transfer.run(action_id=action_id, destination=f"s3://{seaweedfs.bucket}/{prefix}", dest_conn_id=s3_conn)
    assert [f["outcome"] for f in again["files"]] == ["already_present"] * 3
    check_round_trip(simulator, action_id, again, s3_objects(seaweedfs, prefix))


def test_s3_a_different_object_is_kept_and_the_task_fails(
    actions: Actions, transfer: Transfer, seaweedfs: S3Server, s3_conn: str
) -> None:
    action_id = actions.finish([GetFile(r"C:\Windows\System32\drivers\etc\hosts")])
    prefix = f"cases/{uuid.uuid4().hex}/"
    key = f"{prefix}{WS1}/{action_id}/0_hosts"
    client: Any = seaweedfs.client()
    client.put_object(Bucket=seaweedfs.bucket, Key=key, Body=b"someone else's hosts file")
    with pytest.raises(LiveResponseError) as info:
        transfer.run(action_id=action_id, destination=f"s3://{s3_conn}@{seaweedfs.bucket}/{prefix}")
    assert "already exists with SHA-256" in str(info.value)
    assert s3_objects(seaweedfs, prefix) == {f"{WS1}/{action_id}/0_hosts": b"someone else's hosts file"}


def test_s3_a_failed_transfer_leaves_no_object(
    simulator: Simulator, actions: Actions, transfer: Transfer, seaweedfs: S3Server, s3_conn: str
) -> None:
    action_id = actions.finish([GetFile(rf"C:\Evidence\sim-size-{2 * MIB}.bin")])
    prefix = f"cases/{uuid.uuid4().hex}/"
    simulator.state.faults.set("blob", cut_after_bytes=100_000, cut_mode="always")
    with pytest.raises(LiveResponseApiError):
        transfer.run(
            action_id=action_id,
            destination=f"s3://{s3_conn}@{seaweedfs.bucket}/{prefix}",
            max_resumes=1,
            chunk_size=64 * 1024,
        )
    assert s3_objects(seaweedfs, prefix) == {}


# -- Azure Blob (Azurite) ----------------------------------------------------------------------------------


def test_abfs_round_trip_and_idempotent_rerun(
    simulator: Simulator, actions: Actions, transfer: Transfer, azurite: AzuriteServer, azure_conn: str
) -> None:
    action_id = actions.finish(COMMANDS)
    prefix = f"cases/{uuid.uuid4().hex}/"
    destination = f"abfs://{azure_conn}@{azurite.container}/{prefix}"
    manifest = transfer.run(action_id=action_id, destination=destination)
    check_round_trip(simulator, action_id, manifest, azure_objects(azurite, prefix))

    again = transfer.run(action_id=action_id, destination=destination)
    assert [f["outcome"] for f in again["files"]] == ["already_present"] * 3
    check_round_trip(simulator, action_id, again, azure_objects(azurite, prefix))


def test_abfs_keep_compressed_and_a_failed_transfer_leaves_no_blob(
    simulator: Simulator, actions: Actions, transfer: Transfer, azurite: AzuriteServer, azure_conn: str
) -> None:
    action_id = actions.finish([GetFile(rf"C:\Evidence\sim-size-{MIB}.bin")])
    prefix = f"cases/{uuid.uuid4().hex}/"
    destination = f"abfs://{azure_conn}@{azurite.container}/{prefix}"
    simulator.state.faults.set("blob", cut_after_bytes=100_000, cut_mode="always")
    with pytest.raises(LiveResponseApiError):
        transfer.run(action_id=action_id, destination=destination, max_resumes=1, keep_compressed=True)
    assert azure_objects(azurite, prefix) == {}

    simulator.state.faults.clear("blob")
    manifest = transfer.run(action_id=action_id, destination=destination, keep_compressed=True)
    stored = azure_objects(azurite, prefix)[f"{WS1}/{action_id}/0_sim-size-{MIB}.bin.gz"]
    expected = simulator.state.result_digest(action_id, 0)
    assert hashlib.sha256(stored).hexdigest() == expected["compressed"]["sha256"] == manifest["files"][0]["sha256"]
    assert hashlib.sha256(gzip.decompress(stored)).hexdigest() == manifest["files"][0]["content"]["sha256"]


# -- the result reader against real Azure SAS links ----------------------------------------------------------


def _upload(azurite: AzuriteServer, size: int) -> tuple[str, bytes]:
    from azure.storage.blob import ContentSettings

    name = f"mde-results/{uuid.uuid4()}/0/evidence.bin.gz"
    data = gzip.compress(random.Random(size).randbytes(size), compresslevel=1)
    container: Any = azurite.service().get_container_client(azurite.container)  # type: ignore[attr-defined]
    container.upload_blob(
        name, data, content_settings=ContentSettings(content_disposition='attachment; filename="evidence.bin.gz"')
    )
    return name, data


def _sas_link(azurite: AzuriteServer, name: str, expiry: datetime, *, forged: bool = False) -> str:
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    token = generate_blob_sas(
        account_name=AZURITE_ACCOUNT,
        container_name=azurite.container,
        blob_name=name,
        account_key=AZURITE_KEY,
        permission=BlobSasPermissions(read=True),
        start=datetime.now(UTC) - timedelta(hours=1),
        expiry=expiry,
    )
    if forged:
        token = token.replace("sig=", "sig=AAAA")
    return f"{azurite.blob_endpoint}/{azurite.container}/{name}?{token}"


def test_an_expired_azure_sas_is_refused_and_the_reader_asks_for_a_new_link(azurite: AzuriteServer) -> None:
    name, data = _upload(azurite, 3 * MIB)
    expired = _sas_link(azurite, name, datetime.now(UTC) - timedelta(minutes=1))
    refused = requests.get(expired, timeout=30)
    assert refused.status_code == 403
    # Azure answers AuthenticationFailed, Azurite AuthorizationFailure: both 403, which is what the reader acts on.
    assert refused.headers["x-ms-error-code"] in {"AuthenticationFailed", "AuthorizationFailure"}
    links = [expired, _sas_link(azurite, name, datetime.now(UTC) + timedelta(minutes=30))]

    with ResultReader(
        lambda: links.pop(0),
        requests.Session(),
        action_id="7c1d4ea0-5b0e-4a34-9d2e-00000000a201",
        index=0,
        sleep=lambda _: None,
    ) as reader:
        body = b"".join(reader.iter_chunks(256 * 1024))

    assert body == data
    assert reader.links_requested == 2
    assert reader.sha256 == hashlib.sha256(data).hexdigest()
    assert reader.size == len(data)
    assert reader.content_md5  # Azure's Content-MD5 was there, and checked
    assert reader.file_name == "evidence.bin.gz"


def test_a_forged_azure_sas_fails_without_showing_the_signature(azurite: AzuriteServer) -> None:
    name, _ = _upload(azurite, 1024)
    forged = [_sas_link(azurite, name, datetime.now(UTC) + timedelta(minutes=30), forged=True) for _ in range(2)]
    with pytest.raises(LiveResponseApiError) as info:
        ResultReader(
            lambda: forged.pop(0), requests.Session(), action_id="7c1d4ea0-5b0e-4a34-9d2e-00000000a202", index=0
        )
    assert info.value.status == 403
    assert forged == []  # the reader asked for a second link before giving up
    message = str(info.value)
    assert name in message
    assert "sig=" not in message
    assert "?" not in message.split("Action:")[0]


def test_s3_a_missing_bucket_is_a_clear_error(
    simulator: Simulator, actions: Actions, transfer: Transfer, seaweedfs: S3Server, s3_conn: str
) -> None:
    action_id = actions.finish([GetFile(r"C:\Windows\System32\drivers\etc\hosts")])
    with pytest.raises(LiveResponseError) as info:
        transfer.run(action_id=action_id, destination=f"s3://{s3_conn}@no-such-bucket-{uuid.uuid4().hex[:8]}/cases")
    message = str(info.value)
    assert "command 0 (GetFile C:\\Windows\\System32\\drivers\\etc\\hosts)" in message
    assert action_id in message
    assert "check the destination's connection, bucket or container and permissions" in message
    assert S3_SECRET_KEY not in message
