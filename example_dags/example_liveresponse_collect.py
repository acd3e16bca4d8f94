"""Collect a triage package from one device, by host name, into object storage.

What it does
    1. ``collect``: runs the live-response library script ``triage.ps1`` on the device (found by its host
       name through the machines API), then collects the zip it wrote with ``GetFile``. The task defers to
       the triggerer while MDE works (the device may be offline for up to 3 days), holding no worker slot.
    2. ``store``: streams each command's result (the script's transcript and the zip, decompressed) into
       ``{destination}/{machine_id}/{action_id}/`` with a SHA-256 per file and a ``manifest.json`` (chain
       of custody), written whole or not at all. Each stored action is an event on the asset ``EVIDENCE``
       (extra: machine, host, action, manifest URL, files): ``example_liveresponse_evidence_index``, scheduled
       on it, adds the files to the evidence index.

Before you run it
    - A connection ``mde_live_response_default`` (see the README: app registration, permissions, cloud).
    - ``triage.ps1`` in the live-response library (or change ``commands`` to your own script and file).
    - The pool ``mde_live_response`` of 25 slots that counts deferred tasks (MDE allows 25 concurrent
      sessions per tenant): ``airflow pools set mde_live_response 25 "MDE live response" --include-deferred``.

Trigger it with a config such as::

    {"host": "ws-0001.contoso.local", "case": "IR-1234", "destination": "s3://aws_default@evidence/mde"}

``destination`` is any ObjectStoragePath URL: ``file:///srv/evidence``, ``s3://conn_id@bucket/prefix``,
``gs://...``, ``abfs://...``. ``MDE_POLL_INTERVAL`` (seconds, default 30) sets how often the wait polls; the
demo lowers it to match the simulator's fast clock.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Asset, Param

from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator
from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
    LiveResponseToObjectStorageOperator,
)

POLL_INTERVAL = float(os.environ.get("MDE_POLL_INTERVAL", "30"))
#: The evidence asset, declared as example_liveresponse_evidence_index declares it (importing that file here
#: would define its DAG twice).
EVIDENCE = Asset(name="mde_live_response_evidence", uri=os.environ.get("MDE_EVIDENCE_ASSET", "file:///mde-evidence"))

with DAG(
    dag_id="example_liveresponse_collect",
    description="Triage one device by host name and store the evidence with a manifest",
    schedule=None,
    start_date=dt.datetime(2025, 1, 1),
    catchup=False,
    # Retrying is safe: a retry reattaches to the action it already submitted (running or succeeded) and only
    # runs the commands again when that action failed. It also rides out scheduler hiccups (apache/airflow#67287).
    default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=30)},
    tags=["mde", "live-response", "forensics"],
    params={
        "host": Param("ws-0001.contoso.local", type="string", description="The device's full DNS name"),
        "case": Param("IR-0000", type="string", description="Case or ticket id, kept in MDE's audit comment"),
        "destination": Param("file:///tmp/mde-evidence", type="string", description="Where the evidence goes"),
    },
) as dag:
    collect = LiveResponseOperator(
        task_id="collect",
        computer_dns_name="{{ params.host }}",
        commands=[RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\triage.zip")],
        comment="{{ params.case }}: triage of {{ params.host }} (Airflow {{ dag.dag_id }} {{ run_id }})",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        pool="mde_live_response",
    )
    store = LiveResponseToObjectStorageOperator(
        task_id="store",
        action_id=collect.output["action_id"],
        destination="{{ params.destination }}",
        outlets=[EVIDENCE],
    )
    collect >> store
