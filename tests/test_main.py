"""The command line ``python -m airflow_provider_liveresponse verify``: exit status 0, 1 or 2, the text and JSON
reports, keys from a file or a connection, progress on stderr, and a lean import."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from airflow_provider_liveresponse.__main__ import ProgressLines, run
from airflow_provider_liveresponse.signing import ManifestSigner
from tests.verify.cases import (
    ACTION_ID,
    CASE_FILES,
    MACHINE_ID,
    edit_manifest,
    signing_connection,
    write_case,
    write_public_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

FOLDER = f"{MACHINE_ID}/{ACTION_ID}"


class Outcome:
    def __init__(self, status: int, stdout: str, stderr: str) -> None:
        self.status, self.stdout, self.stderr = status, stdout, stderr


def cli(*argv: str, clock: Callable[[], float] | None = None, interval: float = 10.0) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    kwargs = {"clock": clock} if clock is not None else {}
    status = run(list(argv), stdout=out, stderr=err, progress_interval=interval, **kwargs)
    return Outcome(status, out.getvalue(), err.getvalue())


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


# -- exit status --------------------------------------------------------------------------------------------


def test_a_clean_case_exits_0_and_says_ok(tmp_path: Path) -> None:
    write_case(tmp_path, CASE_FILES)
    result = cli("verify", str(tmp_path))
    assert result.status == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("OK: every listed object is present and unchanged")
    assert f"{FOLDER}/manifest.json: 3 file(s)" in result.stdout


def test_a_tampered_case_exits_1_listing_each_item_by_path(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    (folder / "0_triage.zip").write_bytes(b"changed")
    (folder / "2_empty.bin").unlink()
    (folder / "9_added").write_bytes(b"added")
    result = cli("verify", str(tmp_path))
    assert result.status == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"CHANGED       {FOLDER}/0_triage.zip: size is 7 bytes") for line in lines)
    assert any(line.startswith(f"MISSING       {FOLDER}/2_empty.bin: ") for line in lines)
    assert any(line.startswith(f"EXTRA         {FOLDER}/9_added: ") for line in lines)
    assert lines[-1] == "FAILED: 3 problem(s) (1 changed, 1 extra, 1 missing)"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["verify"],
        ["verify", "--bogus", "x"],
        ["frobnicate", "x"],
        ["verify", "x", "--public-key", "k.pem", "--conn-id", "c"],
    ],
    ids=["nothing", "no-destination", "unknown-option", "unknown-command", "two-keys"],
)
def test_bad_usage_exits_2_with_the_usage_on_stderr(argv: list[str]) -> None:
    result = cli(*argv)
    assert result.status == 2
    assert "usage:" in result.stderr
    assert result.stdout == ""


def test_a_destination_that_does_not_exist_exits_2(tmp_path: Path) -> None:
    result = cli("verify", str(tmp_path / "nowhere"))
    assert result.status == 2
    assert "does not exist" in result.stderr
    assert result.stdout == ""


def test_a_bad_public_key_file_exits_2(tmp_path: Path) -> None:
    write_case(tmp_path, CASE_FILES)
    (tmp_path / "key.pem").write_text("not a key")
    result = cli("verify", str(tmp_path), "--public-key", str(tmp_path / "key.pem"))
    assert result.status == 2
    assert "is not a PEM public key" in result.stderr


def test_help_exits_0_on_stdout() -> None:
    result = cli("verify", "--help")
    assert result.status == 0
    assert "--public-key FILE" in result.stdout


# -- keys ---------------------------------------------------------------------------------------------------


def test_a_signed_case_checked_with_the_public_key_file_exits_0(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    signer = ManifestSigner(key)
    write_case(tmp_path / "evidence", CASE_FILES, signer=signer)
    public = write_public_key(key, tmp_path / "signing-key.pub.pem")
    result = cli("verify", str(tmp_path / "evidence"), "--public-key", str(public))
    assert result.status == 0, result.stdout
    assert f"Signatures: checked with key {signer.fingerprint}" in result.stdout
    assert f"{FOLDER}/manifest.json: 3 file(s), 1.2 KiB, signature valid" in result.stdout
    assert result.stdout.splitlines()[-1].endswith("every signature valid")


def test_a_signed_case_checked_with_the_signing_connection_exits_0(
    tmp_path: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_case(tmp_path, CASE_FILES, signer=ManifestSigner(key))
    monkeypatch.setenv("AIRFLOW_CONN_CASE_SIGNING", signing_connection(key))
    assert cli("verify", str(tmp_path), "--conn-id", "case_signing").status == 0


def test_a_forged_manifest_exits_1_with_a_key_and_0_without(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    folder = write_case(tmp_path / "evidence", CASE_FILES, signer=ManifestSigner(key))
    edit_manifest(folder, lambda d: d["action"].update(requestor="someone-else@contoso.com"))
    public = write_public_key(key, tmp_path / "signing-key.pub.pem")
    checked = cli("verify", str(tmp_path / "evidence"), "--public-key", str(public))
    assert checked.status == 1
    assert f"BAD SIGNATURE {FOLDER}/manifest.json: the manifest changed after it was signed" in checked.stdout
    unchecked = cli("verify", str(tmp_path / "evidence"))
    assert unchecked.status == 0
    assert "signature not checked" in unchecked.stdout


def test_an_unsigned_case_exits_1_when_a_key_is_given(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    write_case(tmp_path / "evidence", CASE_FILES)
    public = write_public_key(key, tmp_path / "signing-key.pub.pem")
    result = cli("verify", str(tmp_path / "evidence"), "--public-key", str(public))
    assert result.status == 1
    assert f"UNSIGNED      {FOLDER}/manifest.json: has no signature" in result.stdout


# -- the reports --------------------------------------------------------------------------------------------


def test_json_prints_one_report_on_stdout(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    (folder / "1_hosts").write_bytes(b"tampered")
    result = cli("verify", str(tmp_path), "--json")
    assert result.status == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["checked"] == {"manifests": 1, "objects": 2, "bytes": len(CASE_FILES["0_triage.zip"])}
    assert [(p["kind"], p["path"], p["fails"]) for p in report["problems"]] == [
        ("changed", f"{FOLDER}/1_hosts", True),
        ("unsigned", f"{FOLDER}/manifest.json", False),
    ]
    size = sum(len(data) for data in CASE_FILES.values())
    assert report["manifests"] == [
        {"path": f"{FOLDER}/manifest.json", "signature": "unsigned", "signed_by": None, "files": 3, "size": size}
    ]


def test_a_name_with_control_characters_cannot_forge_a_line_of_the_report(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    (folder / "x\nOK: every listed object is present and unchanged").write_bytes(b"planted")
    result = cli("verify", str(tmp_path))
    assert result.status == 1
    assert [line for line in result.stdout.splitlines() if line.startswith("OK")] == []
    assert "x\\nOK: every listed" in result.stdout
    problems = json.loads(cli("verify", str(tmp_path), "--json").stdout)["problems"]
    assert [p["path"] for p in problems if p["kind"] == "extra"] == [
        f"{FOLDER}/x\nOK: every listed object is present and unchanged"
    ]


def test_progress_goes_to_stderr_at_the_pace_of_the_clock(tmp_path: Path) -> None:
    write_case(tmp_path, {f"{i}_part.bin": bytes([i]) * 1000 for i in range(30)})
    ticks = iter(range(100_000))
    result = cli("verify", str(tmp_path), "--json", clock=lambda: float(next(ticks)), interval=5)
    assert result.status == 0
    progress = result.stderr.splitlines()
    assert 5 <= len(progress) <= 15
    assert all(line.startswith("verify: ") and " of 30 objects, " in line for line in progress)
    json.loads(result.stdout)  # nothing but the report on stdout


def test_progress_is_written_at_most_once_per_interval_of_the_clock_it_is_handed() -> None:
    ticks = iter(range(1000))
    stream = io.StringIO()
    progress = ProgressLines(stream, interval=10, clock=lambda: float(next(ticks)))
    progress.begin(objects=50, size=50 * 1024 * 1024)  # clock: 0
    for _ in range(50):
        progress.advance(size=1024 * 1024, objects=1)  # clock: 1, 2, ... 50
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5  # at 10, 20, 30, 40 and 50 seconds
    assert lines[0] == "verify: 10 of 50 objects, 10.0 MiB of 50.0 MiB (20%), 1.0 MiB/s"
    assert lines[-1].startswith("verify: 50 of 50 objects")


# -- as a program -------------------------------------------------------------------------------------------


def test_the_module_runs_as_a_program_without_msal_or_the_simulator(tmp_path: Path) -> None:
    write_case(tmp_path, CASE_FILES)
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "airflow_provider_liveresponse", "verify", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout)["ok"] is True
    imported = {line.rsplit("|", 1)[-1].strip() for line in completed.stderr.splitlines() if "|" in line}
    assert "airflow_provider_liveresponse.verify" in imported
    assert not {name for name in imported if name == "msal" or name.startswith("msal.")}
    assert not {name for name in imported if name.startswith("airflow_provider_liveresponse.simulator")}


def test_the_program_exits_2_on_bad_usage(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "airflow_provider_liveresponse", "verify", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "does not exist" in completed.stderr


def test_an_unsafe_path_is_shown_with_the_manifest_it_came_from(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    edit_manifest(folder, lambda d: d["files"][0].update(path="../../../etc/passwd"))
    result = cli("verify", str(tmp_path))
    assert result.status == 1
    assert (
        f"UNSAFE PATH   ../../../etc/passwd: files[0] path leaves the case folder (..); not followed "
        f"(in {FOLDER}/manifest.json)" in result.stdout.splitlines()
    )
