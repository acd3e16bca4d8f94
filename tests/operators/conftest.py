"""Fixtures for end-to-end DAG tests: an Airflow metadata DB, a DAG folder, the simulator as a connection."""

from __future__ import annotations

import importlib.util
import os
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_liveresponse.auth import reset_token_providers


@pytest.fixture
def sim_conn(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The default MDE connection, pointing at the simulator."""
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", simulator.connection_json())
    reset_token_providers()
    return "mde_live_response_default"


class DagRunner:
    """Writes a DAG file into the DAG folder, imports it, runs ``dag.test()`` and reads the results."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[Path] = []

    def run(self, body: str, **test_kwargs: Any) -> Any:
        dag_id = f"t_{uuid.uuid4().hex[:12]}"
        source = "from __future__ import annotations\nimport datetime as dt\nfrom airflow.sdk import DAG\n"
        source += "from airflow_provider_liveresponse.models import GetFile, PutFile, RunScript\n"
        source += "from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator\n"
        source += "from airflow_provider_liveresponse.sensors.machine_action import MachineActionSensor\n"
        source += f"with DAG({dag_id!r}, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:\n"
        source += textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
        path = self.folder / f"{dag_id}.py"
        path.write_text(source)
        self.files.append(path)
        spec = importlib.util.spec_from_file_location(dag_id, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        run = module.dag.test(**test_kwargs)
        return run

    @staticmethod
    def states(run: Any) -> dict[tuple[str, int], str]:
        return {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}

    @staticmethod
    def xcom(run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.settings import Session

        query = XComModel.get_many(
            run_id=run.run_id, key=key, task_ids=task_id, dag_ids=run.dag_id, map_indexes=map_index
        )
        with Session() as session:
            row = session.scalars(query).first()
            if row is None:
                return None
            return XComModel.deserialize_value(row)


@pytest.fixture
def dags(airflow_db: Path) -> Any:
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    runner = DagRunner(folder)
    yield runner
    for path in runner.files:
        path.unlink(missing_ok=True)
