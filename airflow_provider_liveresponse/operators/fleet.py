"""FleetLiveResponseOperator: the same live-response commands on every device of a list, a tag or a ``$filter``,
from one task (thousands of devices without a mapped task per device).

It looks the devices up in bulk, skips and reports the offline and unsupported ones, rebuilds each device's state
from the sweep's own actions in MDE (so a retry redoes only what is not done), then submits in paced waves inside
MDE's limits and waits on the worker (:mod:`airflow_provider_liveresponse.fleet`). The return value is a summary
with counts and one short row per device.
"""

from __future__ import annotations

import math
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

    from airflow_provider_liveresponse.fleet.evidence import BackgroundStores
    from airflow_provider_liveresponse.fleet.outcome import OutcomeTable
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import Command, Machine
    from airflow_provider_liveresponse.signing import ManifestSigner

#: The target parameters; exactly one is given.
TARGETS = ("machine_ids", "computer_dns_names", "machine_tag", "machine_filter")
#: The numeric settings; each may be a template (``"{{ params.pickup_timeout }}"``), checked again once rendered.
KNOBS = (
    "pickup_timeout",
    "offline_retries",
    "stale_after",
    "submissions_per_minute",
    "max_concurrent_sessions",
    "read_calls_per_minute",
    "read_calls_per_hour",
    "poll_interval",
)
#: The default ``pickup_timeout``: 15 minutes (see the class docstring for the arithmetic).
DEFAULT_PICKUP_TIMEOUT = 900.0
#: How far before the DAG run's start the sweep looks for its own actions (clock skew, a run started earlier).
LEDGER_MARGIN = timedelta(hours=1)


