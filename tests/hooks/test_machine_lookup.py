"""Device look-ups against a simulated fleet larger than one page (the simulator pages 100 devices at a time, as MDE
pages its answers): every page is followed, bulk look-ups cost about N / 100 calls, and unresolved and ambiguous
names come back one by one."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError, LiveResponseParameterTypeError
from airflow_provider_liveresponse.hooks.machine_lookup import MachineLookup
from airflow_provider_liveresponse.simulator.fleet import device_id

if TYPE_CHECKING:
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.simulator.server import Simulator

FLEET = 450
PAGE = 100


@pytest.fixture
def fleet(simulator: Simulator) -> Simulator:
    """The simulator with 450 devices tagged ``sweep`` (45 offline: 22 Inactive, 23 Active but offline)."""
    simulator.add_fleet(devices=FLEET, offline_fraction=0.1)
    assert simulator.state.limits.page_size == PAGE
    return simulator


def host(number: int) -> str:
    return f"fleet-{number:05d}.contoso.local"


def machine_calls(sim: Simulator) -> int:
    return int(sim.state.counters["calls:machines"])


def test_find_machines_follows_every_page_of_a_tag(fleet: Simulator, hook: LiveResponseHook) -> None:
    machines = hook.find_machines(machine_tag="sweep")

    assert len(machines) == FLEET
    assert len({m.id for m in machines}) == FLEET
    assert machine_calls(fleet) == 5  # ceil(450 / 100)


def test_find_machines_follows_every_page_with_several_filters(fleet: Simulator, hook: LiveResponseHook) -> None:
    active = hook.find_machines(machine_tag="sweep", health_status="Active")

    assert len(active) == FLEET - 22
    assert {m.health_status for m in active} == {"Active"}


def test_find_machines_errors_name_the_python_parameter(hook: LiveResponseHook) -> None:
    with pytest.raises(LiveResponseParameterTypeError, match="health_status") as caught:
        hook.find_machines(health_status=5)  # type: ignore[arg-type]
    assert "healthStatus" not in str(caught.value)
    with pytest.raises(LiveResponseParameterTypeError, match="onboarding_status"):
        hook.find_machines(machine_tag="sweep", onboarding_status=["Onboarded"])  # type: ignore[arg-type]
    with pytest.raises(LiveResponseParameterTypeError, match="os_platform"):
        hook.find_machines(os_platform=1)  # type: ignore[arg-type]


def test_machines_by_tag_lists_every_page(fleet: Simulator, hook: LiveResponseHook) -> None:
    assert len(hook.machines_by_tag("sweep")) == FLEET
    assert hook.machines_by_tag("no-such-tag") == []


def test_list_machines_takes_a_raw_filter_across_pages(fleet: Simulator, hook: LiveResponseHook) -> None:
    machines = hook.list_machines("osPlatform eq 'Windows11' and healthStatus eq 'Inactive'")

    assert len(machines) >= 22
    assert {m.health_status for m in machines} == {"Inactive"}


def test_list_machines_refuses_an_empty_filter_before_any_call(simulator: Simulator, hook: LiveResponseHook) -> None:
    with pytest.raises(LiveResponseConfigError, match="machine_filter"):
        hook.list_machines("  ")
    assert machine_calls(simulator) == 0


def test_host_names_resolve_in_batches_of_100(fleet: Simulator, hook: LiveResponseHook) -> None:
    names = [host(n) for n in range(1, FLEET + 1)]

    lookup = hook.lookup_host_names(names)

    assert [m.computer_dns_name for m in lookup.found] == names
    assert lookup.unresolved == []
    assert lookup.ambiguous == {}
    assert machine_calls(fleet) == 5  # 450 names / 100 per batch, one page each: not 450 calls


def test_host_names_match_case_insensitively_and_repeats_cost_nothing(fleet: Simulator, hook: LiveResponseHook) -> None:
    lookup = hook.lookup_host_names([host(1).upper(), host(1), host(2)])

    assert [m.id for m in lookup.found] == [device_id(host(1)), device_id(host(2))]
    assert machine_calls(fleet) == 1


def test_unresolved_host_names_are_reported_one_by_one(fleet: Simulator, hook: LiveResponseHook) -> None:
    lookup = hook.lookup_host_names([host(1), "gone-1.contoso.local", host(2), "gone-2.contoso.local"])

    assert len(lookup.found) == 2
    assert lookup.unresolved == ["gone-1.contoso.local", "gone-2.contoso.local"]


def test_a_host_name_two_devices_share_is_ambiguous_not_found(fleet: Simulator, hook: LiveResponseHook) -> None:
    original = fleet.state.devices[device_id(host(3))]
    twin = dataclasses.replace(original, id="f" * 40, machine_tags=list(original.machine_tags))
    with fleet.state.lock:
        fleet.state.devices[twin.id] = twin

    lookup = hook.lookup_host_names([host(3), host(4)])

    assert [m.computer_dns_name for m in lookup.found] == [host(4)]
    assert sorted(m.id for m in lookup.ambiguous[host(3)]) == sorted([original.id, twin.id])
    assert lookup.unresolved == []


def test_ids_resolve_in_batches_of_100_and_unknown_ids_are_unresolved(fleet: Simulator, hook: LiveResponseHook) -> None:
    ids = [device_id(host(n)) for n in range(1, 251)]
    unknown = "0" * 40

    lookup = hook.lookup_machine_ids([*ids, unknown])

    assert [m.id for m in lookup.found] == ids
    assert lookup.unresolved == [unknown]
    assert machine_calls(fleet) == 3  # 251 ids / 100 per batch


def test_bulk_lookups_check_their_lists_before_any_call(simulator: Simulator, hook: LiveResponseHook) -> None:
    with pytest.raises(LiveResponseParameterTypeError, match="computer_dns_names"):
        hook.lookup_host_names("one.contoso.local")  # type: ignore[arg-type]
    with pytest.raises(LiveResponseConfigError, match=r"machine_ids\[1\]"):
        hook.lookup_machine_ids([device_id(host(1)), "not-an-id"])
    assert machine_calls(simulator) == 0


def test_an_empty_lookup_result_is_empty_lists() -> None:
    assert MachineLookup() == MachineLookup(found=[], unresolved=[], ambiguous={})
