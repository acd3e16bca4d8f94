"""LiveResponseLibraryUploadOperator: ship a script, then run it, in one DAG; safe to rerun."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.simulator.fleet import device_id

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.simulator import Simulator

WS1 = device_id("ws-0001.contoso.local")
SCRIPT = b"param([string]$Target)\nGet-Process $Target | Out-File C:\\Windows\\Temp\\procs.txt\n"


def _calls(sim: Simulator) -> int:
    return sum(v for k, v in sim.state.counters.items() if k.startswith("calls:"))


def test_upload_then_run_the_script(simulator: Simulator, sim_conn: str, dags: Any, tmp_path: Path) -> None:
    script = tmp_path / "list-procs.ps1"
    script.write_bytes(SCRIPT)
    body = f"""
        upload = LiveResponseLibraryUploadOperator(
            task_id="upload",
            source="{script}",
            description="Lists processes",
            parameters_description="-Target <process name>",
        )
        run = LiveResponseOperator(
            task_id="run",
            machine_id="{WS1}",
            commands=[RunScript("list-procs.ps1", args="lsass")],
            poll_interval=0.2,
            deferrable=False,
        )
        upload >> run
        """
    run = dags.run(body)
    assert dags.states(run) == {("upload", -1): "success", ("run", -1): "success"}
    entry = dags.xcom(run, "upload")
    assert entry["file_name"] == "list-procs.ps1"
    assert entry["sha256"] == hashlib.sha256(SCRIPT).hexdigest()
    assert entry["has_parameters"] is True
    stored = simulator.state.library["list-procs.ps1"]
    assert stored.sha256 == hashlib.sha256(SCRIPT).hexdigest()
    assert stored.parameters_description == "-Target <process name>"


def test_a_rerun_with_the_same_content_does_not_upload_again(
    simulator: Simulator, sim_conn: str, dags: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "same.ps1"
    script.write_bytes(SCRIPT)
    body = f'LiveResponseLibraryUploadOperator(task_id="upload", source="file://{script}")'
    dags.run(body)
    assert simulator.state.counters["calls:library"] == 2  # list, upload
    run = dags.run(body)
    assert dags.states(run) == {("upload", -1): "success"}
    assert simulator.state.counters["calls:library"] == 3  # list only
    assert "already holds same.ps1 with the same content" in "".join(capsys.readouterr())


def test_other_content_under_the_same_name_needs_override(
    simulator: Simulator, sim_conn: str, dags: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "triage.ps1"  # the seeded library already has a triage.ps1
    script.write_bytes(SCRIPT)
    run = dags.run(f'LiveResponseLibraryUploadOperator(task_id="upload", source="{script}")')
    assert dags.states(run) == {("upload", -1): "failed"}
    assert "Set override_if_exists=True to replace it" in "".join(capsys.readouterr())
    assert simulator.state.counters["calls:library"] == 1  # the listing; nothing uploaded

    run = dags.run(f'LiveResponseLibraryUploadOperator(task_id="upload", source="{script}", override_if_exists=True)')
    assert dags.states(run) == {("upload", -1): "success"}
    assert simulator.state.library["triage.ps1"].sha256 == hashlib.sha256(SCRIPT).hexdigest()


@pytest.mark.parametrize(
    ("source", "file_name", "message"),
    [
        ("{missing}", None, "is not a file"),
        ("", None, "source is empty"),
        ("{big}", None, "takes at most 20 MB"),
        ("{ok}", "bad/name.ps1", "contains a path separator"),
        ("{ok}", "CON.ps1", "reserved Windows device name"),
    ],
)
def test_bad_input_fails_before_any_call(
    simulator: Simulator,
    sim_conn: str,
    dags: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
    file_name: str | None,
    message: str,
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(20 * 1024 * 1024 + 1)
    ok = tmp_path / "ok.ps1"
    ok.write_bytes(SCRIPT)
    source = source.format(missing=tmp_path / "missing.ps1", big=big, ok=ok)
    run = dags.run(f"LiveResponseLibraryUploadOperator(task_id='upload', source={source!r}, file_name={file_name!r})")
    assert dags.states(run) == {("upload", -1): "failed"}
    assert message in "".join(capsys.readouterr())
    assert _calls(simulator) == 0
