"""The transfer to gs:// against a real Google Cloud Storage emulator (fake-gcs-server, from its PyPI wheel):
a round trip checked object by object, an idempotent rerun, and a failed transfer that leaves no object.

gs:// needs a file system registered for ObjectStoragePath: users get it from apache-airflow-providers-google; these
tests register gcsfs themselves (tests/transfers/gcs_filesystem.py), as that provider is not installed here.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseApiError, LiveResponseError
from airflow_provider_liveresponse.models import GetFile, RunScript
from tests.transfers.test_object_stores import COMMANDS, MIB, check_round_trip
from tests.transfers.transfer_helpers import WS1

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator import Simulator
    from tests.transfers.storage_servers import GcsServer
    from tests.transfers.transfer_helpers import Actions, Transfer

__all__ = ["gcs_objects"]


def gcs_objects(server: GcsServer, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` in the server's bucket, read back through a file system of its own."""
    fs: Any = server.file_system()
    root = f"{server.bucket}/{prefix}"
    if not fs.exists(root):
        return {}
    return {path[len(root) :]: fs.cat_file(path) for path in fs.find(root)}


def test_gs_round_trip_and_idempotent_rerun(
    simulator: Simulator, actions: Actions, transfer: Transfer, fake_gcs: GcsServer, gcs_conn: str
) -> None:
    action_id = actions.finish(COMMANDS)
    prefix = f"cases/{uuid.uuid4().hex}/"
    destination = f"gs://{gcs_conn}@{fake_gcs.bucket}/{prefix.rstrip('/')}"
    manifest = transfer.run(action_id=action_id, destination=destination)
    check_round_trip(simulator, action_id, manifest, gcs_objects(fake_gcs, prefix))
    assert manifest["location"] == f"gs://{gcs_conn}@{fake_gcs.bucket}/{prefix}{WS1}/{action_id}"

    again = transfer.run(action_id=action_id, destination=f"gs://{fake_gcs.bucket}/{prefix}", dest_conn_id=gcs_conn)
    assert [f["outcome"] for f in again["files"]] == ["already_present"] * 3
    check_round_trip(simulator, action_id, again, gcs_objects(fake_gcs, prefix))


def test_gs_a_different_object_is_kept_and_the_task_fails(
    actions: Actions, transfer: Transfer, fake_gcs: GcsServer, gcs_conn: str
) -> None:
    action_id = actions.finish([GetFile(r"C:\Windows\System32\drivers\etc\hosts")])
    prefix = f"cases/{uuid.uuid4().hex}/"
    fs: Any = fake_gcs.file_system()
    fs.pipe_file(f"{fake_gcs.bucket}/{prefix}{WS1}/{action_id}/0_hosts", b"someone else's hosts file")
    with pytest.raises(LiveResponseError) as info:
        transfer.run(action_id=action_id, destination=f"gs://{gcs_conn}@{fake_gcs.bucket}/{prefix}")
    assert "already exists with SHA-256" in str(info.value)
    assert gcs_objects(fake_gcs, prefix) == {f"{WS1}/{action_id}/0_hosts": b"someone else's hosts file"}


def test_gs_a_failed_transfer_leaves_no_object_and_the_rerun_completes(
    simulator: Simulator, actions: Actions, transfer: Transfer, fake_gcs: GcsServer, gcs_conn: str
) -> None:
    action_id = actions.finish([RunScript("triage.ps1"), GetFile(rf"C:\Evidence\sim-size-{2 * MIB}.bin")])
    prefix = f"cases/{uuid.uuid4().hex}/"
    destination = f"gs://{gcs_conn}@{fake_gcs.bucket}/{prefix}"
    simulator.state.faults.set("blob", cut_after_bytes=100_000, cut_mode="always")
    with pytest.raises(LiveResponseApiError):
        transfer.run(action_id=action_id, destination=destination, max_resumes=1, chunk_size=64 * 1024)
    # Whole or nothing: no object under a final name, and no manifest; at most the transcript stored before the
    # cut blob, under its final name, complete.
    left = gcs_objects(fake_gcs, prefix)
    assert set(left) <= {f"{WS1}/{action_id}/0_triage.ps1.transcript.json"}
    assert not [name for name in left if name.endswith((".partial", "manifest.json"))]

    simulator.state.faults.clear("blob")
    manifest = transfer.run(action_id=action_id, destination=destination)
    stored = gcs_objects(fake_gcs, prefix)
    assert sorted(stored) == sorted(
        f"{WS1}/{action_id}/{name}"
        for name in ("0_triage.ps1.transcript.json", f"1_sim-size-{2 * MIB}.bin", "manifest.json")
    )
    assert manifest["files"][1]["size"] == 2 * MIB
