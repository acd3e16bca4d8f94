"""What the README shows is run: its DAG parses in Airflow, and its pool recipe works with Airflow's CLI."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"


def airflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, timeout=180, env=dict(os.environ)
    )


def _blocks(language: str, section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end > 0 else None]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.DOTALL)


def test_the_operator_section_dag_parses_without_import_errors(airflow_db: Path, tmp_path: Path) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined,unused-ignore]

    (source,) = _blocks("python", "Operators, sensor and trigger")
    (tmp_path / "readme_dag.py").write_text(source)
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    dag = bag.get_dag("ir_triage")
    assert dag is not None
    assert {t.task_id for t in dag.tasks} == {"ship_script", "collect"}


def test_the_pool_recipe_creates_a_pool_that_counts_deferred_tasks(airflow_db: Path) -> None:
    (commands,) = _blocks("bash", "Operators, sensor and trigger")
    argv = shlex.split(commands.strip())
    assert argv[:3] == ["airflow", "pools", "set"]
    created = airflow(*argv[1:])
    assert created.returncode == 0, created.stderr
    shown = airflow("pools", "get", argv[3], "-o", "json")
    (pool,) = json.loads(shown.stdout)
    fields: dict[str, Any] = pool
    assert int(fields["slots"]) == 25
    assert str(fields["include_deferred"]).lower() == "true"
