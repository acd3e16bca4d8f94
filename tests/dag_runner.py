"""DagRunner: writes a DAG file into Airflow's DAG folder, runs ``dag.test()`` and reads task states and XComs.

Shared by the operator, transfer and example-DAG tests (``pythonpath`` in pyproject makes ``tests`` importable).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


class DagRunner:
    """Writes a DAG file into the DAG folder, imports it, runs ``dag.test()`` and reads the results."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[Path] = []

    def write(self, body: str, *, prelude: str = "") -> Path:
        """Write a DAG file whose ``with DAG(...)`` block holds ``body``; return its path."""
        dag_id = f"t_{uuid.uuid4().hex[:12]}"
        source = "from __future__ import annotations\nimport datetime as dt\nfrom airflow.sdk import DAG\n"
        source += "from airflow_provider_liveresponse.models import GetFile, PutFile, RunScript\n"
        source += "from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator\n"
        source += "from airflow_provider_liveresponse.operators.live_response_library import (\n"
        source += "    LiveResponseLibraryUploadOperator,\n)\n"
        source += "from airflow_provider_liveresponse.sensors.machine_action import MachineActionSensor\n"
        source += "from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (\n"
        source += "    LiveResponseToObjectStorageOperator,\n)\n"
        source += textwrap.dedent(prelude)
        source += f"with DAG({dag_id!r}, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:\n"
        source += textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
        path = self.folder / f"{dag_id}.py"
        path.write_text(source)
        self.files.append(path)
        return path

    @staticmethod
    def load(path: Path) -> Any:
        """Import a DAG file and return its ``dag``."""
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.dag

    def run(self, body: str, *, prelude: str = "", **test_kwargs: Any) -> Any:
        """Write a DAG around ``body`` and run it with ``dag.test()``."""
        return self.load(self.write(body, prelude=prelude)).test(**test_kwargs)

    def run_in_subprocess(self, path: Path, patch: str, *, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """Run the DAG file's ``dag.test()`` in a separate Python process (a worker that may die), after
        executing ``patch`` there (the fault to inject). Same AIRFLOW_HOME, database and connections."""
        code = (
            "import sys, datetime as dt\n"
            + textwrap.dedent(patch)
            + "\nsys.path.insert(0, '')\n"
            + "import importlib.util\n"
            + f"spec = importlib.util.spec_from_file_location({path.stem!r}, {str(path)!r})\n"
            + "module = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(module)\n"
            + "module.dag.test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE)\n"
        )
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
        )

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
