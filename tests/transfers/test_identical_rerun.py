"""Identical reruns skip the download (issue 15, item 7): when the earlier manifest, the stored copy (size,
SHA-256) and the blob's Content-MD5 and length (a HEAD on a fresh link) agree, a rerun reads no byte of the blob's
body from the simulator's blob host; anything else downloads as before. Real HTTP against the simulator, real
file:// and s3:// (SeaweedFS) stores; the simulator's counters count the blob host's GETs, HEADs and body bytes."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.transfers.collect import CopyOptions, StoredAction, store_action_results
from tests.transfers.transfer_helpers import WS1, sha256_of, sim_sleep

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.simulator import Simulator
    from tests.transfers.storage_servers import S3Server
    from tests.transfers.transfer_helpers import Actions, Transfer

LOG = logging.getLogger("tests.identical_rerun")
FILE = r"C:\Evidence\sim-size-300000.bin"
SKIPPED = "identical to the stored copy: size, SHA-256, Content-MD5 match"


class Lines:
    """A logger keeping its formatted lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)

    warning = error = info

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _blob_counters(simulator: Simulator) -> dict[str, int]:
    counters = simulator.state.counters
    return {name: counters[name] for name in ("blob_get_requests", "blob_head_requests", "blob_body_bytes")}


def _store(
    simulator: Simulator, sim_conn: str, action_id: str, root: Path, log: Any = LOG, **options: bool
) -> StoredAction:
    from airflow.sdk import ObjectStoragePath

    hook = LiveResponseHook(sim_conn, sleep=sim_sleep(simulator))
    action = hook.get_machine_action(action_id)
    folder = ObjectStoragePath(root.as_uri()) / WS1 / action_id
    return store_action_results(hook, action, folder, options=CopyOptions(**options), log=log, owner="Task t")


def _rerun(simulator: Simulator, sim_conn: str, action_id: str, root: Path, **options: bool) -> tuple[Any, ...]:
    """Store again; the stored action, the blob host's counters' increase and the log."""
    before, log = _blob_counters(simulator), Lines()
    stored = _store(simulator, sim_conn, action_id, root, log=log, **options)
    after = _blob_counters(simulator)
    return stored, {name: after[name] - before[name] for name in after}, log


def test_the_blob_host_answers_head_with_length_and_content_md5_and_no_body(
    simulator: Simulator, sim_conn: str, actions: Actions
) -> None:
    action_id = actions.finish([GetFile(FILE)])
    before = _blob_counters(simulator)
    served = LiveResponseHook(sim_conn).get_result_properties(action_id, 0)
    expected = simulator.state.result_digest(action_id, 0)["compressed"]
    assert (served.size, served.md5) == (expected["size"], expected["md5"])
    after = _blob_counters(simulator)
    assert after["blob_head_requests"] - before["blob_head_requests"] == 1
    assert after["blob_body_bytes"] == before["blob_body_bytes"]


def test_a_blob_host_that_resets_the_head_fails_naming_the_action_never_the_link(
    simulator: Simulator, sim_conn: str, actions: Actions
) -> None:
    from airflow_provider_liveresponse.exceptions import LiveResponseApiError

    action_id = actions.finish([GetFile(FILE)])
    simulator.state.faults.set("blob", reset_rate=1.0)
    with pytest.raises(LiveResponseApiError) as info:
        LiveResponseHook(sim_conn).get_result_properties(action_id, 0)
    message = str(info.value)
    assert action_id in message
    assert "sig=" not in message
    assert "se=" not in message
    assert info.value.__cause__ is None  # no traceback of requests' own text
    assert info.value.__suppress_context__


def test_an_identical_rerun_downloads_no_blob_body(
    simulator: Simulator, sim_conn: str, actions: Actions, tmp_path: Path
) -> None:
    action_id = actions.finish([GetFile(FILE), RunScript("triage.ps1")])
    first = _store(simulator, sim_conn, action_id, tmp_path)
    assert simulator.state.counters["blob_body_bytes"] > 0

    again, used, log = _rerun(simulator, sim_conn, action_id, tmp_path)

    assert used == {"blob_get_requests": 0, "blob_head_requests": 2, "blob_body_bytes": 0}
    assert [e.outcome for e in again.manifest.files] == ["already_present"] * 2
    for entry, earlier in zip(again.manifest.files, first.manifest.files, strict=True):
        assert entry.model_copy(update={"outcome": "stored"}) == earlier
    assert [t["exit_code"] for t in again.transcripts] == [t["exit_code"] for t in first.transcripts]
    assert again.transcripts[0]["stdout_head"] == first.transcripts[0]["stdout_head"]
    skipped = [line for line in log.lines if line.startswith("Skipped ")]
    assert len(skipped) == 2
    assert all(SKIPPED in line for line in skipped)
    assert "sig=" not in log.text


