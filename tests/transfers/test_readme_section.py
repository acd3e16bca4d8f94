"""The README's section on the transfer shows a DAG that parses and a layout the operator really produces."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "Storing the evidence: LiveResponseToObjectStorageOperator"


def _section() -> str:
    text = README.read_text()
    start = text.index(f"\n## {SECTION}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_sections_dag_parses_without_import_errors(airflow_db: Path, tmp_path: Path) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined,unused-ignore]

    (source,) = re.findall(r"```python\n(.*?)```", _section(), flags=re.DOTALL)
    (tmp_path / "readme_transfer_dag.py").write_text(source)
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    dag = bag.get_dag("ir_collect")
    assert dag is not None
    assert dag.get_task("store").upstream_task_ids == {"collect"}


def test_the_documented_layout_is_the_naming_the_operator_uses() -> None:
    from airflow_provider_liveresponse.transfers.live_response_to_object_storage import MANIFEST_NAME
    from airflow_provider_liveresponse.transfers.naming import TRANSCRIPT_SUFFIX, getfile_name, transcript_name

    section = _section()
    assert "{index}_{name}" in section
    assert getfile_name(1, r"C:\Windows\Temp\triage.zip") == "1_triage.zip"
    assert f"{{index}}_{{script}}{TRANSCRIPT_SUFFIX}" in section
    assert transcript_name(0, "triage.ps1") == f"0_triage.ps1{TRANSCRIPT_SUFFIX}"
    assert f"/{MANIFEST_NAME}" in section
