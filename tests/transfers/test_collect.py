"""store_action_results called directly, as a fleet sweep calls it per device: the same folder layout, manifest
and idempotent rerun as the transfer operator, errors prefixed with the caller's name."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseError
from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.transfers.collect import CopyOptions, StoredAction, store_action_results
from tests.transfers.transfer_helpers import WS1, sha256_of, sim_sleep

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.simulator import Simulator
    from tests.transfers.transfer_helpers import Actions

LOG = logging.getLogger("tests.collect")


def _store(simulator: Simulator, sim_conn: str, action_id: str, root: Path, **options: bool) -> StoredAction:
    from airflow.sdk import ObjectStoragePath

    hook = LiveResponseHook(sim_conn, sleep=sim_sleep(simulator))
    action = hook.get_machine_action(action_id)
    folder = ObjectStoragePath(root.as_uri()) / WS1 / action_id
    return store_action_results(hook, action, folder, options=CopyOptions(**options), log=LOG, owner="Sweep s1")


def test_it_stores_the_results_and_writes_the_manifest_last(
    simulator: Simulator, sim_conn: str, actions: Actions, tmp_path: Path
) -> None:
    action_id = actions.finish([GetFile(r"C:\Evidence\sim-size-2048.bin"), RunScript("triage.ps1")])
    stored = _store(simulator, sim_conn, action_id, tmp_path)

    folder = tmp_path / WS1 / action_id
    written = (folder / "manifest.json").read_bytes()
    assert stored.manifest_bytes == written
    assert json.loads(written)["action"]["id"] == action_id
    rows = stored.files
    assert [r["path"] for r in rows] == ["0_sim-size-2048.bin", "1_triage.ps1.transcript.json"]
    assert all(
        r["sha256"] == sha256_of(folder / r["path"]) and r["size"] == (folder / r["path"]).stat().st_size for r in rows
    )
    assert len(stored.transcripts) == 1
    assert not [p for p in folder.iterdir() if p.name.endswith(".partial")]


def test_a_rerun_keeps_the_identical_objects(
    simulator: Simulator, sim_conn: str, actions: Actions, tmp_path: Path
) -> None:
    action_id = actions.finish([GetFile(r"C:\Evidence\sim-size-2048.bin")])
    first = _store(simulator, sim_conn, action_id, tmp_path)
    again = _store(simulator, sim_conn, action_id, tmp_path)

    entry, before = again.manifest.files[0], first.manifest.files[0]
    assert entry.outcome == "already_present"
    assert entry.retrieved_at == before.retrieved_at


def test_an_error_names_the_caller(simulator: Simulator, sim_conn: str, actions: Actions, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    action_id = actions.finish([GetFile(r"C:\Evidence\sim-size-2048.bin")])
    hook = LiveResponseHook(sim_conn, sleep=sim_sleep(simulator))
    action = hook.get_machine_action(action_id)
    with pytest.raises(LiveResponseError, match=r"^Sweep s1: command_indexes names 5"):
        store_action_results(
            hook,
            action,
            ObjectStoragePath(tmp_path.as_uri()) / WS1 / action_id,
            options=CopyOptions(),
            log=LOG,
            owner="Sweep s1",
            command_indexes=[5],
        )
    assert not (tmp_path / WS1).exists()
