"""Device look-ups of the sync hook, one device or thousands: every page of every listing followed, and names and
ids resolved in ``in (...)`` batches, so N devices cost about N / page size calls, never one call per device.

Mixed into :class:`~airflow_provider_liveresponse.hooks.live_response.LiveResponseHook`. :meth:`find_machines`
lists devices by fields; :meth:`list_machines` by a raw ``$filter``; :meth:`machines_by_tag` by tag;
:meth:`lookup_machine_ids` and :meth:`lookup_host_names` resolve many ids or host names and say, one by one, which
were not found and which host names match several devices (:class:`MachineLookup`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.exceptions import LiveResponseApiError, LiveResponseConfigError
from airflow_provider_liveresponse.hooks import odata
from airflow_provider_liveresponse.hooks.responses import entity
from airflow_provider_liveresponse.models import Machine

if TYPE_CHECKING:
    from collections.abc import Sequence

#: ``$top`` of a machines listing: MDE's maximum (the server still pages its answer).
MAX_TOP = 10_000


class _HookCalls(Protocol):
    """The parts of the hook the look-ups build on."""

    @property
    def base_url(self) -> str: ...

    def _request_json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        action_id: str | None = None,
        machine_id: str | None = None,
        **request: Any,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class MachineLookup:
    """What a bulk look-up found: the devices (in the order asked), the names or ids no device has, and the host
    names that more than one device has (each with all its devices; none of them is in :attr:`found`)."""

    found: list[Machine] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    ambiguous: dict[str, list[Machine]] = field(default_factory=dict)


def list_pages(hook: _HookCalls, clauses: Sequence[str], top: int, what: str) -> list[Machine]:
    """Every device of a machines listing, following each ``@odata.nextLink`` (none on MDE's 404 for "no recent
    machines at all")."""
    pages = odata.Pages("api/machines", odata.query(clauses, top), what)
    machines: list[Machine] = []
    while pages.url:
        try:
            payload = hook._request_json("GET", pages.url, what=what, params=pages.params)
        except LiveResponseApiError as exc:
            if exc.status == 404 and not machines:  # MDE answers 404 when there are no recent machines at all
                return []
            raise
        machines.extend(entity(Machine, item, what) for item in pages.read(payload, hook.base_url))
    return machines


def _host_name(value: Any, name: str) -> str:
    return validation.text(value, name, hint="the device's full DNS name").lower()


class MachineLookupMixin:
    """Device look-ups of :class:`~airflow_provider_liveresponse.hooks.live_response.LiveResponseHook`."""

    def find_machines(
        self: _HookCalls,
        *,
        computer_dns_name: str | None = None,
        machine_tag: str | None = None,
        health_status: str | None = None,
        os_platform: str | None = None,
        onboarding_status: str | None = None,
        top: int = MAX_TOP,
    ) -> list[Machine]:
        """Devices matching every filter given, from every page (an empty list when none match)."""
        name = validation.optional_text(computer_dns_name, "computer_dns_name", hint="the device's full DNS name")
        clauses = [odata.eq("computerDnsName", name.lower())] if name is not None else []
        if machine_tag is not None:
            tag = validation.text(machine_tag, "machine_tag", empty_allowed=True)
            clauses.append(f"machineTags/any(tag: {odata.eq('tag', tag)})")
        for wire, parameter, value in (
            ("healthStatus", "health_status", health_status),
            ("osPlatform", "os_platform", os_platform),
            ("onboardingStatus", "onboarding_status", onboarding_status),
        ):
            if value is not None:
                clauses.append(odata.eq(wire, validation.text(value, parameter, empty_allowed=True)))
        if not clauses:
            raise LiveResponseConfigError(
                "find_machines needs at least one filter (computer_dns_name, machine_tag, health_status, "
                "os_platform or onboarding_status)"
            )
        top = validation.count(top, "top", maximum=MAX_TOP)
        return list_pages(self, clauses, top, "Looking up machines")

    def list_machines(self: _HookCalls, machine_filter: str) -> list[Machine]:
        """Every device matching an OData ``$filter`` for machines, e.g. ``"osPlatform eq 'Windows11' and
        rbacGroupId eq 101"``, from every page."""
        text = validation.text(
            machine_filter, "machine_filter", hint="an OData $filter for machines, e.g. \"osPlatform eq 'Windows11'\""
        )
        return list_pages(self, [text], MAX_TOP, "Listing machines")

    def machines_by_tag(self: _HookCalls, machine_tag: str) -> list[Machine]:
        """Every device carrying the tag ``machine_tag``, from every page."""
        tag = validation.text(machine_tag, "machine_tag", hint="a device tag set in MDE")
        return list_pages(self, [f"machineTags/any(tag: {odata.eq('tag', tag)})"], MAX_TOP, "Listing machines by tag")

    def lookup_machine_ids(self: _HookCalls, machine_ids: Sequence[str]) -> MachineLookup:
        """The devices of ``machine_ids``, in ``id in (...)`` batches of 100; ids no device has are unresolved."""
        wanted = validation.text_list(machine_ids, "machine_ids", validation.machine_id)
        by_id: dict[str, Machine] = {}
        for batch in odata.batches(wanted):
            for machine in list_pages(self, [odata.ids_in(batch)], MAX_TOP, "Looking up machines by id"):
                by_id[machine.id.lower()] = machine
        found = [by_id[i.lower()] for i in wanted if i.lower() in by_id]
        return MachineLookup(found=found, unresolved=[i for i in wanted if i.lower() not in by_id])

    def lookup_host_names(self: _HookCalls, computer_dns_names: Sequence[str]) -> MachineLookup:
        """The devices of ``computer_dns_names`` (case-insensitive), in ``computerDnsName in (...)`` batches of
        100; names no device has are unresolved, names several devices have are ambiguous."""
        wanted = validation.text_list(computer_dns_names, "computer_dns_names", _host_name)
        by_name: dict[str, list[Machine]] = {}
        for batch in odata.batches(wanted):
            clause = f"computerDnsName in ({', '.join(odata.string(name) for name in batch)})"
            for machine in list_pages(self, [clause], MAX_TOP, "Looking up machines by host name"):
                by_name.setdefault((machine.computer_dns_name or "").lower(), []).append(machine)
        lookup = MachineLookup()
        for name in wanted:
            machines = by_name.get(name, [])
            if not machines:
                lookup.unresolved.append(name)
            elif len(machines) > 1:
                lookup.ambiguous[name] = machines
            else:
                lookup.found.append(machines[0])
        return lookup


__all__ = ["MAX_TOP", "MachineLookup", "MachineLookupMixin", "list_pages"]
