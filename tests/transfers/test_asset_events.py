"""The transfer's outlets: each Asset gets one event per action, its extra naming the machine, the host, the action,
the manifest and every stored file (a real DAG run, dag.test, the event read back from Airflow's database)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tests.transfers.transfer_helpers import WS1, collect_and_store, sha256_of

if TYPE_CHECKING:
    from pathlib import Path

    from tests.dag_runner import DagRunner

ASSET_URI = "file:///evidence/cases"


def events_of(uri: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:  # the ORM's own query: no direct import of SQLAlchemy (not declared)
        rows = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        return [dict(row.extra) for row in rows.filter(AssetModel.uri == uri).all()]


def test_each_asset_outlet_gets_the_actions_event_with_its_files(
    sim_conn: str, dags: DagRunner, tmp_path: Path
) -> None:
    evidence = tmp_path / "evidence"
    run = collect_and_store(dags, evidence, ("evidence", ASSET_URI))
    action_id = dags.xcom(run, "collect", "action_id")
    folder = evidence / WS1 / action_id
    (extra,) = events_of(ASSET_URI)
    assert extra["machine_id"] == WS1
    assert extra["host"] == "ws-0001.contoso.local"
    assert extra["action_id"] == action_id
    assert extra["manifest"] == (folder / "manifest.json").as_uri()
    assert extra["files"] == [
        {"path": name, "size": (folder / name).stat().st_size, "sha256": sha256_of(folder / name)}
        for name in ("0_triage.ps1.transcript.json", "1_triage.zip")
    ]
    assert "mde-liveresponse" not in json.dumps(extra)
