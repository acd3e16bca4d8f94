"""Tests and benchmarks share their harnesses through one importable place (airflow_provider_liveresponse.testing):
the tests never import the benchmarks (which the sdist does not hold), and nothing edits sys.path to reach
another folder's modules."""

from __future__ import annotations

import re

from tests.packaging.project_metadata import ROOT, files, third_party_imports

#: Known sys.path edits, each with why it is there or what replaces it.
SYS_PATH_EDITS = {
    # The code of a child process, whose first sys.path entry (the current folder) the injected patch may drop.
    "tests/dag_runner.py": "a child process's own sys.path",
}


def test_the_tests_never_import_the_benchmarks() -> None:
    offending = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in files("tests")
        for line in path.read_text().splitlines()
        if re.match(r"\s*(from|import) benchmarks\b", line)
    ]
    assert not offending, offending


def test_nothing_edits_sys_path_to_reach_another_folder() -> None:
    edits = {
        path.relative_to(ROOT).as_posix()
        for path in files("tests", "benchmarks", "scripts", "example_dags")
        if re.search(r"sys\.path\.(insert|append|extend)\(|sys\.path\s*[+]?=", path.read_text())
    }
    assert edits <= set(SYS_PATH_EDITS), sorted(edits - set(SYS_PATH_EDITS))


def test_the_shared_harnesses_live_in_the_test_kit() -> None:
    kit = {path.stem for path in files("airflow_provider_liveresponse/testing")}
    assert {"airflow_system", "fault_matrix", "simulated_connection"} <= kit
    assert not (ROOT / "tests" / "system" / "airflow_system.py").exists()
    assert not [found for found in third_party_imports(files("tests")) if found.module == "airflow_system"]