def test_a_stored_object_altered_in_place_is_downloaded_again(
    simulator: Simulator, sim_conn: str, actions: Actions, tmp_path: Path
) -> None:
    action_id = actions.finish([GetFile(FILE)])
    first = _store(simulator, sim_conn, action_id, tmp_path)
    stored = tmp_path / WS1 / action_id / first.manifest.files[0].path
    data = bytearray(stored.read_bytes())
    data[1000] ^= 0xFF  # the same size: only the SHA-256 tells
    stored.write_bytes(bytes(data))

    again, used, log = _rerun(simulator, sim_conn, action_id, tmp_path, overwrite=True)

    assert used["blob_get_requests"] == 1
    assert used["blob_body_bytes"] == simulator.state.result_digest(action_id, 0)["compressed"]["size"]
    assert "no longer has the manifest's SHA-256" in log.text
    assert again.manifest.files[0].outcome == "stored"
    assert sha256_of(stored) == first.manifest.files[0].sha256


def test_a_missing_stored_object_is_downloaded_again(
    simulator: Simulator, sim_conn: str, actions: Actions, tmp_path: Path
) -> None:
    action_id = actions.finish([GetFile(FILE)])
    first = _store(simulator, sim_conn, action_id, tmp_path)
    (tmp_path / WS1 / action_id / first.manifest.files[0].path).unlink()

    again, used, log = _rerun(simulator, sim_conn, action_id, tmp_path)

    assert (used["blob_get_requests"], used["blob_head_requests"]) == (1, 0)
    assert "is missing or its size changed" in log.text
    assert again.manifest.files[0].outcome == "stored"


def test_a_blob_without_content_md5_is_downloaded(
    simulator: Simulator, sim_conn: str, actions: Actions, tmp_path: Path
) -> None:
    action_id = actions.finish([GetFile(FILE)])
    _store(simulator, sim_conn, action_id, tmp_path)
    simulator.state.faults.set("blob", no_content_md5=True)

    again, used, log = _rerun(simulator, sim_conn, action_id, tmp_path)

    assert used["blob_get_requests"] == 1
    assert used["blob_body_bytes"] == simulator.state.result_digest(action_id, 0)["compressed"]["size"]
    assert "the blob has no Content-MD5 to compare" in log.text
    assert SKIPPED not in log.text
    assert again.manifest.files[0].outcome == "already_present"


def test_a_rerun_storing_another_form_downloads(
    simulator: Simulator, sim_conn: str, actions: Actions, tmp_path: Path
) -> None:
    action_id = actions.finish([GetFile(FILE)])
    _store(simulator, sim_conn, action_id, tmp_path)

    again, used, _ = _rerun(simulator, sim_conn, action_id, tmp_path, keep_compressed=True)

    assert used["blob_get_requests"] == 1
    assert again.manifest.files[0].path.endswith(".gz")


@pytest.mark.usefixtures("s3_conn")
def test_an_identical_rerun_to_s3_downloads_no_blob_body(
    simulator: Simulator, actions: Actions, transfer: Transfer, seaweedfs: S3Server, s3_conn: str
) -> None:
    action_id = actions.finish([GetFile(FILE), RunScript("triage.ps1")])
    destination = f"s3://{s3_conn}@{seaweedfs.bucket}/cases/{uuid.uuid4().hex}"
    first = transfer.run(action_id=action_id, destination=destination)
    before = _blob_counters(simulator)

    again = transfer.run(action_id=action_id, destination=destination)

    after = _blob_counters(simulator)
    assert after["blob_body_bytes"] == before["blob_body_bytes"]
    assert after["blob_get_requests"] == before["blob_get_requests"]
    assert [f["outcome"] for f in again["files"]] == ["already_present"] * 2
    assert [f["sha256"] for f in again["files"]] == [f["sha256"] for f in first["files"]]
