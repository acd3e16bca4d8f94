"""What the README shows is run: its DAG parses in Airflow, and its pool recipe works with Airflow's CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.certificates import self_signed_certificate

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


def _troubleshooting_rows() -> list[str]:
    text = README.read_text()
    start = text.index("\n## Troubleshooting\n")
    section = text[start : text.index("\n## ", start + 1)]
    return re.findall(r"^\| `([^`]+)`", section, flags=re.MULTILINE)


def _raised(call: Any) -> str:
    try:
        call()
    except Exception as exc:
        return str(exc)
    raise AssertionError("no error was raised")


def test_every_troubleshooting_row_is_a_message_the_package_really_gives(
    simulator: Any, airflow_db: Path, monkeypatch: Any, caplog: Any, capsys: Any
) -> None:
    """Each row's message is produced here for real (simulator, models, Airflow) or, for the three that need a
    whole DAG run, asserted by the operator tests named beside it."""
    from airflow.models.connection import Connection

    from airflow_provider_liveresponse.auth import reset_token_providers
    from airflow_provider_liveresponse.exceptions import LiveResponseApiError
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import GetFile, RunScript
    from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator
    from airflow_provider_liveresponse.simulator.fleet import device_id

    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", simulator.connection_json())
    reset_token_providers()
    hook = LiveResponseHook()
    ws1 = device_id("ws-0001.contoso.local")

    def unauthorized() -> None:
        simulator.state.faults.set("machines", unauthorized_next=2)
        hook.get_machine(ws1)

    def token_throttled() -> None:
        reset_token_providers()
        simulator.state.faults.set("token", throttle_next=1)
        try:
            LiveResponseHook().get_machine(ws1)
        finally:
            reset_token_providers()  # msal replays a throttled answer to the same app for a while

    def unknown_host() -> None:
        LiveResponseOperator(
            task_id="t", computer_dns_name="ws-0001", commands=[RunScript("triage.ps1")]
        )._resolve_machine(hook)

    def connection_uri() -> None:
        Connection(conn_id="x", conn_type="mde_live_response", host="h").get_uri()
        raise RuntimeError("".join(capsys.readouterr()) + caplog.text)

    produced = {
        "the app registration lacks a permission": lambda: _raise(LiveResponseApiError("Reading", status=403)),
        "busy or throttling this tenant": token_throttled,
        "the token was refused twice": unauthorized,
        "matched 0 devices": unknown_host,
        "the device's group has no automation level": lambda: hook.run_live_response(
            device_id("kiosk-0001.contoso.local"), [RunScript("triage.ps1")], "kiosk"
        ),
        "live response is turned off for the tenant": lambda: _raise(
            LiveResponseApiError("Submitting", status=403, code="DisabledFeature")
        ),
        "is not an absolute device path": lambda: GetFile(r"Temp\x.zip"),
        "contains a path separator": lambda: RunScript(r"C:\tools\triage.ps1"),
        "Connection schemes (type: mde_live_response) shall not contain '_'": connection_uri,
    }
    # Produced by whole DAG runs in tests/operators (the same strings are asserted there).
    asserted_elsewhere = {
        "stayed busy with another live-response session": "test_limits_and_busy_devices.py",
        "was throttled by MDE for longer than the retry budget": "test_limits_and_busy_devices.py",
        "ended TimeOut": "test_live_response.py",
    }
    rows = _troubleshooting_rows()
    assert len(rows) == len(produced) + len(asserted_elsewhere)
    for row in rows:
        if row in asserted_elsewhere:
            test_file = Path(__file__).resolve().parents[1] / "operators" / asserted_elsewhere[row]
            assert row in test_file.read_text(), row
            continue
        assert row in _raised(produced[row]), row


def _raise(exc: Exception) -> None:
    raise exc


def test_the_connection_examples_are_valid_connections(tmp_path: Path) -> None:
    from airflow.models.connection import Connection

    from airflow_provider_liveresponse.connection import ConnectionSettings

    text = README.read_text()
    section = text[text.index("\n## Connection setup\n") :]
    section = section[: section.index("\n## ", 5)]
    examples = re.findall(r"export AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT='(.*?)'", section, flags=re.DOTALL)
    assert len(examples) == 2
    clouds = []
    for example in examples:
        filled = example.replace("<tenant id>", "00000000-0000-0000-0000-000000000001")
        filled = filled.replace("<application id>", "00000000-0000-0000-0000-000000000002")
        filled = filled.replace("<client secret>", "s3cr3t")
        if "certificate_path" in filled:  # the example's PEM, made here: a key and its certificate
            key_pem, cert_pem = self_signed_certificate()
            (tmp_path / "mde-app.pem").write_text(key_pem + cert_pem)
            filled = filled.replace("/opt/airflow/secrets/mde-app.pem", str(tmp_path / "mde-app.pem"))
        settings = ConnectionSettings.from_connection(Connection.from_json(filled, conn_id="mde_live_response_default"))
        clouds.append(settings.cloud)
    assert clouds == ["commercial", "gcc_high"]


def test_the_hook_example_runs_against_the_simulator(
    simulator: Any, airflow_db: Path, monkeypatch: Any, tmp_path: Path, capsys: Any
) -> None:
    import time

    from airflow_provider_liveresponse.auth import reset_token_providers

    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", simulator.connection_json())
    reset_token_providers()
    # The example waits 30 s between reads: on the simulator's clock, not the test's.
    monkeypatch.setattr(time, "sleep", lambda seconds: simulator.clock.advance(seconds))
    monkeypatch.chdir(tmp_path)
    (source,) = _blocks("python", "LiveResponseHook")
    exec(compile(source, "README.md", "exec"), {"__name__": "readme_example"})
    status, exit_code, size, sha256 = capsys.readouterr().out.split()[-4:]
    assert (status, exit_code) == ("Succeeded", "0")
    blob = tmp_path / "OfficeClickToRun.dmp.zip.gz"
    assert blob.stat().st_size == int(size) > 0
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha256


def test_the_fleet_sections_example_builds_a_sweep() -> None:
    from airflow.sdk import DAG

    from airflow_provider_liveresponse.operators.fleet import FleetLiveResponseOperator

    (source,) = _blocks("python", "Sweeping a fleet: `FleetLiveResponseOperator`")
    namespace: dict[str, Any] = {}
    with DAG("readme_fleet", schedule=None) as dag:
        exec(compile(source, "README fleet example", "exec"), namespace)
    (task,) = dag.tasks
    assert isinstance(task, FleetLiveResponseOperator)
    assert task.task_id == "sweep"
