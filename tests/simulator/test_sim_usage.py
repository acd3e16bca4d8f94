"""What a benchmark reads back: calls and 429s per API per hour, 429s per submission, and each session's times."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.simulator.fleet import device_id
from airflow_provider_liveresponse.simulator.usage import peak_in_window
from tests.simulator.sim_helpers import SimClient, get_file

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator

EMPTY = "C:\\Windows\\Temp\\empty.txt"
WS = [device_id(f"ws-{n:04d}.contoso.local") for n in range(1, 31)]
LAPTOP = device_id("laptop-0001.contoso.local")

#: One call of each read API, and the budget it draws on.
READ_CALLS = {
    "machines": ("GET", f"/api/machines/{WS[0]}"),
    "machineactions": ("GET", "/api/machineactions"),
    "link": (
        "GET",
        "/api/machineactions/00000000-0000-4000-8000-000000000000/GetLiveResponseResultDownloadLink(index=0)",
    ),
    "library": ("GET", "/api/libraryfiles"),
}


def _usage(mde: SimClient, **params: str) -> dict[str, object]:
    response = mde.control("GET", "/usage", params=params)
    assert response.status_code == 200
    return dict(response.json())


@pytest.mark.parametrize("spent", sorted(READ_CALLS))
def test_each_read_api_has_its_own_budget(still: Simulator, still_mde: SimClient, spent: str) -> None:
    still.state.set_limits(read_calls_per_minute=2)
    method, path = READ_CALLS[spent]
    statuses = [still_mde.request(method, path).status_code for _ in range(3)]

    assert statuses[2] == 429
    for other, (other_method, other_path) in READ_CALLS.items():
        if other != spent:
            assert still_mde.request(other_method, other_path).status_code != 429, other


def test_listing_and_reading_machines_share_the_machines_budget(still: Simulator, still_mde: SimClient) -> None:
    still.state.set_limits(read_calls_per_minute=2)
    still_mde.get("/api/machines")
    still_mde.get(f"/api/machines/{WS[0]}")

    assert still_mde.get("/api/machines").status_code == 429


def test_calls_are_counted_per_api(still: Simulator, still_mde: SimClient) -> None:
    for _ in range(3):
        still_mde.get("/api/machines", params={"$filter": "machineTags/any(t: t eq 'server')"})
    still_mde.get("/api/machineactions")
    still_mde.start(WS[0], get_file(EMPTY))

    apis = _usage(still_mde)["apis"]

    assert {name: api["calls"] for name, api in apis.items()} == {  # type: ignore[attr-defined]
        "runliveresponse": 1,
        "machineactions": 1,
        "link": 0,
        "library": 0,
        "machines": 3,
    }


def test_calls_per_simulated_hour_and_peaks(still: Simulator, still_mde: SimClient) -> None:
    for _ in range(4):
        still_mde.get("/api/libraryfiles")
    still.state.advance_clock(2 * 3600)
    for _ in range(2):
        still_mde.get("/api/libraryfiles")

    library = _usage(still_mde)["apis"]["library"]  # type: ignore[index]

    assert library["per_hour"] == [4, 0, 2]
    assert library["peak_per_hour"] == 4
    assert library["peak_per_minute"] == 4


def test_usage_since_a_moment_leaves_out_what_came_before(still: Simulator, still_mde: SimClient) -> None:
    still_mde.get("/api/libraryfiles")
    still.state.advance_clock(60)
    since = still.clock.time()
    still_mde.get("/api/libraryfiles")

    usage = _usage(still_mde, since=str(since))

    assert usage["apis"]["library"]["calls"] == 1  # type: ignore[index]
    assert still_mde.control("GET", "/usage", params={"since": "soon"}).status_code == 400


def test_429s_per_submission(still: Simulator, still_mde: SimClient) -> None:
    statuses = [still_mde.run(machine_id, get_file(EMPTY)).status_code for machine_id in WS[:12]]

    usage = _usage(still_mde)

    assert statuses == [201] * 10 + [429] * 2
    assert usage["submissions"] == 10
    assert usage["submission_429s"] == 2
    assert usage["throttled_per_submission"] == pytest.approx(0.2)
    assert usage["apis"]["runliveresponse"]["calls"] == 12  # type: ignore[index]


def test_a_session_limit_429_counts_against_submissions(still: Simulator, still_mde: SimClient) -> None:
    still.state.set_limits(concurrent_sessions=1)
    still_mde.run(LAPTOP, get_file(EMPTY))
    still_mde.run(WS[0], get_file(EMPTY))

    assert _usage(still_mde)["submission_429s"] == 1


def test_a_read_over_its_limit_is_counted_throttled(still: Simulator, still_mde: SimClient) -> None:
    still.state.set_limits(read_calls_per_minute=1)
    still_mde.get("/api/machineactions")
    still_mde.get("/api/machineactions")

    api = _usage(still_mde)["apis"]["machineactions"]  # type: ignore[index]

    assert (api["calls"], api["throttled"]) == (2, 1)


def test_each_session_shows_when_it_was_created_picked_up_and_ended(still: Simulator, still_mde: SimClient) -> None:
    created = still.clock.time()
    action_id = still_mde.start(WS[0], get_file(EMPTY))
    still.state.advance_clock(600)

    report = still_mde.control("GET", "/sessions").json()

    (session,) = report["value"]
    assert session["id"] == action_id
    assert session["status"] == "Succeeded"
    assert session["created"] == pytest.approx(created, abs=0.01)
    assert session["pickedUp"] == pytest.approx(session["created"] + 5)
    assert session["ended"] == pytest.approx(session["pickedUp"] + 3)
    assert session["pendingSeconds"] == pytest.approx(5)
    assert session["heldSeconds"] == pytest.approx(8)
    assert report["max_concurrent_sessions"] == 1


def test_a_session_never_picked_up_is_held_until_the_queue_expires(still: Simulator, still_mde: SimClient) -> None:
    still_mde.start(LAPTOP, get_file(EMPTY))
    still.state.advance_clock(3600)
    waiting = still_mde.control("GET", "/sessions").json()
    still.state.advance_clock(still.state.limits.queue_seconds)
    ended = still_mde.control("GET", "/sessions").json()

    assert waiting["value"][0]["pickedUp"] is None
    assert waiting["max_pending_seconds"] == pytest.approx(3600, abs=0.01)
    assert waiting["never_picked_up"] == 1
    assert ended["value"][0]["status"] == "TimeOut"
    assert ended["value"][0]["pendingSeconds"] == pytest.approx(still.state.limits.queue_seconds)


def test_a_cancelled_session_ends_when_it_is_cancelled(still: Simulator, still_mde: SimClient) -> None:
    action_id = still_mde.start(LAPTOP, get_file(EMPTY))
    still.state.advance_clock(120)
    still_mde.post(f"/api/machineactions/{action_id}/cancel", json={"Comment": "offline: not collected"})
    still.state.advance_clock(3600)

    (session,) = still_mde.control("GET", "/sessions").json()["value"]

    assert session["status"] == "Cancelled"
    assert session["pendingSeconds"] == pytest.approx(120, abs=0.01)


def test_a_cancelled_session_frees_its_slot(still: Simulator, still_mde: SimClient) -> None:
    still.state.set_limits(concurrent_sessions=1)
    action_id = still_mde.start(LAPTOP, get_file(EMPTY))
    still_mde.post(f"/api/machineactions/{action_id}/cancel", json={"Comment": "offline: not collected"})

    assert still_mde.run(WS[0], get_file(EMPTY)).status_code == 201


@pytest.mark.parametrize(
    ("times", "window", "peak"),
    [([], 60, 0), ([0, 10, 59.9, 60, 61], 60, 4), ([0, 3599, 3600, 7199], 3600, 2), ([5, 5, 5], 1, 3)],
)
def test_the_peak_in_a_sliding_window(times: list[float], window: float, peak: int) -> None:
    assert peak_in_window(times, window) == peak
