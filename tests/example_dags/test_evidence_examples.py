"""example_liveresponse_evidence_index: scheduled on the transfer's asset, it builds a JSON Lines index from the
events' manifests. The producer runs for real (dag.test, the event read back from Airflow's database); the
consumer's index step is then run on that event's extra. (The scheduler starting the consumer because the event
arrived is the system test's part.)"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.transfers.test_asset_events import events_of
from tests.transfers.transfer_helpers import WS1, collect_and_store, sha256_of

if TYPE_CHECKING:
    from tests.dag_runner import DagRunner

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_liveresponse_evidence_index.py"


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("example_liveresponse_evidence_index", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_index_dag_is_scheduled_on_the_evidence_asset() -> None:
    module = _module()
    assert module.dag.dag_id == "example_liveresponse_evidence_index"
    condition = module.dag.timetable.asset_condition
    assert list(getattr(condition, "objects", [condition])) == [module.EVIDENCE]
    assert list(module.dag.task_dict) == ["index_evidence"]


def _produce(dags: DagRunner, evidence: Path, asset_uri: str) -> dict[str, Any]:
    collect_and_store(dags, evidence, ("evidence_index_test", asset_uri))
    (extra,) = events_of(asset_uri)
    return extra


def test_the_consumer_indexes_every_file_of_the_events_manifest_once(
    sim_conn: str, dags: DagRunner, tmp_path: Path
) -> None:
    evidence = tmp_path / "evidence"
    extra = _produce(dags, evidence, "file:///evidence-index-test")
    index = tmp_path / "lake" / "index.jsonl"
    module = _module()

    assert module.update_index([extra], index.as_uri()) == 2
    assert module.update_index([extra], index.as_uri()) == 2  # the same event again replaces, never duplicates

    rows = [json.loads(line) for line in index.read_text().splitlines()]
    folder = evidence / WS1 / extra["action_id"]
    assert [(r["host"], r["path"]) for r in rows] == [
        ("ws-0001.contoso.local", "0_triage.ps1.transcript.json"),
        ("ws-0001.contoso.local", "1_triage.zip"),
    ]
    assert all(r["sha256"] == sha256_of(folder / r["path"]) and r["machine_id"] == WS1 for r in rows)
    assert {r["manifest"] for r in rows} == {(folder / "manifest.json").as_uri()}


def test_the_collect_example_announces_its_evidence_on_the_same_asset() -> None:
    spec = importlib.util.spec_from_file_location(
        "example_liveresponse_collect", EXAMPLE.with_name("example_liveresponse_collect.py")
    )
    assert spec is not None
    assert spec.loader is not None
    collect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(collect)

    assert collect.EVIDENCE == _module().EVIDENCE
    assert list(collect.dag.get_task("store").outlets) == [collect.EVIDENCE]
