"""A real DAG run (dag.test): LiveResponseOperator collects, the transfer stores what it collected."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.transfers.transfer_helpers import WS1, collect_and_store, sha256_of

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.simulator import Simulator
    from tests.transfers.transfer_helpers import DagRunner


def test_collect_then_store_reads_the_action_id_from_xcom(
    simulator: Simulator, sim_conn: str, dags: DagRunner, tmp_path: Path
) -> None:
    evidence = tmp_path / "evidence"
    run = collect_and_store(dags, evidence)
    action_id = dags.xcom(run, "collect", "action_id")
    manifest = dags.xcom(run, "store")
    folder = evidence / WS1 / action_id
    assert manifest == json.loads((folder / "manifest.json").read_text())
    assert manifest["action"]["id"] == action_id
    assert [f["path"] for f in manifest["files"]] == ["0_triage.ps1.transcript.json", "1_triage.zip"]
    for index, entry in enumerate(manifest["files"]):
        assert sha256_of(folder / entry["path"]) == entry["sha256"]
        assert entry["sha256"] == simulator.state.result_digest(action_id, index)["raw"]["sha256"]
    (transcript,) = dags.xcom(run, "store", "transcripts")
    assert transcript["exit_code"] == 0
    assert transcript["stdout_head"] == ["Collecting triage...", r"Wrote C:\Windows\Temp\triage.zip"]
    # Nothing a downstream task can read holds a download link.
    assert "mde-liveresponse" not in json.dumps([manifest, transcript])
