"""Server-driven paging as MDE does it: every listing, every filter, ``@odata.nextLink`` until the end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_liveresponse.simulator.clock import format_datetime
from airflow_provider_liveresponse.simulator.library import seed_library
from tests.simulator.sim_helpers import SimClient, get_file

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator

EMPTY = "C:\\Windows\\Temp\\empty.txt"


def _pages(mde: SimClient, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every page of a listing, following nextLink."""
    response = mde.get(path, params=params)
    pages = []
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        link = pages[-1].get("@odata.nextLink")
        if not link:
            return pages
        response = mde.get(link)


def _values(pages: list[dict[str, Any]], key: str = "id") -> list[Any]:
    return [item[key] for page in pages for item in page["value"]]


@pytest.fixture
def sweep(still: Simulator) -> Simulator:
    """``still`` with 250 fleet devices tagged ``sweep`` (10% offline) and pages of 100."""
    still.add_fleet(devices=250, offline_fraction=0.1)
    still.state.set_limits(read_calls_per_minute=10_000, read_calls_per_hour=10_000)
    return still


def _fleet_ids(sim: Simulator) -> list[str]:
    return [device.id for device in sim.state.devices.values() if "sweep" in device.machine_tags]


def test_machines_by_tag_come_in_pages_of_the_page_size(sweep: Simulator, still_mde: SimClient) -> None:
    pages = _pages(still_mde, "/api/machines", {"$filter": "machineTags/any(tag: tag eq 'sweep')"})

    assert [len(page["value"]) for page in pages] == [100, 100, 50]
    assert _values(pages) == _fleet_ids(sweep)


def test_machines_by_id_in_a_list_across_pages(sweep: Simulator, still_mde: SimClient) -> None:
    sweep.state.set_limits(page_size=40)
    wanted = _fleet_ids(sweep)[10:110]
    ids = ",".join(f"'{machine_id}'" for machine_id in wanted)

    pages = _pages(still_mde, "/api/machines", {"$filter": f"id in ({ids})"})

    assert [len(page["value"]) for page in pages] == [40, 40, 20]
    assert _values(pages) == wanted


def test_machines_by_host_name_in_a_list_across_pages_ignore_case(sweep: Simulator, still_mde: SimClient) -> None:
    sweep.state.set_limits(page_size=30)
    hosts = [f"fleet-{n:05d}.contoso.local" for n in range(1, 251, 4)]
    names = ",".join(f"'{host.upper()}'" for host in hosts)

    pages = _pages(still_mde, "/api/machines", {"$filter": f"computerDnsName in ({names})"})

    assert len(pages) == 3
    assert _values(pages, "computerDnsName") == hosts


def test_or_and_combinations_page_with_their_filter(sweep: Simulator, still_mde: SimClient) -> None:
    sweep.state.set_limits(page_size=50)
    text = (
        "(machineTags/any(tag: tag eq 'sweep') and healthStatus eq 'Inactive') "
        "or computerDnsName eq 'ws-0001.contoso.local' or machineTags/any(t: t in ('server', 'kiosk'))"
    )
    machines = sweep.state.devices.values()
    now = sweep.clock.time()
    expected = [
        device.computer_dns_name
        for device in machines
        if ("sweep" in device.machine_tags and device.health_status(now, 7 * 86400) == "Inactive")
        or device.computer_dns_name == "ws-0001.contoso.local"
        or {"server", "kiosk"} & set(device.machine_tags)
    ]

    pages = _pages(still_mde, "/api/machines", {"$filter": text})

    assert len(expected) == 1 + 10 + 2 + 12
    assert _values(pages, "computerDnsName") == expected


def test_order_by_holds_across_pages(sweep: Simulator, still_mde: SimClient) -> None:
    params = {"$filter": "machineTags/any(tag: tag eq 'sweep')", "$orderby": "computerDnsName desc"}

    pages = _pages(still_mde, "/api/machines", params)

    hosts = _values(pages, "computerDnsName")
    assert hosts == sorted(hosts, reverse=True)
    assert hosts[0] == "fleet-00250.contoso.local"
    assert len(hosts) == 250


