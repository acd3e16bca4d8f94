"""Ask a person before a fleet-wide RunScript: the approval shows the devices and the script; nothing is sent to a
device until someone approves.

What it does
    1. ``plan``: resolves the target (host names, a device tag or a machines ``$filter``) to devices through the
       machines API in bulk, and writes what the approver reads: the script and its arguments, the target, how
       many devices, their host names (the first 50) and the host names that match no device or several.
    2. ``approve`` (Airflow's ``ApprovalOperator``, Airflow 3.1+): waits for a person to choose *Approve* or
       *Reject* under the run's Required Actions in the UI, or through the REST API::

           PATCH /api/v2/dags/example_liveresponse_approval/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails
           {"chosen_options": ["Approve"], "params_input": {}}

       Waiting holds no worker slot (Airflow 3.3: the task is ``awaiting_input``; 3.1 and 3.2: ``deferred`` to the
       triggerer). No answer within ``MDE_APPROVAL_HOURS`` (environment, default 8) counts as *Reject*.
    3. ``sweep`` (:class:`FleetLiveResponseOperator`): runs the script on exactly the devices shown, by their
       machine ids (a device tagged after the approval is not swept), paced inside MDE's limits, and stores each
       device's transcript under ``{destination}/{host}_{machine id}/{action id}/``.

    *Reject* skips ``sweep``: nothing is submitted to MDE. The approver, the answer and its time are kept with the
    task instance (its Required Actions entry), next to the run's config.

Before you run it
    - A connection ``mde_live_response_default`` (see the README) and the script in the live-response library.
    - Airflow 3.1 or later (``apache-airflow-providers-standard`` 1.6+ has ``ApprovalOperator``); on 3.1 and 3.2
      a triggerer must run. Limit who may answer with ``assigned_users`` on ``approve`` if your auth manager
      knows the responders.

Trigger it with a config such as::

    {"machine_tag": "finance-laptops", "script": "collect-autoruns.ps1", "args": "-Case IR-1234",
     "case": "IR-1234", "destination": "s3://aws_default@evidence/mde"}
    {"hosts": ["ws-0001.contoso.local", "ws-0002.contoso.local"], "script": "triage.ps1", "case": "IR-1234"}
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, task

from airflow_provider_liveresponse.operators.fleet import FleetLiveResponseOperator

POLL_INTERVAL = float(os.environ.get("MDE_POLL_INTERVAL", "30"))
APPROVAL_TIMEOUT = dt.timedelta(hours=float(os.environ.get("MDE_APPROVAL_HOURS", "8")))
#: Host names listed in the approval's text; the count is always the full one.
SHOWN_DEVICES = 50
PLAN = "ti.xcom_pull(task_ids='plan')"


def _number(default: float, description: str, minimum: float = 0) -> Param:
    return Param(default, type="number", minimum=minimum, description=description)


def approval_text(script: str, args: str | None, target: str, found: list[Any], missing: list[str]) -> str:
    """The approval's body (Markdown): the script, the target, the devices and what was not found."""
    lines = [
        f"**Script:** `{script}`" + (f" with arguments `{args}`" if args else " (no arguments)"),
        f"**Target:** {target}",
        f"**Devices:** {len(found)}",
        "",
    ]
    lines += [f"- {m.computer_dns_name or '(no host name)'} (`{m.id}`, {m.health_status or 'unknown'})" for m in found]
    lines = lines[: 4 + SHOWN_DEVICES]
    if len(found) > SHOWN_DEVICES:
        lines.append(f"- ... and {len(found) - SHOWN_DEVICES} more")
    if missing:
        lines += ["", f"**Not found or ambiguous, not swept:** {', '.join(missing)}"]
    return "\n".join(lines)


with DAG(
    dag_id="example_liveresponse_approval",
    description="A person approves (or rejects) a fleet-wide RunScript after seeing the devices and the script",
    schedule=None,
    start_date=dt.datetime(2025, 1, 1),
    catchup=False,
    # The machine ids and the commands render as lists, not as text.
    render_template_as_native_obj=True,
    tags=["mde", "live-response", "forensics", "approval"],
    doc_md=__doc__,
    params={
        "hosts": Param(["ws-0001.contoso.local"], type="array", description="Device host names"),
        "machine_tag": Param(None, type=["null", "string"], description="Or: every device with this MDE tag"),
        "machine_filter": Param(None, type=["null", "string"], description="Or: every device a $filter matches"),
        "script": Param("triage.ps1", type="string", description="The live-response library script to run"),
        "args": Param(None, type=["null", "string"], description="The script's arguments"),
        "case": Param("IR-0000", type="string", description="Case or ticket id, kept in MDE's audit comment"),
        "destination": Param("file:///tmp/mde-evidence", type="string", description="Where the transcripts go"),
        "pickup_timeout": _number(900, "Seconds a device may leave its action Pending (then: offline)", 1),
        "submissions_per_minute": _number(10, "The sweep's submissions a minute (MDE: 10 per tenant)", 0.01),
        "read_calls_per_minute": Param(100, type="integer", minimum=1, description="Reads a minute (MDE: 100)"),
        "read_calls_per_hour": Param(1500, type="integer", minimum=1, description="Reads an hour (MDE: 1,500)"),
    },
) as dag:

    @task
    def plan(**context: Any) -> dict[str, Any]:
        """The devices of the target, the commands and the approval's subject and body."""
        from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
        from airflow_provider_liveresponse.models import RunScript

        params = context["params"]
        hook = LiveResponseHook()
        missing: list[str] = []
        if params["machine_tag"]:
            target = f"every device tagged `{params['machine_tag']}`"
            found = hook.machines_by_tag(params["machine_tag"])
        elif params["machine_filter"]:
            target = f"every device matching `{params['machine_filter']}`"
            found = hook.list_machines(params["machine_filter"])
        else:
            target = f"{len(params['hosts'])} host name(s)"
            lookup = hook.lookup_host_names(params["hosts"])
            found, missing = lookup.found, [*lookup.unresolved, *lookup.ambiguous]
        if not found:
            raise ValueError(f"No device matches {target}: nothing to approve")
        command = RunScript(params["script"], params["args"])
        return {
            "machine_ids": [machine.id for machine in found],
            "commands": [command.to_wire()],
            "subject": f"{params['case']}: run {params['script']} on {len(found)} device(s)?",
            "body": approval_text(params["script"], params["args"], target, found, missing),
        }

    planned = plan()
    approve = ApprovalOperator(
        task_id="approve",
        subject="{{ " + PLAN + "['subject'] }}",
        body="{{ " + PLAN + "['body'] }}",
        defaults="Reject",
        response_timeout=APPROVAL_TIMEOUT,
    )
    sweep = FleetLiveResponseOperator(
        task_id="sweep",
        machine_ids="{{ " + PLAN + "['machine_ids'] }}",
        commands="{{ " + PLAN + "['commands'] }}",
        comment="{{ params.case }}: approved sweep (Airflow {{ dag.dag_id }} {{ run_id }})",
        destination="{{ params.destination }}",
        pickup_timeout="{{ params.pickup_timeout }}",
        submissions_per_minute="{{ params.submissions_per_minute }}",
        read_calls_per_minute="{{ params.read_calls_per_minute }}",
        read_calls_per_hour="{{ params.read_calls_per_hour }}",
        poll_interval=POLL_INTERVAL,
        fail_on=["failed"],
    )
    planned >> approve >> sweep
