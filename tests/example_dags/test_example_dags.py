"""The example DAGs parse cleanly and run end to end (dag.test) against the simulator."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.auth import reset_token_providers

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator import Simulator

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


@pytest.fixture
def sim_env(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", simulator.connection_json())
    monkeypatch.setenv("MDE_POLL_INTERVAL", "0.2")
    reset_token_providers()
    return simulator


def _load(name: str) -> Any:
    """Copy the examples into the DAG folder (dag.test runs DAGs Airflow has parsed there) and import one."""
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    shutil.copytree(EXAMPLES, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def _states(run: Any) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}


def _xcom(run: Any, task_id: str, map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.settings import Session

    query = XComModel.get_many(
        run_id=run.run_id, key="return_value", task_ids=task_id, dag_ids=run.dag_id, map_indexes=map_index
    )
    with Session() as session:
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)


def test_every_example_dag_parses_without_import_errors(airflow_db: Path) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined,unused-ignore]

    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "example_liveresponse_approval",
        "example_liveresponse_collect",
        "example_liveresponse_evidence_index",
        "example_liveresponse_fleet",
        "example_liveresponse_library",
    }
    for dag_id in bag.dag_ids:
        dag = bag.get_dag(dag_id)
        assert dag is not None
        assert dag.doc_md or (dag.description and len(dag.description) > 20)


def _check_manifest(sim: Simulator, folder: Path, manifest: dict[str, Any]) -> None:
    on_disk = json.loads((folder / "manifest.json").read_text())
    assert on_disk["action"]["id"] == manifest["action"]["id"]
    assert on_disk["files"]
    for entry in on_disk["files"]:
        data = (folder / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["size"]
        # What was stored is what the device had: the simulator's own record of the collected bytes.
        expected = sim.state.result_digest(on_disk["action"]["id"], entry["command"]["index"])
        assert entry["sha256"] == expected["raw"]["sha256"]
        assert entry["blob"]["sha256"] == expected["compressed"]["sha256"]
    assert not list(folder.rglob("*.partial*"))


def test_collect_stores_the_evidence_and_its_manifest(sim_env: Simulator, airflow_db: Path, tmp_path: Path) -> None:
    run = _load("example_liveresponse_collect").test(
        run_conf={"host": "ws-0002.contoso.local", "case": "IR-42", "destination": f"file://{tmp_path}"}
    )
    assert set(_states(run).values()) == {"success"}
    manifest = _xcom(run, "store")
    action = _xcom(run, "collect")
    folder = tmp_path / action["machine_id"] / action["id"]
    _check_manifest(sim_env, folder, manifest)
    assert "IR-42" in sim_env.state.actions[action["id"]].comment


def _fleet_conf(speed: float, **conf: Any) -> dict[str, Any]:
    """The fleet DAG's config on a simulator running ``speed`` times faster than real time: MDE's limits and the
    pickup timeout scaled to the worker's clock, as the benchmark passes them."""
    scaled = {
        "submissions_per_minute": 10 * speed,
        "read_calls_per_minute": int(100 * speed),
        "read_calls_per_hour": int(1500 * speed),
        "pickup_timeout": 900 / speed,
    }
    return {**scaled, **conf}


def test_fleet_collects_every_device_and_summarises(sim_env: Simulator, airflow_db: Path, tmp_path: Path) -> None:
    from airflow_provider_liveresponse.simulator.fleet import device_id
    from airflow_provider_liveresponse.verify import verify

    hosts = [f"ws-{n:04d}.contoso.local" for n in range(11, 15)]
    evidence = tmp_path / "evidence"
    conf = _fleet_conf(sim_env.clock.speed, hosts=hosts, case="IR-43", destination=evidence.as_uri())
    run = _load("example_liveresponse_fleet").test(run_conf=conf)
    states = _states(run)
    assert states == {("sweep", -1): "success"}, states
    summary = _xcom(run, "sweep")
    assert summary["counts"]["collected"] == len(hosts)
    assert {row["target"] for row in summary["devices"]} == set(hosts)
    assert sim_env.state.counters["actions_created"] == len(hosts)
    assert all("IR-43" in action.comment for action in sim_env.state.actions.values())
    for row in summary["devices"]:
        folder = evidence / f"{row['target']}_{device_id(row['target'])}" / row["action_id"]
        _check_manifest(sim_env, folder, json.loads((folder / "manifest.json").read_text()))
    report = verify(evidence.as_uri())
    assert report.ok, [p for p in report.problems if p.kind != "unsigned"]


def test_fleet_sweeps_a_tag_and_reports_offline_devices(
    simulator_factory: Any, monkeypatch: pytest.MonkeyPatch, airflow_db: Path, tmp_path: Path
) -> None:
    # At 60x a result link lives 30 real seconds, longer than a store takes on a busy machine.
    sim = simulator_factory(speed=60.0, fleet={"devices": 40, "offline_fraction": 0.1})
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", sim.connection_json())
    monkeypatch.setenv("MDE_POLL_INTERVAL", "0.2")
    reset_token_providers()
    evidence = tmp_path / "evidence"
    conf = _fleet_conf(sim.clock.speed, machine_tag="sweep", case="IR-45", destination=evidence.as_uri())
    run = _load("example_liveresponse_fleet").test(run_conf={**conf, "offline_retries": 0})
    assert _states(run) == {("sweep", -1): "success"}
    counts = _xcom(run, "sweep")["counts"]
    assert (counts["collected"], counts["offline"], counts["failed"]) == (36, 4, 0)
    assert len(sim.state.actions) == 36 + 2  # the 2 Inactive devices never got one; the 2 silent ones one each
    assert len(list(evidence.glob("fleet-*/*/manifest.json"))) == 36


def test_fleet_reports_what_failed_per_device(
    sim_env: Simulator, airflow_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = ["ws-0021.contoso.local", "no-such-host.contoso.local", "ws-0022.contoso.local"]
    conf = _fleet_conf(sim_env.clock.speed, hosts=hosts, case="IR-44", destination=(tmp_path / "ev").as_uri())
    run = _load("example_liveresponse_fleet").test(run_conf=conf)
    states = _states(run)
    assert states[("sweep", -1)] == "failed"
    assert sim_env.state.counters["actions_created"] == 2  # the retry did not submit again
    assert len(list((tmp_path / "ev").rglob("manifest.json"))) == 2
    out = "".join(capsys.readouterr())
    assert "no-such-host.contoso.local" in out
    assert "unresolved" in out


def test_library_uploads_runs_and_reads_the_transcript(sim_env: Simulator, airflow_db: Path) -> None:
    run = _load("example_liveresponse_library").test(run_conf={"host": "ws-0003.contoso.local", "args": "Listen"})
    assert set(_states(run).values()) == {"success"}
    assert "netstat_snapshot.ps1" in sim_env.state.library
    transcript = _xcom(run, "read_transcript")
    assert transcript["exit_code"] == 0
    (action,) = sim_env.state.actions.values()
    assert action.commands[0].params == [
        {"key": "ScriptName", "value": "netstat_snapshot.ps1"},
        {"key": "Args", "value": "Listen"},
    ]
