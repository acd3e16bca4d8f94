"""The destination layer: a result is written under a temporary name and published whole or not at all, on a
local file system (fsync, os.replace, directory fsync) and in a real object store (SeaweedFS: temporary key, move).
"""

from __future__ import annotations

import os
import stat
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_liveresponse.transfers.destination import (
    PARTIAL,
    Destination,
    LocalFolder,
    ObjectStoreFolder,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.transfers.storage_servers import S3Server


def local(tmp_path: Path) -> Destination:
    folder = Destination.at(ObjectStoragePath((tmp_path / "case").as_uri()))
    folder.prepare()
    return folder


def test_the_kind_of_folder_follows_the_protocol(tmp_path: Path) -> None:
    assert isinstance(Destination.at(ObjectStoragePath(tmp_path.as_uri())), LocalFolder)
    assert isinstance(Destination.at(ObjectStoragePath(str(tmp_path))), LocalFolder)
    assert isinstance(Destination.at(ObjectStoragePath("s3://bucket/prefix", conn_id="x")), ObjectStoreFolder)


# -- local files ------------------------------------------------------------------------------------------------


def test_a_local_file_is_under_a_temporary_name_until_it_is_published(tmp_path: Path) -> None:
    folder = local(tmp_path)
    temp, final = folder.temporary("0_hosts"), folder.target("0_hosts")
    with temp.open_write() as sink:
        sink.write(b"127.0.0.1 localhost\n")
    match = PARTIAL.match(temp.name)
    assert match is not None
    assert match["final"] == "0_hosts"
    assert not final.exists()
    assert folder.names() == [temp.name]

    temp.move_to(final)
    assert folder.names() == ["0_hosts"]
    assert (tmp_path / "case" / "0_hosts").read_bytes() == b"127.0.0.1 localhost\n"
    assert final.size() == 20


def test_a_local_file_is_fsynced_before_it_is_closed_and_its_folder_after_the_move(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    folder = local(tmp_path)
    folder.write_atomically("manifest.json", b"{}\n")
    assert synced == ["file", "folder"]


def test_a_failed_local_write_leaves_nothing_under_the_final_name_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = local(tmp_path)

    def broken_replace(source: Any, target: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        folder.write_atomically("manifest.json", b"{}\n")
    assert folder.names() == []


def test_a_local_file_is_never_written_over(tmp_path: Path) -> None:
    folder = local(tmp_path)
    (tmp_path / "case" / "taken").write_bytes(b"evidence")
    with pytest.raises(FileExistsError):
        folder.open_write("taken")
    assert (tmp_path / "case" / "taken").read_bytes() == b"evidence"


def test_only_temporary_files_are_removed_as_leftovers(tmp_path: Path) -> None:
    folder = local(tmp_path)
    names = [".0_hosts.0123456789ab.partial", "0_hosts", ".0_hosts.partial", "x.0123456789ab.partial"]
    for name in names:
        (tmp_path / "case" / name).write_bytes(b"x")
    assert folder.remove_leftovers() == [folder.child(".0_hosts.0123456789ab.partial").as_uri()]
    assert sorted(folder.names()) == sorted(names[1:])


def test_reading_a_missing_name_or_folder_gives_none(tmp_path: Path) -> None:
    folder = Destination.at(ObjectStoragePath((tmp_path / "nowhere").as_uri()))
    assert folder.names() == []
    assert folder.read("manifest.json", 1024) is None


def test_sha256_is_read_back_from_the_store(tmp_path: Path) -> None:
    folder = local(tmp_path)
    folder.write_atomically("a", b"abc")
    assert folder.sha256("a") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert folder.read("a", 2) == b"ab"


# -- object store (SeaweedFS) ------------------------------------------------------------------------------------


def s3_folder(server: S3Server, conn_id: str) -> tuple[Destination, str]:
    prefix = f"destination-tests/{uuid.uuid4().hex}"
    return Destination.at(ObjectStoragePath(f"s3://{conn_id}@{server.bucket}/{prefix}")), prefix


def s3_keys(server: S3Server, prefix: str) -> list[str]:
    client: Any = server.client()
    listed = client.list_objects_v2(Bucket=server.bucket, Prefix=prefix + "/").get("Contents", [])
    return sorted(item["Key"][len(prefix) + 1 :] for item in listed)


def test_an_object_is_under_a_temporary_key_until_it_is_moved(seaweedfs: S3Server, s3_conn: str) -> None:
    folder, prefix = s3_folder(seaweedfs, s3_conn)
    assert isinstance(folder, ObjectStoreFolder)
    temp, final = folder.temporary("1_triage.zip"), folder.target("1_triage.zip")
    with temp.open_write() as sink:
        sink.write(b"PK" + bytes(100_000))
    assert s3_keys(seaweedfs, prefix) == [temp.name]
    assert not final.exists()

    temp.move_to(final)
    assert s3_keys(seaweedfs, prefix) == ["1_triage.zip"]
    assert final.exists()
    assert final.size() == 100_002
    assert not temp.exists()


def test_object_store_leftovers_are_removed_and_the_manifest_is_written_whole(
    seaweedfs: S3Server, s3_conn: str
) -> None:
    folder, prefix = s3_folder(seaweedfs, s3_conn)
    leftover = folder.temporary("0_hosts")
    with leftover.open_write() as sink:
        sink.write(b"half")
    folder.write_atomically("manifest.json", b'{"files": []}\n')
    assert folder.remove_leftovers() == [str(leftover.path)]
    assert s3_keys(seaweedfs, prefix) == ["manifest.json"]
    assert folder.read("manifest.json", 1024) == b'{"files": []}\n'
    assert folder.read("missing.json", 1024) is None
