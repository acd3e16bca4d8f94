"""verify over gs://, on what the transfer really wrote to a Google Cloud Storage emulator (fake-gcs-server): a
clean case exits 0, tampering is listed by path, and a manifest signed by the transfer (signing_conn_id) on gs://
checks as valid with the public key.

gs:// is registered for ObjectStoragePath by tests/transfers/gcs_filesystem.py (users need
apache-airflow-providers-google for it; it is not installed here)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.transfers.transfer_helpers import WS1
from tests.verify.cases import signing_connection, write_public_key
from tests.verify.test_verify_transfers import COMMANDS, NAMES, failing, verify_cli

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tests.transfers.storage_servers import GcsServer
    from tests.transfers.transfer_helpers import Actions, Transfer


def test_gs_a_stored_case_holds_and_tampering_is_listed_by_path(
    actions: Actions, transfer: Transfer, fake_gcs: GcsServer, gcs_conn: str
) -> None:
    action_id = actions.finish(COMMANDS)
    prefix = f"cases/{uuid.uuid4().hex}"
    destination = f"gs://{gcs_conn}@{fake_gcs.bucket}/{prefix}"
    transfer.run(action_id=action_id, destination=destination)
    status, report = verify_cli(destination)
    assert status == 0, report
    assert report["checked"]["objects"] == 3

    fs: Any = fake_gcs.file_system()
    folder = f"{fake_gcs.bucket}/{prefix}/{WS1}/{action_id}"
    body = bytearray(fs.cat_file(f"{folder}/{NAMES[2]}"))
    body[0] ^= 0x01
    fs.pipe_file(f"{folder}/{NAMES[2]}", bytes(body))
    fs.rm(f"{folder}/{NAMES[1]}")
    fs.pipe_file(f"{folder}/4_planted.txt", b"planted")
    status, report = verify_cli(destination)
    case = f"{WS1}/{action_id}"
    assert status == 1
    assert failing(report) == [
        ("missing", f"{case}/{NAMES[1]}"),
        ("changed", f"{case}/{NAMES[2]}"),
        ("extra", f"{case}/4_planted.txt"),
    ]


def test_gs_a_manifest_signed_by_the_transfer_is_valid(
    actions: Actions,
    transfer: Transfer,
    fake_gcs: GcsServer,
    gcs_conn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = Ed25519PrivateKey.generate()
    monkeypatch.setenv("AIRFLOW_CONN_GCS_SIGNING", signing_connection(key))
    action_id = actions.finish(COMMANDS)
    destination = f"gs://{gcs_conn}@{fake_gcs.bucket}/cases/{uuid.uuid4().hex}"
    transfer.run(action_id=action_id, destination=destination, signing_conn_id="gcs_signing")

    status, report = verify_cli(destination, "--public-key", str(write_public_key(key, tmp_path / "k.pub")))
    assert status == 0, report
    assert [m["signature"] for m in report["manifests"]] == ["valid"]

    other = write_public_key(Ed25519PrivateKey.generate(), tmp_path / "other.pub")
    status, report = verify_cli(destination, "--public-key", str(other))
    assert status == 1
    assert [m["signature"] for m in report["manifests"]] != ["valid"]
