"""Helpers of the signing and verify tests: Ed25519 keys, and case folders written by hand in the transfer's layout
(``{machine_id}/{action_id}/`` with ``manifest.json`` and, when signed, ``manifest.json.sig``)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from airflow_provider_liveresponse.signing import ManifestSigner, public_key_pem

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MACHINE_ID = "0123456789abcdef0123456789abcdef01234567"
ACTION_ID = "7c1d4ea0-5b0e-4a34-9d2e-000000000001"
WHEN = "2026-01-02T03:04:05+00:00"


def private_pem(key: Ed25519PrivateKey) -> str:
    """The key as PKCS#8 PEM, as ``openssl genpkey -algorithm ed25519`` writes it."""
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode("ascii")


def write_public_key(key: Ed25519PrivateKey, path: Path) -> Path:
    path.write_text(public_key_pem(key.public_key()))
    return path


def signing_connection(key: Ed25519PrivateKey) -> str:
    """An Airflow connection (JSON, for an AIRFLOW_CONN_ variable) whose password holds ``key``."""
    return json.dumps({"conn_type": "generic", "password": private_pem(key)})


def file_entry(name: str, data: bytes, index: int = 0) -> dict[str, Any]:
    """A ``files`` entry as the transfer operator writes it, for a collected file stored decompressed."""
    digest = {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
    }
    return {
        "path": name,
        "uri": f"file:///evidence/{MACHINE_ID}/{ACTION_ID}/{name}",
        **digest,
        "stored_form": "collected_file",
        "outcome": "stored",
        "retrieved_at": WHEN,
        "command": {
            "index": index,
            "type": "GetFile",
            "device_path": f"C:\\Evidence\\{name}",
            "script_name": None,
            "script_args": None,
            "status": "Completed",
            "start_time": WHEN,
            "end_time": WHEN,
        },
        "blob": {
            "file_name": f"{name}.gz",
            "content_type": "application/octet-stream",
            "compression": "gzip",
            **digest,
        },
        "content": digest,
        "transfer": {"links_requested": 1, "resumes": 0},
    }


def manifest_document(entries: list[dict[str, Any]], machine_id: str = MACHINE_ID) -> dict[str, Any]:
    """A whole manifest in the operator's shape."""
    return {
        "manifest_version": 1,
        "generator": {
            "package": "airflow-provider-liveresponse",
            "version": "0.1.0",
            "operator": "LiveResponseToObjectStorageOperator",
        },
        "written_at": WHEN,
        "location": f"file:///evidence/{machine_id}/{ACTION_ID}",
        "keep_compressed": False,
        "action": {
            "id": ACTION_ID,
            "status": "Succeeded",
            "machine_id": machine_id,
            "computer_dns_name": "ws-0001.contoso.local",
            "requestor": "responder@contoso.com",
            "requestor_comment": "case 42",
            "creation_date_time_utc": WHEN,
            "last_update_date_time_utc": WHEN,
        },
        "files": entries,
    }


def write_manifest(folder: Path, document: Any, signer: ManifestSigner | None = None) -> bytes:
    """Write ``document`` as the folder's manifest (and sign its exact bytes with ``signer``); returns the bytes."""
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    (folder / "manifest.json").write_bytes(data)
    if signer is not None:
        (folder / "manifest.json.sig").write_bytes(signer.sign(data))
    return data


def write_case(
    root: Path,
    files: dict[str, bytes],
    *,
    machine_id: str = MACHINE_ID,
    signer: ManifestSigner | None = None,
) -> Path:
    """A case folder under ``root`` holding ``files`` and a manifest listing them; returns the folder."""
    folder = root / machine_id / ACTION_ID
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    entries = [file_entry(name, data, index) for index, (name, data) in enumerate(files.items())]
    write_manifest(folder, manifest_document(entries, machine_id), signer)
    return folder


def edit_manifest(folder: Path, change: Callable[[dict[str, Any]], None], signer: ManifestSigner | None = None) -> None:
    """Rewrite the folder's manifest after ``change`` (re-signed by ``signer`` if given, else the old signature
    stays, as a forger without the key would leave it)."""
    document = json.loads((folder / "manifest.json").read_bytes())
    change(document)
    write_manifest(folder, document, signer)


#: Files of a typical small case.
CASE_FILES = {"0_triage.zip": b"PK\x03\x04 triage " * 100, "1_hosts": b"127.0.0.1 localhost\n", "2_empty.bin": b""}
