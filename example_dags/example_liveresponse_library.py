"""Ship a script to the live-response library, run it on a device with arguments, and read its transcript.

What it does
    1. ``upload_script``: uploads ``scripts/netstat_snapshot.ps1`` (next to this file) to the live-response
       library. Safe to rerun: the same content is not uploaded again; other content under the same name is
       an error unless ``override_if_exists=True``.
    2. ``run_script``: runs it on the device with the run's ``args`` (``RunScript`` with ``Args``), deferring
       while MDE works. A non-zero exit code fails the task with the script's first error line.
    3. ``read_transcript``: reads the script's transcript (exit code, output, errors) and returns the exit
       code and the first lines of output through XCom for downstream tasks.

Before you run it: a connection ``mde_live_response_default``, the pool ``mde_live_response`` (see
``example_liveresponse_collect``), and an app with ``Library.Manage`` to upload. Trigger it with a config such
as ``{"host": "ws-0001.contoso.local", "args": "Established"}``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_liveresponse.models import RunScript
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator
from airflow_provider_liveresponse.operators.live_response_library import LiveResponseLibraryUploadOperator

POLL_INTERVAL = float(os.environ.get("MDE_POLL_INTERVAL", "30"))
SCRIPT = Path(__file__).parent / "scripts" / "netstat_snapshot.ps1"


@task
def read_transcript(action_id: str) -> dict[str, Any]:
    """The script's exit code and the first lines of its output."""
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

    transcript = LiveResponseHook().get_script_transcript(action_id, 0)
    lines = transcript.script_output.splitlines()
    print(f"{transcript.script_name} exited {transcript.exit_code}; {len(lines)} line(s) of output")
    for line in lines[:20]:
        print(f"  | {line}")
    return {"exit_code": transcript.exit_code, "first_lines": lines[:20], "errors": transcript.script_errors}


with DAG(
    dag_id="example_liveresponse_library",
    description="Upload a script to the live-response library, run it with arguments, read its transcript",
    schedule=None,
    start_date=dt.datetime(2025, 1, 1),
    catchup=False,
    # Retrying is safe: a retry reattaches to the action it already submitted (running or succeeded) and only
    # runs the commands again when that action failed. It also rides out scheduler hiccups (apache/airflow#67287).
    default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=30)},
    tags=["mde", "live-response"],
    params={
        "host": Param("ws-0001.contoso.local", type="string", description="The device's full DNS name"),
        "args": Param("Established", type="string", description="The script's arguments"),
    },
) as dag:
    upload = LiveResponseLibraryUploadOperator(
        task_id="upload_script",
        source=str(SCRIPT),
        description="TCP connections with their owning processes",
        parameters_description="[State] e.g. Established (default: every state)",
    )
    run = LiveResponseOperator(
        task_id="run_script",
        computer_dns_name="{{ params.host }}",
        commands=[RunScript(SCRIPT.name, args="{{ params.args }}")],
        comment="Network snapshot of {{ params.host }} (Airflow {{ dag.dag_id }} {{ run_id }})",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        pool="mde_live_response",
    )
    upload >> run >> read_transcript(run.output["action_id"])
