"""FleetLiveResponseOperator: the same live-response commands on every device of a list, a tag or a ``$filter``,
from one task (thousands of devices without a mapped task per device).

It looks the devices up in bulk, skips and reports the offline and unsupported ones, rebuilds each device's state
from the sweep's own actions in MDE (so a retry redoes only what is not done), then submits in paced waves inside
MDE's limits and waits on the worker (:mod:`airflow_provider_liveresponse.fleet`). The return value is a summary
with counts and one short row per device.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.constants import DEFAULT_CONN_ID, OFFLINE_QUEUE_SECONDS
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.operators.base import (
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_POLL_INTERVAL,
    LiveResponseHookMixin,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow.sdk import Context

    from airflow_provider_liveresponse.fleet.evidence import EvidenceStore
    from airflow_provider_liveresponse.fleet.outcome import OutcomeTable
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import Command, Machine

#: The target parameters; exactly one is given.
TARGETS = ("machine_ids", "computer_dns_names", "machine_tag", "machine_filter")
#: How far before the DAG run's start the sweep looks for its own actions (clock skew, a run started earlier).
LEDGER_MARGIN = timedelta(hours=1)


class FleetLiveResponseOperator(LiveResponseHookMixin, BaseOperator):
    """Run the same commands on every device of ``machine_ids``, ``computer_dns_names``, ``machine_tag`` or
    ``machine_filter`` (exactly one), paced inside MDE's limits, one action per device across retries.

    :param commands: RunScript / GetFile / PutFile models or wire dicts, the same for every device.
    :param comment: the audit comment on every action (each carries the sweep's marker too).
    :param pickup_timeout: seconds a device may leave its action Pending before it is cancelled and reported
        "offline: not collected" (default 1 hour, at most MDE's 3-day queue).
    :param offline_retries: later waves for devices cancelled that way, after the fresh devices (default 1).
    :param stale_after: seconds of lastSeen age after which an Active device is submitted last (None: no order).
    :param submissions_per_minute: the sweep's submission rate (MDE allows 10 a minute per tenant).
    :param max_concurrent_sessions: the sweep's sessions at once (MDE allows 25, or 50).
    :param read_calls_per_minute: reads of machine actions per minute for polling (MDE: 100 per read API).
    :param read_calls_per_hour: and per hour (MDE: 1,500): polling is stretched to stay within half of it.
    :param poll_interval: the shortest time between two polls of the actions in flight.
    :param fail_on: outcomes that fail the task at the end (default: any failed device).
    :param destination: where each collected device's results go (``s3://...``, ``file://...`` or an
        ObjectStoragePath), as the transfer operator stores them, under ``<host>_<machine id>/<action id>/``;
        None: not stored (the actions' results stay in MDE).
    :param dest_conn_id: the destination's Airflow connection when the URL does not name one.
    """

    template_fields: Sequence[str] = (*TARGETS, "commands", "comment", "destination")
    template_fields_renderers = {"commands": "json"}
    ui_color = "#c9dcf0"

    def __init__(
        self,
        *,
        commands: Sequence[Command | dict[str, Any]],
        machine_ids: Sequence[str] | None = None,
        computer_dns_names: Sequence[str] | None = None,
        machine_tag: str | None = None,
        machine_filter: str | None = None,
        comment: str | None = None,
        pickup_timeout: float | timedelta = 3600.0,
        offline_retries: int = 1,
        stale_after: float | timedelta | None = None,
        submissions_per_minute: float = 10.0,
        max_concurrent_sessions: int = 25,
        read_calls_per_minute: int = 100,
        read_calls_per_hour: int = 1500,
        poll_interval: float | timedelta = DEFAULT_POLL_INTERVAL,
        fail_on: Sequence[str] = ("failed",),
        destination: Any = None,
        dest_conn_id: str | None = None,
        mde_conn_id: str = DEFAULT_CONN_ID,
        max_retry_wait: float | timedelta = DEFAULT_MAX_RETRY_WAIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from airflow_provider_liveresponse.fleet.outcome import OUTCOMES

        if isinstance(commands, (list, tuple)):
            commands = [c.to_wire() if hasattr(c, "to_wire") else c for c in commands]
        self.commands = commands
        self.machine_ids, self.computer_dns_names = machine_ids, computer_dns_names
        self.machine_tag, self.machine_filter = machine_tag, machine_filter
        self.comment = comment
        self.pickup_timeout = validation.duration(pickup_timeout, "pickup_timeout")
        if self.pickup_timeout > OFFLINE_QUEUE_SECONDS:
            raise LiveResponseConfigError(
                f"pickup_timeout must be at most MDE's queue of 3 days ({OFFLINE_QUEUE_SECONDS} s); "
                f"got {self.pickup_timeout:g}"
            )
        self.offline_retries = validation.count(offline_retries, "offline_retries", minimum=0, maximum=10)
        self.stale_after = validation.optional_duration(stale_after, "stale_after")
        self.submissions_per_minute = validation.duration(submissions_per_minute, "submissions_per_minute")
        self.max_concurrent_sessions = validation.count(max_concurrent_sessions, "max_concurrent_sessions")
        self.read_calls_per_minute = validation.count(read_calls_per_minute, "read_calls_per_minute")
        self.read_calls_per_hour = validation.count(read_calls_per_hour, "read_calls_per_hour")
        self.poll_interval = validation.duration(poll_interval, "poll_interval")
        self.fail_on = [validation.choice(o, "fail_on[]", OUTCOMES) for o in validation.text_list(fail_on, "fail_on")]
        self.destination = destination
        self.dest_conn_id = validation.optional_text(dest_conn_id, "dest_conn_id", hint="an Airflow connection id")
        self._set_connection(mde_conn_id, max_retry_wait)
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], None] = time.sleep

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_liveresponse.exceptions import LiveResponseError
        from airflow_provider_liveresponse.fleet.outcome import OutcomeTable

        commands, comment, target = self._validated(context)
        destination = self._destination()
        hook = self._hook(max_throttle_wait=0)  # the sweep's limiter, not the hook, waits out a 429
        table = OutcomeTable()
        machines = self._resolve(hook, target, table)
        evidence = None
        if destination is not None:
            from airflow_provider_liveresponse.fleet.evidence import EvidenceStore

            evidence = EvidenceStore(hook, destination, self.log, f"Task {self.task_id}")
        self._sweep(context, hook, machines, commands, comment, table, evidence)
        self.log.info("Fleet sweep outcome, %d target(s):\n%s", len(table.rows), table.table())
        summary = table.summary()
        failing = {name: n for name, n in summary["counts"].items() if name in self.fail_on and n}
        if failing:
            context["ti"].xcom_push(key="fleet_outcome", value=summary)
            raise LiveResponseError(
                f"Task {self.task_id}: fleet sweep ended with {failing}; see the outcome table in the log "
                "(XCom key fleet_outcome holds every row)"
            )
        return summary

    def _validated(self, context: Context) -> tuple[list[Command], str, tuple[str, Any]]:
        """The rendered parameters, checked before any API call."""
        from airflow_provider_liveresponse.models import parse_commands

        given = [(name, getattr(self, name)) for name in TARGETS if getattr(self, name) not in (None, "", [])]
        try:
            parsed = parse_commands(self.commands)
            if len(given) != 1:
                raise LiveResponseConfigError(
                    f"give exactly one of {', '.join(TARGETS)}; got {', '.join(n for n, _ in given) or 'none'}"
                )
            name, value = given[0]
            if name == "machine_ids":
                value = validation.text_list(value, name, validation.machine_id)
            elif name == "computer_dns_names":
                value = validation.text_list(value, name)
            else:
                value = validation.text(value, name)
            comment = validation.optional_text(self.comment, "comment", empty_allowed=True, hint="the audit comment")
        except ValueError as exc:
            kind = type(exc) if isinstance(exc, LiveResponseConfigError) else LiveResponseConfigError
            raise kind(f"Task {self.task_id}: {exc}") from None
        ti = context["ti"]
        return parsed, comment or f"Airflow fleet sweep {ti.dag_id} {ti.run_id} {ti.task_id}", (name, value)

    def _destination(self) -> Any:
        """The rendered destination as an ObjectStoragePath (checked before any API call), or None."""
        if self.destination in (None, ""):
            return None
        from airflow_provider_liveresponse.transfers.settings import destination

        try:
            return destination(self.destination, self.dest_conn_id)
        except LiveResponseConfigError as exc:
            raise type(exc)(f"Task {self.task_id}: {exc}") from None

    def _resolve(self, hook: LiveResponseHook, target: tuple[str, Any], table: OutcomeTable) -> list[Machine]:
        """The target's devices; names and ids that found no single device go into the table."""
        from airflow_provider_liveresponse.fleet.outcome import AMBIGUOUS, UNRESOLVED, DeviceOutcome

        name, value = target
        if name == "machine_tag":
            return hook.machines_by_tag(value)
        if name == "machine_filter":
            return hook.list_machines(value)
        lookup = hook.lookup_machine_ids(value) if name == "machine_ids" else hook.lookup_host_names(value)
        for missing in lookup.unresolved:
            table.record(DeviceOutcome(missing, UNRESOLVED, "no device has this name or id in MDE"))
        for host, twins in lookup.ambiguous.items():
            ids = ", ".join(m.id for m in twins)
            table.record(DeviceOutcome(host, AMBIGUOUS, f"{len(twins)} devices share this name ({ids}): pass ids"))
        self.log.info(
            "Resolved %d device(s); %d unresolved, %d ambiguous",
            len(lookup.found),
            len(lookup.unresolved),
            len(lookup.ambiguous),
        )
        return lookup.found

    def _sweep(
        self,
        context: Context,
        hook: LiveResponseHook,
        machines: list[Machine],
        commands: list[Command],
        comment: str,
        table: OutcomeTable,
        evidence: EvidenceStore | None,
    ) -> None:
        from airflow_provider_liveresponse.fleet import ledger, planner
        from airflow_provider_liveresponse.fleet.limiter import ReadBudget, SubmissionLimiter
        from airflow_provider_liveresponse.fleet.sweep import Sweep, SweepSettings
        from airflow_provider_liveresponse.markers import marker_for_context

        now = datetime.now(UTC)
        stale = timedelta(seconds=self.stale_after) if self.stale_after is not None else None
        plan = planner.plan(machines, now, stale)
        for skipped in plan.skipped:
            table.record(skipped)
        sweep_marker = marker_for_context(context)
        started = getattr(context.get("dag_run"), "start_date", None) or now
        own = hook.list_machine_actions(action_type="LiveResponse", created_after=started - LEDGER_MARGIN)
        states = ledger.rebuild(own, sweep_marker)
        settings = SweepSettings(
            commands=commands,
            comment=comment,
            sweep_marker=sweep_marker,
            pickup_timeout=self.pickup_timeout,
            offline_retries=self.offline_retries,
            max_sessions=self.max_concurrent_sessions,
            poll_interval=self.poll_interval,
        )
        limiter = SubmissionLimiter(self.submissions_per_minute, self.clock)
        polls = ReadBudget("machineactions", self.read_calls_per_minute, self.read_calls_per_hour, self.clock)
        sweep = Sweep(hook, settings, limiter, polls, table, self.clock, self.sleep, evidence)
        sweep.start(plan.submit, states)
        self.log.info(
            "Fleet sweep: %d device(s) to submit, %d reattached, %d skipped; %d of the sweep's actions found in MDE",
            len(sweep.queue),
            len(sweep.flights),
            len(plan.skipped),
            sum(len(s.actions) for s in states.values()),
        )
        sweep.run()


__all__ = ["FleetLiveResponseOperator"]
