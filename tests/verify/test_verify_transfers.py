"""verify on what LiveResponseToObjectStorageOperator really writes, against the simulator: on file://, on s3://
(SeaweedFS) and on abfs:// (Azurite); clean cases exit 0, every tampering is listed by path with exit 1."""

from __future__ import annotations

import io
import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from airflow_provider_liveresponse.__main__ import run
from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.signing import ManifestSigner
from tests.transfers.transfer_helpers import WS1
from tests.verify.cases import write_public_key

if TYPE_CHECKING:
    from pathlib import Path

    from tests.transfers.storage_servers import AzuriteServer, S3Server
    from tests.transfers.transfer_helpers import Actions, Transfer

COMMANDS = [RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\triage.zip"), GetFile(r"C:\Evidence\sim-size-70000.bin")]
NAMES = ["0_triage.ps1.transcript.json", "1_triage.zip", "2_sim-size-70000.bin"]


def verify_cli(*argv: str) -> tuple[int, dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    status = run(["verify", *argv, "--json"], stdout=out, stderr=err)
    return status, json.loads(out.getvalue()) if out.getvalue() else {"error": err.getvalue()}


def failing(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["kind"], p["path"]) for p in report["problems"] if p["fails"]]


class Case:
    """An action's results stored by the operator under ``root``, the manifest signed with ``key``."""

    def __init__(self, root: Path, action_id: str, key: Ed25519PrivateKey, public_key: Path) -> None:
        self.root, self.action_id, self.key, self.public_key = root, action_id, key, public_key
        self.prefix = f"{WS1}/{action_id}"
        self.folder = root / WS1 / action_id

    def sign(self) -> None:
        manifest = (self.folder / "manifest.json").read_bytes()
        (self.folder / "manifest.json.sig").write_bytes(ManifestSigner(self.key).sign(manifest))

    def edit_manifest(self, change: Any) -> None:
        document = json.loads((self.folder / "manifest.json").read_bytes())
        change(document)
        (self.folder / "manifest.json").write_text(json.dumps(document, indent=2) + "\n")

    def verify(self) -> tuple[int, dict[str, Any]]:
        return verify_cli(self.root.as_uri(), "--public-key", str(self.public_key))


@pytest.fixture
def case(actions: Actions, transfer: Transfer, tmp_path: Path) -> Case:
    action_id = actions.finish(COMMANDS)
    root = tmp_path / "evidence"
    transfer.run(action_id=action_id, destination=root.as_uri())
    key = Ed25519PrivateKey.generate()
    stored = Case(root, action_id, key, write_public_key(key, tmp_path / "signing-key.pub.pem"))
    stored.sign()
    return stored


# -- file:// ----------------------------------------------------------------------------------------------------


def test_a_case_the_operator_stored_holds(case: Case) -> None:
    status, report = case.verify()
    assert status == 0, report
    assert report["checked"]["objects"] == 3
    assert [(m["path"], m["signature"], m["files"]) for m in report["manifests"]] == [
        (f"{case.prefix}/manifest.json", "valid", 3)
    ]
    assert sorted(p.name for p in case.folder.iterdir()) == sorted([*NAMES, "manifest.json", "manifest.json.sig"])


def test_an_unsigned_case_the_operator_stored_holds_without_a_key(
    actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish(COMMANDS)
    root = tmp_path / "evidence"  # tmp_path holds the simulator's own files too
    transfer.run(action_id=action_id, destination=root.as_uri(), keep_compressed=True)
    status, report = verify_cli(str(root))
    assert status == 0, report
    assert [p["kind"] for p in report["problems"]] == ["unsigned"]


def test_a_rerun_of_the_transfer_still_holds(case: Case, transfer: Transfer) -> None:
    transfer.run(action_id=case.action_id, destination=case.root.as_uri())
    case.sign()  # the rerun rewrote the manifest
    assert case.verify()[0] == 0


def test_a_changed_byte_in_a_collected_file_is_caught(case: Case) -> None:
    path = case.folder / "2_sim-size-70000.bin"
    data = bytearray(path.read_bytes())
    data[40_000] ^= 0xFF
    path.write_bytes(bytes(data))
    status, report = case.verify()
    assert status == 1
    assert failing(report) == [("changed", f"{case.prefix}/2_sim-size-70000.bin")]


def test_a_file_changed_with_its_digest_in_the_manifest_is_caught_by_the_signature(case: Case) -> None:
    import hashlib

    forged = b'{"exit_code": 0, "script_output": "nothing found", "script_errors": ""}'
    (case.folder / NAMES[0]).write_bytes(forged)

    def change(document: dict[str, Any]) -> None:
        document["files"][0].update(size=len(forged), sha256=hashlib.sha256(forged).hexdigest())

    case.edit_manifest(change)
    status, report = case.verify()
    assert status == 1
    assert failing(report) == [("bad_signature", f"{case.prefix}/manifest.json")]
    assert verify_cli(case.root.as_uri())[0] == 0  # without the key, nothing else could tell


def test_a_deleted_file_is_missing(case: Case) -> None:
    (case.folder / "1_triage.zip").unlink()
    status, report = case.verify()
    assert (status, failing(report)) == (1, [("missing", f"{case.prefix}/1_triage.zip")])


def test_an_added_file_is_extra(case: Case) -> None:
    (case.folder / "3_backdoor.ps1").write_text("Invoke-Expression ...")
    status, report = case.verify()
    assert (status, failing(report)) == (1, [("extra", f"{case.prefix}/3_backdoor.ps1")])


def test_a_manifest_path_that_leaves_the_case_is_reported_not_followed(case: Case) -> None:
    (case.root / WS1 / "outside.bin").write_bytes((case.folder / "1_triage.zip").read_bytes())
    case.edit_manifest(lambda d: d["files"][1].update(path="../outside.bin"))
    case.sign()  # even a validly signed manifest may not point outside its folder
    status, report = case.verify()
    assert status == 1
    assert ("unsafe_path", "../outside.bin") in failing(report)
    assert ("extra", f"{WS1}/outside.bin") in failing(report)


def test_a_file_replaced_by_a_symlink_is_reported_not_followed(case: Case, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.zip"
    (case.folder / "1_triage.zip").rename(target)
    (case.folder / "1_triage.zip").symlink_to(target)
    status, report = case.verify()
    assert (status, failing(report)) == (1, [("link", f"{case.prefix}/1_triage.zip")])


def test_an_absurd_size_in_the_manifest_is_reported(case: Case) -> None:
    case.edit_manifest(lambda d: d["files"][2].update(size=-70_000))
    case.sign()
    status, report = case.verify()
    assert (status, failing(report)) == (1, [("bad_entry", f"{case.prefix}/2_sim-size-70000.bin")])


# -- s3:// (SeaweedFS) ------------------------------------------------------------------------------------------


@pytest.fixture
def s3_case(actions: Actions, transfer: Transfer, seaweedfs: S3Server, s3_conn: str) -> tuple[str, str, Any]:
    """An action stored by the operator on S3: the destination URL, the case's key prefix, and a boto3 client."""
    action_id = actions.finish(COMMANDS)
    prefix = f"cases/{uuid.uuid4().hex}"
    destination = f"s3://{s3_conn}@{seaweedfs.bucket}/{prefix}"
    transfer.run(action_id=action_id, destination=destination)
    return destination, f"{prefix}/{WS1}/{action_id}", seaweedfs.client()


def test_s3_a_stored_case_holds(s3_case: tuple[str, str, Any]) -> None:
    destination, _, _ = s3_case
    status, report = verify_cli(destination)
    assert status == 0, report
    assert report["checked"]["objects"] == 3


def test_s3_a_signed_case_holds_with_the_key(
    s3_case: tuple[str, str, Any], seaweedfs: S3Server, tmp_path: Path
) -> None:
    destination, folder, client = s3_case
    key = Ed25519PrivateKey.generate()
    manifest = client.get_object(Bucket=seaweedfs.bucket, Key=f"{folder}/manifest.json")["Body"].read()
    client.put_object(
        Bucket=seaweedfs.bucket, Key=f"{folder}/manifest.json.sig", Body=ManifestSigner(key).sign(manifest)
    )
    status, report = verify_cli(destination, "--public-key", str(write_public_key(key, tmp_path / "k.pub")))
    assert status == 0, report
    assert [m["signature"] for m in report["manifests"]] == ["valid"]


def test_s3_tampering_is_listed_by_path(s3_case: tuple[str, str, Any], seaweedfs: S3Server) -> None:
    destination, folder, client = s3_case
    bucket = seaweedfs.bucket
    body = bytearray(client.get_object(Bucket=bucket, Key=f"{folder}/{NAMES[2]}")["Body"].read())
    body[0] ^= 0x01
    client.put_object(Bucket=bucket, Key=f"{folder}/{NAMES[2]}", Body=bytes(body))
    client.delete_object(Bucket=bucket, Key=f"{folder}/{NAMES[1]}")
    client.put_object(Bucket=bucket, Key=f"{folder}/4_planted.txt", Body=b"planted")
    status, report = verify_cli(destination)
    case = folder.split("/", 2)[2]
    assert status == 1
    assert failing(report) == [  # in the order of their paths
        ("missing", f"{case}/{NAMES[1]}"),
        ("changed", f"{case}/{NAMES[2]}"),
        ("extra", f"{case}/4_planted.txt"),
    ]


def test_s3_a_bucket_that_does_not_exist_exits_2(seaweedfs: S3Server, s3_conn: str) -> None:
    status, report = verify_cli(f"s3://{s3_conn}@no-such-bucket-{uuid.uuid4().hex[:8]}/cases")
    assert status == 2
    assert "does not exist" in report["error"]


# -- abfs:// (Azurite) ------------------------------------------------------------------------------------------


def test_abfs_a_stored_case_holds_and_a_changed_blob_is_caught(
    actions: Actions, transfer: Transfer, azurite: AzuriteServer, azure_conn: str
) -> None:
    action_id = actions.finish(COMMANDS)
    prefix = f"cases/{uuid.uuid4().hex}"
    destination = f"abfs://{azure_conn}@{azurite.container}/{prefix}"
    transfer.run(action_id=action_id, destination=destination)
    assert verify_cli(destination)[0] == 0

    container: Any = azurite.service().get_container_client(azurite.container)  # type: ignore[attr-defined]
    container.upload_blob(f"{prefix}/{WS1}/{action_id}/{NAMES[1]}", b"not the collected file", overwrite=True)
    status, report = verify_cli(destination)
    assert (status, failing(report)) == (1, [("changed", f"{WS1}/{action_id}/{NAMES[1]}")])
