"""OpenLineage from the transfer: a real dag.test() run with the OpenLineage provider's file transport writes
events whose inputs are the action's results (namespace ``mde://<tenant id>``) and whose outputs are the stored
objects, and the run makes exactly the MDE calls a run without OpenLineage makes. The transfer imports and runs
without the provider (the ``[openlineage]`` extra) too.

The DAG runs in a child process (``DagRunner.run_in_subprocess``): the provider reads its configuration once per
process and registers its listener when Airflow loads plugins, so the transport set here must be in place from the
process's start. The simulator runs in this process and counts every call the child makes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.transfers.lineage import DatasetName, input_name, output_name
from tests.transfers.transfer_helpers import WS1

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.simulator import Simulator
    from tests.dag_runner import DagRunner
    from tests.transfers.transfer_helpers import Actions

COMMANDS = [RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\triage.zip")]
STORED = ["0_triage.ps1.transcript.json", "1_triage.zip", "manifest.json"]
PATCH = "LOGICAL_DATE = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)\n"


def store_dag(action_id: str, evidence: Path) -> str:
    return f"""
    LiveResponseToObjectStorageOperator(
        task_id="store", action_id={action_id!r}, destination={evidence.as_uri()!r}
    )
    """


def calls(simulator: Simulator) -> dict[str, int]:
    return {key: value for key, value in simulator.state.counters.items() if key.startswith("calls:")}


def run_store(dags: DagRunner, simulator: Simulator, action_id: str, evidence: Path) -> dict[str, int]:
    """Run a DAG whose one task stores ``action_id`` under ``evidence`` in a child process; the MDE calls it made."""
    before = calls(simulator)
    worker = dags.run_in_subprocess(dags.write(store_dag(action_id, evidence)), PATCH)
    assert worker.returncode == 0, worker.stderr[-3000:]
    after = calls(simulator)
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}


def events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_a_dag_run_reports_the_actions_results_as_inputs_and_the_stored_objects_as_outputs(
    simulator: Simulator,
    actions: Actions,
    dags: DagRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain, traced = actions.finish(COMMANDS), actions.finish(COMMANDS)
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "True")
    without = run_store(dags, simulator, plain, tmp_path / "plain")

    log = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    monkeypatch.setenv(
        "AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "file", "log_file_path": str(log), "append": True})
    )
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "evidence-tests")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    evidence = tmp_path / "traced"
    with_lineage = run_store(dags, simulator, traced, evidence)

    assert with_lineage == without  # the same MDE calls, per API: none added for lineage
    store_events = [e for e in events(log) if e["job"]["name"].endswith(".store")]
    complete = [e for e in store_events if e["eventType"] == "COMPLETE"]
    assert [e["eventType"] for e in store_events] == ["START", "COMPLETE"]
    (event,) = complete
    assert event["job"]["namespace"] == "evidence-tests"
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
        (f"mde://{simulator.tenant_id}", f"machineactions/{traced}/commands/{index}") for index in (0, 1)
    ]
    folder = evidence / WS1 / traced
    assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [("file", str(folder / n)) for n in STORED]
    assert all((folder / name).is_file() for name in STORED)
    text = json.dumps(store_events)
    assert "sig=" not in text
    assert simulator.client_secret not in text


def test_object_store_names_follow_the_openlineage_naming_spec(tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    assert output_name(ObjectStoragePath("s3://evidence/cases/ws/a/1_triage.zip")) == DatasetName(
        "s3://evidence", "cases/ws/a/1_triage.zip"
    )
    assert output_name(ObjectStoragePath("s3://aws_evidence@evidence/cases/m.json")) == DatasetName(
        "s3://evidence", "cases/m.json"
    )
    assert output_name(ObjectStoragePath((tmp_path / "x" / "manifest.json").as_uri())) == DatasetName(
        "file", str(tmp_path / "x" / "manifest.json")
    )
    assert input_name("contoso.onmicrosoft.com", "a-1", 3) == DatasetName(
        "mde://contoso.onmicrosoft.com", "machineactions/a-1/commands/3"
    )


def test_abfs_names_carry_the_account_of_the_connection(azure_conn: str) -> None:
    from airflow.sdk import ObjectStoragePath

    path = ObjectStoragePath(f"abfs://{azure_conn}@evidence/cases/ws/manifest.json")
    assert output_name(path) == DatasetName(
        "abfss://evidence@devstoreaccount1.dfs.core.windows.net", "cases/ws/manifest.json"
    )


#: Runs in a child process: the OpenLineage provider and client cannot be imported, as without the extra.
WITHOUT_OPENLINEAGE = textwrap.dedent(
    """
    import importlib.abc, importlib.metadata, sys
    import importlib_metadata

    # Not installed: Airflow's providers manager does not find its distribution...
    for module in (importlib.metadata, importlib_metadata):
        def distributions(*args, _all=module.distributions, **kwargs):
            for dist in _all(*args, **kwargs):
                if dist.metadata["Name"] not in {"apache-airflow-providers-openlineage", "openlineage-python"}:
                    yield dist
        module.distributions = distributions

    # ... and nothing can import it.
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "openlineage" or name.startswith(("openlineage.", "airflow.providers.openlineage")):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
            return None

    sys.meta_path.insert(0, Block())
    from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
        LiveResponseToObjectStorageOperator,
    )
    assert callable(LiveResponseToObjectStorageOperator.get_openlineage_facets_on_complete)
    loaded = sorted(m for m in sys.modules if m.startswith(("openlineage", "airflow.providers.openlineage")))
    assert not loaded, loaded
    print("imported without openlineage")
    """
)


def test_the_transfer_imports_without_the_openlineage_extra() -> None:
    child = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENLINEAGE], capture_output=True, text=True, timeout=120, check=False
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert "imported without openlineage" in child.stdout
