"""Collect the same evidence from a fleet of devices, up to thousands in one run: host names, a device tag or a
machines ``$filter``, swept by one task.

What it does
    ``sweep`` (a :class:`FleetLiveResponseOperator`) runs ``triage.ps1`` and collects the zip it wrote on every
    device of the target:

    1. Looks the devices up in bulk (a tag or a filter is one paged listing; host names go 100 to a call), and
       reports host names that match no device, or several, one by one.
    2. Reports ``Inactive`` devices (silent for 7 days) "offline" without sending them anything, and skips
       platforms live response does not reach.
    3. Submits in paced waves inside MDE's limits, waits on the worker, and cancels the action of a device that
       reads Active but does not pick it up within ``pickup_timeout`` (reported "offline: not collected", tried
       ``offline_retries`` more times after the others). A device whose lastSeen is ``stale_after`` behind the
       freshest is probably offline: submitted spread through the queue, or (``skip_stale``) not at all, reported
       "offline: not submitted" with its lastSeen, for a later run to try.
    4. Streams each collected device's results and a manifest into
       ``{destination}/{host}_{machine id}/{action id}/`` (check them with
       ``python -m airflow_provider_liveresponse verify {destination}``).
    5. Logs one line per device (collected, failed and why, offline since, skipped) and returns the same table
       as its XCom; the run fails at the end when a device failed or a host name was not found.

    A retry (or a rerun of the same DAG run) redoes only the devices not done: it finds the sweep's own actions
    in MDE, so no device gets a second action. 5,000 devices are one task instance, not 5,000 mapped ones
    (``[core] max_map_length`` is 1,024 and the scheduler slows with thousands of mapped indexes).

MDE's limits, per tenant: 10 submissions a minute, 25 concurrent live-response sessions, 100 calls a minute and
1,500 an hour on each read API. The sweep paces itself below them (no pool needed), so 4,500 online devices take
at least 7.5 hours. A second sweep in the same tenant shares those limits: give each sweep half
(``submissions_per_minute``, ``max_concurrent_sessions``, ``read_calls_per_hour`` in the run's config).

Trigger it with a config such as::

    {"hosts": ["ws-0001.contoso.local", "ws-0002.contoso.local"], "case": "IR-1234",
     "destination": "s3://aws_default@evidence/mde"}
    {"machine_tag": "finance-laptops", "case": "IR-1234", "destination": "file:///srv/evidence"}
    {"machine_filter": "osPlatform eq 'Windows11' and rbacGroupName eq 'Finance'", "case": "IR-1234",
     "destination": "file:///srv/evidence", "pickup_timeout": 600}

``MDE_POLL_INTERVAL`` (environment, seconds, default 30) sets how often the sweep polls its actions in flight.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Param

from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.operators.fleet import FleetLiveResponseOperator

POLL_INTERVAL = float(os.environ.get("MDE_POLL_INTERVAL", "30"))


def _number(default: float, description: str, minimum: float = 0) -> Param:
    return Param(default, type="number", minimum=minimum, description=description)


with DAG(
    dag_id="example_liveresponse_fleet",
    description="Triage a fleet of devices (host names, a tag or a $filter) in one paced sweep inside MDE's limits",
    schedule=None,
    start_date=dt.datetime(2025, 1, 1),
    catchup=False,
    # Retrying is safe: a retry finds the sweep's actions in MDE and redoes only the devices not done.
    default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=30)},
    # The target lists and the numbers below render as what they are (a list, a number), not as text.
    render_template_as_native_obj=True,
    tags=["mde", "live-response", "forensics"],
    params={
        "hosts": Param(
            [f"ws-{n:04d}.contoso.local" for n in range(1, 7)], type="array", description="Device host names"
        ),
        "machine_tag": Param(None, type=["null", "string"], description="Or: every device with this MDE tag"),
        "machine_filter": Param(None, type=["null", "string"], description="Or: every device a $filter matches"),
        "case": Param("IR-0000", type="string", description="Case or ticket id, kept in MDE's audit comment"),
        "destination": Param("file:///tmp/mde-evidence", type="string", description="Where the evidence goes"),
        "pickup_timeout": _number(900, "Seconds a device may leave its action Pending (then: offline)", 1),
        "offline_retries": Param(0, type="integer", minimum=0, maximum=10, description="Later tries per silent device"),
        "stale_after": _number(1800, "lastSeen this much older than the freshest: spread early in the queue", 1),
        "skip_stale": Param(False, type="boolean", description="Do not submit to those at all (a rerun tries them)"),
        "submissions_per_minute": _number(10, "The sweep's submissions a minute (MDE: 10 per tenant)", 0.01),
        "max_concurrent_sessions": Param(25, type="integer", minimum=1, description="Sessions at once (MDE: 25)"),
        "read_calls_per_minute": Param(100, type="integer", minimum=1, description="Reads a minute (MDE: 100)"),
        "read_calls_per_hour": Param(1500, type="integer", minimum=1, description="Reads an hour (MDE: 1,500)"),
    },
) as dag:
    FleetLiveResponseOperator(
        task_id="sweep",
        # Exactly one target: the tag, else the filter, else the host names.
        computer_dns_names="{{ params.hosts if not (params.machine_tag or params.machine_filter) else [] }}",
        machine_tag="{{ params.machine_tag or '' }}",
        machine_filter="{{ params.machine_filter if not params.machine_tag else '' }}",
        commands=[RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\triage.zip")],
        comment="{{ params.case }}: fleet triage (Airflow {{ dag.dag_id }} {{ run_id }})",
        destination="{{ params.destination }}",
        pickup_timeout="{{ params.pickup_timeout }}",
        offline_retries="{{ params.offline_retries }}",
        stale_after="{{ params.stale_after }}",
        skip_stale="{{ params.skip_stale }}",
        submissions_per_minute="{{ params.submissions_per_minute }}",
        max_concurrent_sessions="{{ params.max_concurrent_sessions }}",
        read_calls_per_minute="{{ params.read_calls_per_minute }}",
        read_calls_per_hour="{{ params.read_calls_per_hour }}",
        poll_interval=POLL_INTERVAL,
        fail_on=["failed", "unresolved", "ambiguous"],
    )
