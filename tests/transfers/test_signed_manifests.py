"""signing_conn_id on the transfer: the manifest signed over the exact bytes written, the signature beside it,
verify passing on it and catching tampering, a bad key failing before any API call, a stale signature removed on
an unsigned rerun, and the key never in a log, XCom, the manifest or on the operator."""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from airflow_provider_liveresponse.__main__ import run
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.signing import check_signature, fingerprint
from tests.transfers.transfer_helpers import WS1
from tests.verify.cases import private_pem, signing_connection, write_public_key

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.simulator import Simulator
    from tests.transfers.transfer_helpers import Actions, Transfer

CONN = "manifest_signing"
COMMANDS = [RunScript("triage.ps1"), GetFile(r"C:\Evidence\sim-size-70000.bin")]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", signing_connection(key))
    return key


def verify_cli(root: Path, public_key: Path) -> tuple[int, dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    status = run(["verify", root.as_uri(), "--public-key", str(public_key), "--json"], stdout=out, stderr=err)
    return status, json.loads(out.getvalue()) if out.getvalue() else {"error": err.getvalue()}


def api_calls(sim: Simulator) -> int:
    return sum(v for k, v in sim.state.counters.items() if k.startswith("calls:"))


def test_the_manifest_is_signed_over_the_exact_bytes_written(
    key: Ed25519PrivateKey, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish(COMMANDS)
    transfer.run(action_id=action_id, destination=tmp_path.as_uri(), signing_conn_id=CONN)

    folder = tmp_path / WS1 / action_id
    check = check_signature(
        (folder / "manifest.json").read_bytes(), (folder / "manifest.json.sig").read_bytes(), key.public_key()
    )
    assert check.valid, check
    assert json.loads((folder / "manifest.json.sig").read_bytes())["key_fingerprint"] == fingerprint(key.public_key())


def test_verify_passes_on_what_the_signing_operator_wrote_and_catches_tampering(
    key: Ed25519PrivateKey, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish(COMMANDS)
    root = tmp_path / "evidence"
    transfer.run(action_id=action_id, destination=root.as_uri(), signing_conn_id=CONN)
    public_key = write_public_key(key, tmp_path / "signing.pub.pem")
    status, report = verify_cli(root, public_key)
    assert status == 0, report

    manifest = root / WS1 / action_id / "manifest.json"
    document = json.loads(manifest.read_bytes())
    stored = root / WS1 / action_id / document["files"][1]["path"]
    stored.write_bytes(b"altered evidence")
    document["files"][1]["sha256"] = "0" * 64
    document["files"][1]["size"] = len(b"altered evidence")
    manifest.write_text(json.dumps(document, indent=2) + "\n")
    status, report = verify_cli(root, public_key)
    assert status == 1
    assert [m["signature"] for m in report["manifests"]] == ["invalid"]


def test_a_bad_key_fails_the_task_naming_the_connection_before_any_api_call(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    action_id = actions.finish(COMMANDS)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "generic", "password": "not a key"}))
    before = api_calls(simulator)
    with pytest.raises(LiveResponseConfigError, match=rf"signing_conn_id: .*connection '{CONN}'.*nothing was copied"):
        transfer.run(action_id=action_id, destination=tmp_path.as_uri(), signing_conn_id=CONN)
    assert api_calls(simulator) == before
    assert not (tmp_path / WS1).exists()


def test_an_unsigned_rerun_removes_the_stale_signature(
    key: Ed25519PrivateKey, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish(COMMANDS)
    transfer.run(action_id=action_id, destination=tmp_path.as_uri(), signing_conn_id=CONN)
    transfer.run(action_id=action_id, destination=tmp_path.as_uri())

    folder = tmp_path / WS1 / action_id
    assert (folder / "manifest.json").exists()
    assert not (folder / "manifest.json.sig").exists()


def test_without_signing_conn_id_no_signature_is_written(actions: Actions, transfer: Transfer, tmp_path: Path) -> None:
    action_id = actions.finish(COMMANDS)
    transfer.run(action_id=action_id, destination=tmp_path.as_uri())
    assert sorted(p.name for p in (tmp_path / WS1 / action_id).iterdir())[-1] == "manifest.json"


def test_the_key_reaches_no_log_xcom_manifest_or_operator_attribute(
    key: Ed25519PrivateKey, actions: Actions, transfer: Transfer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    action_id = actions.finish(COMMANDS)
    operator = transfer.operator(action_id=action_id, destination=tmp_path.as_uri(), signing_conn_id=CONN)
    with caplog.at_level(logging.DEBUG):
        returned = operator.execute({"ti": transfer.ti})  # type: ignore[arg-type,typeddict-item,unused-ignore]

    body = "".join(line for line in private_pem(key).splitlines() if not line.startswith("-----"))
    seen = [
        caplog.text,
        json.dumps(returned),
        json.dumps(transfer.ti.xcom, default=str),
        (tmp_path / WS1 / action_id / "manifest.json").read_text(),
        repr(vars(operator)),
    ]
    assert not [text for text in seen if body[:40] in text]
    from airflow_provider_liveresponse.signing import ManifestSigner

    assert not [v for v in vars(operator).values() if isinstance(v, ManifestSigner)]
