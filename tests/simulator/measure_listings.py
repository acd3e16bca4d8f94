"""Measure the simulator's listings at sweep scale (a script, not a test: its figures depend on the machine).

    .venv/airflow-3.3/bin/python tests/simulator/measure_listings.py [--devices 5000] [--actions 5000] [--rounds 3]

Seeds a fleet of N devices (tag ``sweep``) on top of the seeded one and one action on each of the first M of
them (read and session limits lifted), then times over real HTTPS: the full paged listing of
``machines?$filter=machineTags/any(tag: tag eq 'sweep')``, one ``machineactions?$filter=id in (100 ids)``, one
``machines?$filter=computerDnsName in (100 names)`` and the full paged listing of the sweep's actions by type and
creation time. Prints per request the median and slowest milliseconds (and the median until the response headers
arrived: the server's share), and each full listing's seconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from airflow_provider_liveresponse.simulator.clock import format_datetime
from airflow_provider_liveresponse.simulator.lifecycle import Command
from airflow_provider_liveresponse.simulator.server import Simulator
from tests.simulator.sim_helpers import SimClient


def _listing(mde: SimClient, url: str) -> tuple[int, int, float, list[float], list[float]]:
    """Follow every page of ``url``: (pages, entities, seconds, per-request seconds, seconds to the headers)."""
    pages = items = 0
    times: list[float] = []
    headers: list[float] = []
    started = time.perf_counter()
    while url:
        before = time.perf_counter()
        response = mde.get(url)
        times.append(time.perf_counter() - before)
        headers.append(response.elapsed.total_seconds())
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        items += len(body["value"])
        url = body.get("@odata.nextLink", "")
    return pages, items, time.perf_counter() - started, times, headers


def main() -> None:
    """Seed, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--actions", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with Simulator(speed=1) as sim:
        state = sim.state
        state.set_limits(concurrent_sessions=10**9, read_calls_per_minute=10**9, read_calls_per_hour=10**9)
        started = time.perf_counter()
        sim.add_fleet(devices=args.devices, offline_fraction=0.1)
        print(f"seed {args.devices} devices: {time.perf_counter() - started:.3f} s")
        sweep_start = format_datetime(state.clock.time() - 1)
        fleet = [device for device in state.devices.values() if "sweep" in device.machine_tags]
        command = Command(index=0, type="GetFile", params=[{"key": "Path", "value": "C:\\Windows\\Temp\\empty.txt"}])
        started = time.perf_counter()
        action_ids = [
            state.create_action(device.id, [command], "sweep", "measure").id for device in fleet[: args.actions]
        ]
        print(f"create {len(action_ids)} actions: {time.perf_counter() - started:.3f} s")
        state.advance_clock(600)
        mde = SimClient(sim)
        hosts = ",".join(f"'{device.computer_dns_name}'" for device in fleet[2000:2100])
        ids = ",".join(f"'{action_id}'" for action_id in action_ids[2000:2100])
        cases = {
            "machines by tag (all pages)": "/api/machines?$filter=machineTags/any(tag: tag eq 'sweep')",
            "machines by computerDnsName in (100)": f"/api/machines?$filter=computerDnsName in ({hosts})",
            "machineactions by id in (100)": f"/api/machineactions?$filter=id in ({ids})",
            "machineactions by type + creation (all pages)": (
                "/api/machineactions?$filter=type eq 'LiveResponse' and creationDateTimeUtc ge "
                f"{sweep_start}&$orderby=creationDateTimeUtc"
            ),
        }
        mde.get("/api/machines?$top=1")
        for label, url in cases.items():
            requests_seconds: list[float] = []
            header_seconds: list[float] = []
            listings: list[float] = []
            for _ in range(args.rounds):
                pages, items, seconds, times, headers = _listing(mde, url)
                requests_seconds.extend(times)
                header_seconds.extend(headers)
                listings.append(seconds)
            print(
                f"{label}: {pages} page(s), {items} entities; per request median "
                f"{statistics.median(requests_seconds) * 1000:.1f} ms (to the headers "
                f"{statistics.median(header_seconds) * 1000:.1f} ms), max {max(requests_seconds) * 1000:.1f} ms; "
                f"full listing median {statistics.median(listings):.3f} s"
            )


if __name__ == "__main__":
    main()
