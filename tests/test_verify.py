"""verify() on case folders written by hand on file://: a clean case holds; every tampering, every untrusted path,
link, size and manifest is reported by path, never followed."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from airflow_provider_liveresponse import verify as verify_module
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.signing import ManifestSigner
from airflow_provider_liveresponse.verify import Problem, Progress, Report, unsafe_path_reason, verify
from tests.verify.cases import ACTION_ID, CASE_FILES, MACHINE_ID, edit_manifest, file_entry, write_case

if TYPE_CHECKING:
    from pathlib import Path

FOLDER = f"{MACHINE_ID}/{ACTION_ID}"
MANIFEST = f"{FOLDER}/manifest.json"


@pytest.fixture
def signer() -> ManifestSigner:
    return ManifestSigner(Ed25519PrivateKey.generate())


def failing(report: Report) -> list[Problem]:
    return [p for p in report.problems if report.fails(p)]


def kinds(report: Report) -> list[tuple[str, str]]:
    return [(p.kind, p.path) for p in failing(report)]


def set_entry(index: int, **fields: Any) -> Any:
    def change(document: dict[str, Any]) -> None:
        document["files"][index].update(fields)

    return change


# -- a clean case ---------------------------------------------------------------------------------------------


def test_a_clean_case_holds(tmp_path: Path) -> None:
    write_case(tmp_path, CASE_FILES)
    report = verify(str(tmp_path))
    assert report.ok
    assert kinds(report) == []
    assert (report.objects_checked, report.bytes_checked) == (3, sum(len(d) for d in CASE_FILES.values()))
    (manifest,) = report.manifests
    assert (manifest.path, manifest.files, manifest.signature) == (MANIFEST, 3, "unsigned")


def test_a_file_url_is_the_same_destination_as_its_path(tmp_path: Path) -> None:
    write_case(tmp_path, CASE_FILES)
    assert verify(tmp_path.as_uri()).ok


def test_a_clean_signed_case_holds_with_the_key(tmp_path: Path, signer: ManifestSigner) -> None:
    write_case(tmp_path, CASE_FILES, signer=signer)
    report = verify(str(tmp_path), public_key=signer.public_key)
    assert report.ok
    assert [(m.signature, m.signed_by) for m in report.manifests] == [("valid", signer.fingerprint)]
    assert report.key_fingerprint == signer.fingerprint


def test_a_case_folder_itself_can_be_the_destination(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    report = verify(str(folder))
    assert report.ok
    assert [m.path for m in report.manifests] == ["manifest.json"]


# -- tampering ------------------------------------------------------------------------------------------------


def test_a_changed_byte_is_reported_by_path(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    data = bytearray((folder / "0_triage.zip").read_bytes())
    data[10] ^= 0x01
    (folder / "0_triage.zip").write_bytes(bytes(data))
    report = verify(str(tmp_path))
    assert kinds(report) == [("changed", f"{FOLDER}/0_triage.zip")]
    assert "SHA-256 is" in failing(report)[0].detail
    assert failing(report)[0].manifest == MANIFEST


def test_a_changed_size_is_reported_without_reading_the_object(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    (folder / "1_hosts").write_bytes(b"10.6.6.6 update.microsoft.com\n127.0.0.1 localhost\n")
    report = verify(str(tmp_path))
    assert kinds(report) == [("changed", f"{FOLDER}/1_hosts")]
    assert "the manifest says 20" in failing(report)[0].detail
    assert report.objects_checked == 2


def test_a_file_changed_with_its_digest_in_the_manifest_is_caught_by_the_signature(
    tmp_path: Path, signer: ManifestSigner
) -> None:
    folder = write_case(tmp_path, CASE_FILES, signer=signer)
    forged = b"nothing to see here\n"
    (folder / "1_hosts").write_bytes(forged)
    edit_manifest(folder, lambda d: d["files"].__setitem__(1, file_entry("1_hosts", forged, 1)))

    assert verify(str(tmp_path)).ok  # without the key, the manifest and the files agree: only a signature tells
    report = verify(str(tmp_path), public_key=signer.public_key)
    assert kinds(report) == [("bad_signature", MANIFEST)]
    assert "the manifest changed after it was signed" in failing(report)[0].detail
    assert report.manifests[0].signature == "invalid"


def test_a_case_re_signed_with_another_key_is_caught(tmp_path: Path, signer: ManifestSigner) -> None:
    folder = write_case(tmp_path, CASE_FILES, signer=signer)
    forger = ManifestSigner(Ed25519PrivateKey.generate())
    edit_manifest(folder, set_entry(0, retrieved_at="2020-01-01T00:00:00+00:00"), signer=forger)
    report = verify(str(tmp_path), public_key=signer.public_key)
    assert kinds(report) == [("bad_signature", MANIFEST)]
    assert forger.fingerprint in failing(report)[0].detail
    assert report.manifests[0].signed_by == forger.fingerprint


def test_a_deleted_file_is_missing(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    (folder / "2_empty.bin").unlink()
    assert kinds(verify(str(tmp_path))) == [("missing", f"{FOLDER}/2_empty.bin")]


def test_an_added_file_is_extra(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    (folder / "3_planted.exe").write_bytes(b"MZ")
    report = verify(str(tmp_path))
    assert kinds(report) == [("extra", f"{FOLDER}/3_planted.exe")]
    assert failing(report)[0].manifest == MANIFEST


def test_a_file_outside_every_case_folder_is_extra(tmp_path: Path) -> None:
    write_case(tmp_path, CASE_FILES)
    (tmp_path / MACHINE_ID / "stray.txt").write_text("stray")
    report = verify(str(tmp_path))
    assert kinds(report) == [("extra", f"{MACHINE_ID}/stray.txt")]
    assert "in no case folder" in failing(report)[0].detail


def test_a_deleted_manifest_leaves_its_files_extra(tmp_path: Path) -> None:
    write_case(tmp_path, CASE_FILES)
    other = write_case(tmp_path, {"0_a": b"a"}, machine_id="f" * 40)
    (other / "manifest.json").unlink()
    assert kinds(verify(str(tmp_path))) == [("extra", f"{'f' * 40}/{ACTION_ID}/0_a")]


def test_a_leftover_temporary_object_is_extra_and_named_as_such(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    (folder / ".0_triage.zip.0123456789ab.partial").write_bytes(b"PK")
    report = verify(str(tmp_path))
    assert kinds(report) == [("extra", f"{FOLDER}/.0_triage.zip.0123456789ab.partial")]
    assert "interrupted transfer" in failing(report)[0].detail


def test_only_the_tampered_case_of_several_is_reported(tmp_path: Path) -> None:
    write_case(tmp_path, CASE_FILES)
    other = write_case(tmp_path, CASE_FILES, machine_id="e" * 40)
    (other / "1_hosts").write_bytes(b"x" * 20)
    report = verify(str(tmp_path))
    assert kinds(report) == [("changed", f"{'e' * 40}/{ACTION_ID}/1_hosts")]
    assert len(report.manifests) == 2


# -- signatures -----------------------------------------------------------------------------------------------


def test_without_a_key_unsigned_manifests_are_listed_but_do_not_fail(tmp_path: Path) -> None:
    write_case(tmp_path, CASE_FILES)
    report = verify(str(tmp_path))
    assert report.ok
    assert [(p.kind, p.path) for p in report.problems] == [("unsigned", MANIFEST)]


def test_with_a_key_an_unsigned_manifest_fails(tmp_path: Path, signer: ManifestSigner) -> None:
    write_case(tmp_path, CASE_FILES)
    assert kinds(verify(str(tmp_path), public_key=signer.public_key)) == [("unsigned", MANIFEST)]


def test_without_a_key_a_signature_is_not_checked_but_its_key_is_named(tmp_path: Path, signer: ManifestSigner) -> None:
    write_case(tmp_path, CASE_FILES, signer=signer)
    report = verify(str(tmp_path))
    assert report.ok
    assert [(m.signature, m.signed_by) for m in report.manifests] == [("not checked", signer.fingerprint)]


def test_a_signature_without_its_manifest_is_extra(tmp_path: Path, signer: ManifestSigner) -> None:
    folder = write_case(tmp_path, CASE_FILES, signer=signer)
    (folder / "manifest.json.sig").rename(folder / "old-manifest.json.sig")
    assert ("extra", f"{FOLDER}/old-manifest.json.sig") in kinds(verify(str(tmp_path)))


# -- untrusted manifests --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../escape.bin", "leaves the case folder"),
        ("sub/../../escape.bin", "leaves the case folder"),
        (f"../../../{MACHINE_ID}/escape.bin", "leaves the case folder"),
        ("/etc/passwd", "is absolute"),
        ("..\\escape.bin", "holds a backslash"),
        ("C:escape.bin", "starts with a drive letter"),
        ("c:/Windows/escape.bin", "starts with a drive letter"),
        ("escape\x00.bin", "holds a NUL character"),
        ("escape\n.bin", "holds a control"),
        ("gpj.\u202eexe", "invisible formatting"),
        ("", "is empty"),
        ("./0_triage.zip", "'.' segment"),
        ("a//b", "empty or '.' segment"),
        ("manifest.json", "names the manifest"),
        ("x" * 2000, "longer than"),
    ],
)
def test_a_path_that_leaves_the_case_folder_is_reported_and_not_followed(
    tmp_path: Path, path: str, reason: str
) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    (tmp_path / "escape.bin").write_bytes(CASE_FILES["1_hosts"])  # what a ../ path would reach, with a matching digest
    edit_manifest(folder, set_entry(1, path=path))
    report = verify(str(folder))
    unsafe = [p for p in report.problems if p.kind == "unsafe_path"]
    assert [p.path for p in unsafe] == [path[:1024]]
    assert reason in unsafe[0].detail
    assert "not followed" in unsafe[0].detail
    assert ("extra", "1_hosts") in kinds(report)  # the real file is no longer listed
    assert report.objects_checked == 2


def test_unsafe_path_reason_accepts_the_names_the_transfer_writes() -> None:
    for name in ["0_triage.zip", "1_triage.zip.gz", "2_script.ps1.transcript.json", "3_имя(1).txt", "sub/4_x"]:
        assert unsafe_path_reason(name) is None


def test_a_listed_symlink_is_reported_and_not_followed(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(CASE_FILES["1_hosts"])  # same bytes: following the link would pass
    (folder / "1_hosts").unlink()
    (folder / "1_hosts").symlink_to(outside)
    report = verify(str(tmp_path))
    assert kinds(report) == [("link", f"{FOLDER}/1_hosts")]
    assert "symbolic link" in failing(report)[0].detail
    assert report.objects_checked == 2


def test_a_symlinked_folder_is_not_walked(tmp_path: Path) -> None:
    write_case(tmp_path, CASE_FILES)
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    write_case(elsewhere, {"0_a": b"a"})
    (tmp_path / "linked").symlink_to(elsewhere, target_is_directory=True)
    report = verify(str(tmp_path))
    assert kinds(report) == [("link", "linked")]
    assert len(report.manifests) == 1


def test_a_manifest_that_is_a_symlink_is_not_read(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    (folder / "manifest.json").rename(tmp_path / "real-manifest.json")
    (folder / "manifest.json").symlink_to(tmp_path / "real-manifest.json")
    report = verify(str(folder))
    assert ("link", "manifest.json") in kinds(report)
    assert report.objects_checked == 0


def test_a_hard_linked_file_is_reported(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    os.link(folder / "1_hosts", tmp_path.parent / f"{tmp_path.name}-second-name")
    assert kinds(verify(str(tmp_path))) == [("link", f"{FOLDER}/1_hosts")]


@pytest.mark.parametrize(
    ("size", "says"),
    [
        (-1, "absurd"),
        (2**41, "absurd"),
        (10**30, "absurd"),
        ("20", "not a whole number"),
        (20.0, "not a whole number"),
        (True, "not a whole number"),
        (None, "not a whole number"),
        ([20], "not a whole number"),
    ],
)
def test_an_absurd_size_is_reported_and_the_object_not_read(tmp_path: Path, size: Any, says: str) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    edit_manifest(folder, set_entry(1, size=size))
    report = verify(str(tmp_path))
    assert kinds(report) == [("bad_entry", f"{FOLDER}/1_hosts")]
    assert says in failing(report)[0].detail
    assert report.objects_checked == 2


@pytest.mark.parametrize("sha256", ["0" * 63, "z" * 64, None, 42])
def test_a_malformed_digest_is_reported(tmp_path: Path, sha256: Any) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    edit_manifest(folder, set_entry(1, sha256=sha256))
    report = verify(str(tmp_path))
    assert ("bad_entry", f"{FOLDER}/1_hosts") in kinds(report)
    assert report.objects_checked == 2


def test_an_entry_listed_twice_is_reported(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    edit_manifest(folder, lambda d: d["files"].append(dict(d["files"][0])))
    report = verify(str(tmp_path))
    assert kinds(report) == [("bad_entry", f"{FOLDER}/0_triage.zip")]
    assert "second time" in failing(report)[0].detail


def test_an_entry_missing_other_fields_is_reported_and_its_object_still_checked(tmp_path: Path) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    edit_manifest(folder, lambda d: d["files"][1].pop("md5"))
    report = verify(str(tmp_path))
    assert kinds(report) == [("bad_entry", f"{FOLDER}/1_hosts")]
    assert "md5" in failing(report)[0].detail
    assert report.objects_checked == 3


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "is not JSON"),
        (b"\xff\xfe", "is not JSON"),
        (b"[" * 100_000, "is not JSON"),
        (b"[]", "is not a version-1 manifest"),
        (json.dumps({"manifest_version": 2, "files": []}).encode(), "manifest_version"),
        (json.dumps({"manifest_version": 1, "files": {"0": 1}}).encode(), "files"),
    ],
    ids=["syntax", "encoding", "deep", "list", "version", "files-not-a-list"],
)
def test_a_malformed_manifest_is_reported_and_its_folder_listed_as_extra(
    tmp_path: Path, content: bytes, says: str
) -> None:
    folder = write_case(tmp_path, CASE_FILES)
    (folder / "manifest.json").write_bytes(content)
    report = verify(str(tmp_path))
    bad = [p for p in report.problems if p.kind == "bad_manifest"]
    assert [p.path for p in bad] == [MANIFEST]
    assert says in bad[0].detail
    assert sorted(p for k, p in kinds(report) if k == "extra") == [f"{FOLDER}/{name}" for name in sorted(CASE_FILES)]


def test_a_manifest_too_large_to_read_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_case(tmp_path, CASE_FILES)
    monkeypatch.setattr(verify_module, "MAX_MANIFEST_BYTES", 100)
    report = verify(str(tmp_path))
    assert ("unreadable", MANIFEST) in kinds(report)
    assert "larger than" in next(p.detail for p in report.problems if p.kind == "unreadable")


def test_no_manifest_under_the_destination_fails(tmp_path: Path) -> None:
    (tmp_path / "something.txt").write_text("x")
    report = verify(str(tmp_path))
    assert ("no_manifest", "") in kinds(report)
    assert not report.ok


@pytest.mark.parametrize("destination", ["missing-folder", "file:///no/such/folder", "file://server/share"])
def test_a_destination_that_does_not_exist_is_a_usage_error(tmp_path: Path, destination: str) -> None:
    target = str(tmp_path / destination) if "://" not in destination else destination
    with pytest.raises(LiveResponseConfigError, match="destination"):
        verify(target)


def test_a_destination_url_with_a_password_is_refused_without_showing_it() -> None:
    with pytest.raises(LiveResponseConfigError, match="put credentials in an Airflow connection") as info:
        verify("s3://AKIAEXAMPLE:very-secret@bucket/cases")
    assert "very-secret" not in str(info.value)


# -- bounded memory and progress ------------------------------------------------------------------------------


class RecordingProgress(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    def advance(self, *, size: int = 0, objects: int = 0) -> None:
        super().advance(size=size, objects=objects)
        if size:
            self.steps.append(size)


def test_objects_are_read_in_chunks(tmp_path: Path) -> None:
    write_case(tmp_path, {"0_big.bin": os.urandom(300_000)})
    progress = RecordingProgress()
    assert verify(str(tmp_path), progress=progress, chunk_size=64 * 1024).ok
    assert max(progress.steps) == 64 * 1024
    assert sum(progress.steps) == 300_000
    assert (progress.total_objects, progress.total_size) == (1, 300_000)