def test_a_top_larger_than_the_page_is_served_in_pages(sweep: Simulator, still_mde: SimClient) -> None:
    pages = _pages(still_mde, "/api/machines", {"$filter": "machineTags/any(tag: tag eq 'sweep')", "$top": "230"})

    assert [len(page["value"]) for page in pages] == [100, 100, 30]
    links = [parse_qs(urlsplit(page["@odata.nextLink"]).query) for page in pages[:-1]]
    assert [(link["$top"], link["$skip"]) for link in links] == [(["130"], ["100"]), (["30"], ["200"])]
    assert links[0]["$filter"] == ["machineTags/any(tag: tag eq 'sweep')"]
    assert _values(pages) == _fleet_ids(sweep)[:230]


def test_a_top_larger_than_the_result_answers_the_result_without_a_next_link(
    sweep: Simulator, still_mde: SimClient
) -> None:
    pages = _pages(still_mde, "/api/machines", {"$filter": "machineTags/any(tag: tag eq 'server')", "$top": "10000"})

    assert len(pages) == 1
    assert len(pages[0]["value"]) == 10
    assert "@odata.nextLink" not in pages[0]


def test_a_top_that_is_exactly_one_page_has_no_next_link(sweep: Simulator, still_mde: SimClient) -> None:
    pages = _pages(still_mde, "/api/machines", {"$filter": "machineTags/any(tag: tag eq 'sweep')", "$top": "100"})

    assert len(pages) == 1
    assert len(pages[0]["value"]) == 100


def _start_actions(sim: Simulator, mde: SimClient, count: int) -> list[str]:
    sim.state.set_limits(run_calls_per_minute=10_000, concurrent_sessions=10_000)
    return [mde.start(machine_id, get_file(EMPTY)) for machine_id in _fleet_ids(sim)[:count]]


def test_machine_actions_by_id_in_a_list_across_pages(sweep: Simulator, still_mde: SimClient) -> None:
    action_ids = _start_actions(sweep, still_mde, 60)
    sweep.state.set_limits(page_size=10)
    wanted = action_ids[5:40]
    ids = ",".join(f"'{action_id}'" for action_id in wanted)

    pages = _pages(still_mde, "/api/machineactions", {"$filter": f"id in ({ids})"})

    assert [len(page["value"]) for page in pages] == [10, 10, 10, 5]
    assert _values(pages) == wanted


def test_machine_actions_by_type_and_creation_time_across_pages(sweep: Simulator, still_mde: SimClient) -> None:
    earlier = _start_actions(sweep, still_mde, 20)
    sweep.state.advance_clock(3600)
    since = format_datetime(sweep.clock.time())
    later = [still_mde.start(machine_id, get_file(EMPTY)) for machine_id in _fleet_ids(sweep)[100:125]]
    sweep.state.set_limits(page_size=10)
    params = {
        "$filter": f"type eq 'LiveResponse' and creationDateTimeUtc ge {since}",
        "$orderby": "creationDateTimeUtc desc",
    }

    pages = _pages(still_mde, "/api/machineactions", params)

    found = _values(pages)
    assert [len(page["value"]) for page in pages] == [10, 10, 5]
    assert set(found) == set(later)
    assert not set(found) & set(earlier)
    created = _values(pages, "creationDateTimeUtc")
    assert created == sorted(created, reverse=True)


def test_library_files_page_too(still: Simulator, still_mde: SimClient) -> None:
    template = next(iter(seed_library(still.clock.time()).values()))
    for n in range(8):
        name = f"extra-{n}.ps1"
        still.state.library[name] = type(template)(**{**vars(template), "file_name": name})
    still.state.set_limits(page_size=5)

    pages = _pages(still_mde, "/api/libraryfiles")

    assert [len(page["value"]) for page in pages] == [5, 5, 5]
    assert len(set(_values(pages, "fileName"))) == 15
