"""Collect the same evidence from a fleet of devices: a list of host names or a device tag, fanned out.

What it does
    1. ``resolve_devices``: turns the host names (or the MDE device tag) into device ids through the
       machines API. A host name that matches no device, or several, is reported in the summary instead of
       failing the whole run.
    2. ``device`` (a task group mapped over the devices): ``collect`` runs ``triage.ps1`` and collects the
       zip it wrote, deferring while MDE works; ``store`` streams the results and a manifest into
       ``{destination}/{machine_id}/{action_id}/``. Each device succeeds or fails on its own.
    3. ``summary``: runs whatever happened upstream and logs one line per device: what was collected (files,
       bytes, where) and what failed (and why). It fails the run when any device failed, after the table.

MDE's limits: at most 25 live-response sessions at once and 10 submissions a minute per tenant. Every
``collect`` runs in the pool ``mde_live_response``; create it with 25 slots *counting deferred tasks*, or
waiting sessions would not count and MDE would refuse the 26th::

    airflow pools set mde_live_response 25 "MDE live response" --include-deferred

A 429 from MDE makes a task defer for the ``Retry-After`` time; nothing fails and nothing runs twice.

Trigger it with a config such as::

    {"hosts": ["ws-0001.contoso.local", "ws-0002.contoso.local"], "case": "IR-1234",
     "destination": "s3://aws_default@evidence/mde"}
    {"machine_tag": "finance-laptops", "case": "IR-1234", "destination": "file:///srv/evidence"}
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from airflow.sdk import DAG, Param, task, task_group

from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.operators.live_response import LiveResponseOperator
from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
    LiveResponseToObjectStorageOperator,
)

POLL_INTERVAL = float(os.environ.get("MDE_POLL_INTERVAL", "30"))


@task
def resolve_devices(params: dict[str, Any]) -> list[dict[str, str]]:
    """Host names or a device tag -> one ``{"host", "machine_id"}`` per device found."""
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

    hook = LiveResponseHook()
    if params.get("machine_tag"):
        machines = hook.find_machines(machine_tag=params["machine_tag"])
        devices = [{"host": m.computer_dns_name or m.id, "machine_id": m.id} for m in machines]
    else:
        devices = []
        for host in params["hosts"]:
            found = hook.find_machines(computer_dns_name=host)
            if len(found) == 1:
                devices.append({"host": host, "machine_id": found[0].id})
            else:
                print(f"UNRESOLVED {host}: {len(found)} devices match; pass the device id instead")
    if not devices:
        raise ValueError("No device to collect from: check the host names or the tag in the run's config")
    print(f"Collecting from {len(devices)} device(s): {', '.join(d['host'] for d in devices)}")
    return devices


@task_group
def device(machine_id: str) -> None:
    """One device: collect, then store."""
    collect = LiveResponseOperator(
        task_id="collect",
        machine_id=machine_id,
        commands=[RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\triage.zip")],
        comment="{{ params.case }}: fleet triage (Airflow {{ dag.dag_id }} {{ run_id }})",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        pool="mde_live_response",
    )
    store = LiveResponseToObjectStorageOperator(
        task_id="store",
        action_id=collect.output["action_id"],
        destination="{{ params.destination }}",
    )
    collect >> store


@task(trigger_rule="all_done", retries=0)
def summary(devices: list[dict[str, str]] | None, params: dict[str, Any], ti: Any = None) -> dict[str, Any]:
    """One line per device: what was collected, what failed. Fails the run if any device failed."""
    devices = devices or []
    rows, failed = [], []
    for index, target in enumerate(devices):
        action = ti.xcom_pull(task_ids="device.collect", map_indexes=index)
        manifest = ti.xcom_pull(task_ids="device.store", map_indexes=index)
        if manifest:
            files = manifest.get("files", [])
            size = sum(int(f.get("size", 0)) for f in files)
            rows.append({"host": target["host"], "status": "collected", "files": len(files), "bytes": size})
        else:
            status = action.get("status", "failed") if action else "failed"
            rows.append({"host": target["host"], "status": f"NOT collected ({status})", "files": 0, "bytes": 0})
            failed.append(target["host"])
    wanted = [] if params.get("machine_tag") else list(params.get("hosts") or [])
    resolved = {d["host"] for d in devices}
    for host in wanted:
        if host not in resolved:
            rows.append({"host": host, "status": "NOT collected (no unique device)", "files": 0, "bytes": 0})
            failed.append(host)
    width = max([len(r["host"]) for r in rows] + [4])
    print(f"{'host':<{width}}  {'files':>5}  {'bytes':>12}  status")
    for r in rows:
        print(f"{r['host']:<{width}}  {r['files']:>5}  {r['bytes']:>12}  {r['status']}")
    result = {"collected": len(rows) - len(failed), "failed": failed, "devices": rows}
    if failed:
        raise RuntimeError(f"{len(failed)} device(s) not collected: {', '.join(failed)}; see the table above")
    return result


with DAG(
    dag_id="example_liveresponse_fleet",
    description="Triage a fleet of devices (host names or a tag) through a pool sized for MDE's limits",
    schedule=None,
    start_date=dt.datetime(2025, 1, 1),
    catchup=False,
    # Retrying is safe: a retry reattaches to the action it already submitted (running or succeeded) and only
    # runs the commands again when that action failed. It also rides out scheduler hiccups (apache/airflow#67287).
    default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=30)},
    tags=["mde", "live-response", "forensics"],
    params={
        "hosts": Param(
            [f"ws-{n:04d}.contoso.local" for n in range(1, 7)], type="array", description="Device host names"
        ),
        "machine_tag": Param(None, type=["null", "string"], description="Or: every device with this MDE tag"),
        "case": Param("IR-0000", type="string", description="Case or ticket id, kept in MDE's audit comment"),
        "destination": Param("file:///tmp/mde-evidence", type="string", description="Where the evidence goes"),
    },
) as dag:
    devices = resolve_devices()
    device.expand(machine_id=devices.map(lambda found: found["machine_id"])) >> summary(devices)