class FleetLiveResponseOperator(LiveResponseHookMixin, BaseOperator):
    """Run the same commands on every device of ``machine_ids``, ``computer_dns_names``, ``machine_tag`` or
    ``machine_filter`` (exactly one), paced inside MDE's limits, one action per device across retries.

    :param commands: RunScript / GetFile / PutFile models or wire dicts, the same for every device.
    :param comment: the audit comment on every action (each carries the sweep's marker too).
    :param pickup_timeout: seconds a device may leave its action Pending before it is cancelled and reported
        "offline: not collected" (default 900, at most MDE's 3-day queue): the cancel comes at the last poll
        before pickup_timeout ends, so no silent device holds its session longer. Why 15 minutes: a device that reads
        Active but is offline holds a session slot for pickup_timeout, an online one for a session (d, about
        half a minute for a triage). At 10 submissions a minute with a share s of silent devices the slots in use
        are about ``10 x ((1 - s) x d + s x T)`` (minutes): with s = 5%, d = 0.5 and T = 15 that is 12 of the
        25 slots (T = 60 would need 35, so the sweep would wait for slots instead of submitting at 10 a minute;
        T = 30 needs 20, too close to 25 when silent devices come in clusters). A connected device picks an
        action up within seconds to a few minutes. Templated (``"{{ params.pickup_timeout }}"``) like every
        numeric setting below.
    :param offline_retries: later waves for devices cancelled that way, after the fresh devices (default 1);
        each costs one submission and up to pickup_timeout of a slot per silent device.
    :param stale_after: seconds of lastSeen age (behind the freshest lastSeen of the listing) after which an
        Active device is taken for probably offline: such devices are spread over the queue, none in the
        sweep's last pickup_timeout, so their waits overlap the fresh devices' work (None: the listing's order).
    :param skip_stale: with ``stale_after``, do not submit to such devices at all: each is reported "offline"
        with its lastSeen, and a rerun tries it again (default False: they are submitted, spread). Each silent
        device costs the tenant a submission (6 s of MDE's 10 a minute: 250 of them add 25 minutes to a sweep)
        and a session slot for up to ``pickup_timeout``; skipping trades the chance that it is back for time. A
        device the sweep already submitted to (a retry) is reattached, never skipped.
    :param submissions_per_minute: the sweep's submission rate (MDE allows 10 a minute per tenant).
    :param max_concurrent_sessions: the sweep's sessions at once (MDE allows 25, or 50).
    :param read_calls_per_minute: MDE's reads of machine actions a minute per tenant (100 per read API), multiplied
        by the connection's ``read_share`` (default 1; 1 / (triggerers + fleet sweeps that may run at once on the
        tenant)): with read_share 0.25 the sweep's polling makes at most 25 reads a minute.
    :param read_calls_per_hour: and an hour (MDE: 1,500), multiplied by ``read_share`` the same way: polling is
        stretched to stay within half of the result. The start-of-sweep log line gives both budgets in use.
    :param poll_interval: the shortest time between two polls of the actions in flight.
    :param fail_on: outcomes that fail the task at the end (default: any failed device).
    :param destination: where each collected device's results go (``s3://...``, ``file://...`` or an
        ObjectStoragePath), as the transfer operator stores them, under ``<host>_<machine id>/<action id>/``;
        None: not stored (the actions' results stay in MDE).
    :param dest_conn_id: the destination's Airflow connection when the URL does not name one.
    :param signing_conn_id: with ``destination``, an Airflow connection whose password holds an Ed25519 private
        key (PEM, PKCS#8): every device's manifest is signed over its exact bytes, as the transfer operator signs
        (``manifest.json.sig`` beside it). The key is read before any API call; it never reaches a log or XCom.
    """

    template_fields: Sequence[str] = (*TARGETS, "commands", "comment", "destination", *KNOBS, "skip_stale")
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
        pickup_timeout: float | timedelta | str = DEFAULT_PICKUP_TIMEOUT,
        offline_retries: int | str = 1,
        stale_after: float | timedelta | str | None = None,
        skip_stale: bool | str = False,
        submissions_per_minute: float | str = 10.0,
        max_concurrent_sessions: int | str = 25,
        read_calls_per_minute: int | str = 100,
        read_calls_per_hour: int | str = 1500,
        poll_interval: float | timedelta | str = DEFAULT_POLL_INTERVAL,
        fail_on: Sequence[str] = ("failed",),
        destination: Any = None,
        dest_conn_id: str | None = None,
        signing_conn_id: str | None = None,
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
        self.pickup_timeout: Any = pickup_timeout
        self.offline_retries: Any = offline_retries
        self.stale_after: Any = stale_after
        self.skip_stale: Any = skip_stale
        self.submissions_per_minute: Any = submissions_per_minute
        self.max_concurrent_sessions: Any = max_concurrent_sessions
        self.read_calls_per_minute: Any = read_calls_per_minute
        self.read_calls_per_hour: Any = read_calls_per_hour
        self.poll_interval: Any = poll_interval
        self._check_knobs(templated_allowed=True)
        self.fail_on = [validation.choice(o, "fail_on[]", OUTCOMES) for o in validation.text_list(fail_on, "fail_on")]
        self.destination = destination
        self.dest_conn_id = validation.optional_text(dest_conn_id, "dest_conn_id", hint="an Airflow connection id")
        self.signing_conn_id = validation.optional_text(
            signing_conn_id, "signing_conn_id", hint="an Airflow connection holding an Ed25519 private key"
        )
        self._set_connection(mde_conn_id, max_retry_wait)
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], None] = time.sleep

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_liveresponse.exceptions import LiveResponseError
        from airflow_provider_liveresponse.fleet.outcome import OutcomeTable

        commands, comment, target = self._validated(context)
        self._check_knobs(templated_allowed=False)
        destination = self._destination()
        signer = self._signer(destination)
        hook = self._hook(max_throttle_wait=0)  # the sweep's limiter, not the hook, waits out a 429
        table = OutcomeTable()
        machines = self._resolve(hook, target, table)
        evidence = None
        if destination is not None:
            from airflow_provider_liveresponse.fleet.evidence import BackgroundStores, EvidenceStore

            owner = f"Task {self.task_id}"

            def make_store() -> EvidenceStore:
                store_hook = self._hook()
                _ = store_hook.settings  # the connection, read on this thread
                return EvidenceStore(store_hook, destination, self.log, owner, signer=signer)

            evidence = BackgroundStores(make_store)
        try:
            self._sweep(context, hook, machines, commands, comment, table, evidence)
        finally:
            if evidence is not None:
                evidence.close()
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

    def _check_knobs(self, *, templated_allowed: bool) -> None:
        """Check (and normalise) the numeric settings; a template is left for :meth:`execute` to check rendered."""
        checks: dict[str, Callable[[Any, str], Any]] = {
            "pickup_timeout": lambda v, n: validation.duration(v, n, maximum=OFFLINE_QUEUE_SECONDS),
            "offline_retries": lambda v, n: validation.count(v, n, minimum=0, maximum=10),
            "stale_after": validation.optional_duration,
            "submissions_per_minute": validation.duration,
            "max_concurrent_sessions": validation.count,
            "read_calls_per_minute": validation.count,
            "read_calls_per_hour": validation.count,
            "poll_interval": validation.duration,
        }
        for name, check in checks.items():
            # rendered text (a DAG without render_template_as_native_obj): "900", "None"
            self._check(name, check, validation.rendered_number, templated_allowed=templated_allowed)
        self._check("skip_stale", validation.flag, _rendered_flag, templated_allowed=templated_allowed)
        if self.skip_stale is True and self.stale_after is None:
            raise LiveResponseConfigError(
                f"Task {self.task_id}: skip_stale=True needs stale_after (the lastSeen age, in seconds behind the "
                "fleet's freshest, that makes a device stale), for example stale_after=3600; or drop skip_stale"
            )

    def _check(
        self,
        name: str,
        check: Callable[[Any, str], Any],
        rendered: Callable[[str], Any],
        *,
        templated_allowed: bool,
    ) -> None:
        """Check (and normalise) one setting: a template is left for :meth:`execute`, which checks the rendered
        value (text turned into what it says by ``rendered`` first), its error naming the task."""
        value = getattr(self, name)
        if isinstance(value, str) and templated_allowed and "{{" in value:
            return
        if isinstance(value, str) and not templated_allowed:
            value = rendered(value)
        try:
            setattr(self, name, check(value, name))
        except ValueError as exc:
            if templated_allowed:
                raise
            raise type(exc)(f"Task {self.task_id}: {exc}") from None

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

    def _signer(self, destination: Any) -> ManifestSigner | None:
        """The manifest signer of ``signing_conn_id`` (read before any API call), None without it or without a
        destination (nothing is stored then, so nothing is signed)."""
        if self.signing_conn_id is None:
            return None
        if destination is None:
            self.log.warning("signing_conn_id is ignored: no destination is given, so no manifest is written")
            return None
        from airflow_provider_liveresponse.signing import ManifestSigner

        return ManifestSigner.for_task(self.signing_conn_id, self.task_id, "nothing was submitted")

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
        evidence: BackgroundStores | None,
    ) -> None:
        from airflow_provider_liveresponse.fleet import ledger, planner
        from airflow_provider_liveresponse.fleet.limiter import ReadBudget, SubmissionLimiter
        from airflow_provider_liveresponse.fleet.sweep import Sweep, SweepSettings
        from airflow_provider_liveresponse.markers import marker_for_context

        now = datetime.now(UTC)
        stale = timedelta(seconds=self.stale_after) if self.stale_after is not None else None
        tail = math.ceil(self.submissions_per_minute * self.pickup_timeout / 60)  # the last pickup_timeout's
        plan = planner.plan(machines, now, stale, tail, skip_stale=self.skip_stale)
        for skipped in plan.skipped:
            table.record(skipped)
        sweep_marker = marker_for_context(context)
        started = getattr(context.get("dag_run"), "start_date", None) or now
        own = hook.list_machine_actions(action_type="LiveResponse", created_after=started - LEDGER_MARGIN)
        states = ledger.rebuild(own, sweep_marker)
        for machine in plan.stale:  # skip_stale: only those the sweep never submitted to
            if machine.id.lower() in states:
                plan.submit.append(machine)
            elif stale is not None:
                table.record(planner.stale_outcome(machine, plan.reference, stale))
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
        share = hook.settings.read_share
        per_minute, per_hour = _shared(self.read_calls_per_minute, share), _shared(self.read_calls_per_hour, share)
        polls = ReadBudget("machineactions", per_minute, per_hour, self.clock)
        sweep = Sweep(hook, settings, limiter, polls, table, self.clock, self.sleep, evidence)
        sweep.start(plan.submit, states)
        self.log.info(
            "Fleet sweep: %d device(s) to submit, %d reattached, %d skipped; %d of the sweep's actions found in MDE; "
            "reads of machine actions at most %d a minute and %d an hour (read_share %g of %d and %d)",
            len(sweep.queue),
            len(sweep.flights),
            len(plan.skipped),
            sum(len(s.actions) for s in states.values()),
            per_minute,
            per_hour,
            share,
            self.read_calls_per_minute,
            self.read_calls_per_hour,
        )
        sweep.run()


def _rendered_flag(text: str) -> Any:
    """A rendered template's True or False (``"True"``, ``"False"``); other text unchanged, for the check to refuse."""
    return {"True": True, "False": False}.get(text, text)


def _shared(budget: int, share: float) -> int:
    """The connection's ``read_share`` of a read budget, in whole calls (at least one)."""
    return max(1, math.floor(budget * share + 1e-9))


__all__ = ["DEFAULT_PICKUP_TIMEOUT", "FleetLiveResponseOperator"]
