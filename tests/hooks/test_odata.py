"""OData building, paging and the same-host check shared by both hooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseApiError
from airflow_provider_liveresponse.hooks import odata

API = "https://api.security.microsoft.com"


def test_strings_are_quoted_with_doubled_quotes() -> None:
    assert odata.string("it's") == "'it''s'"
    assert odata.eq("requestor", "o'brien") == "requestor eq 'o''brien'"


def test_datetimes_are_written_in_utc() -> None:
    plus_two = datetime(2026, 1, 2, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert odata.timestamp(plus_two) == "2026-01-02T10:00:00Z"
    assert odata.timestamp(datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)) == "2026-01-02T12:00:00Z"
    assert odata.timestamp(datetime(2026, 1, 2, 12, 0, 0)) == "2026-01-02T12:00:00Z"


def test_one_value_or_several_in_parentheses() -> None:
    assert odata.any_of("status", ["Pending"]) == "status eq 'Pending'"
    assert odata.any_of("status", ["Pending", "InProgress"]) == "(status eq 'Pending' or status eq 'InProgress')"


def test_ids_go_in_batches_of_at_most_a_hundred() -> None:
    ids = [f"id-{n:03d}" for n in range(250)]
    batches = odata.batches(ids)
    assert [len(b) for b in batches] == [100, 100, 50]
    assert odata.ids_in(["a", "b"]) == "id in ('a', 'b')"


def test_a_query_joins_its_clauses_with_and() -> None:
    assert odata.query([], 5) == {"$top": 5}
    assert odata.query(["a eq 'x'", "b eq 'y'"], 5) == {"$top": 5, "$filter": "a eq 'x' and b eq 'y'"}


def test_api_paths_and_api_urls() -> None:
    assert odata.api_url(API, "api/machines") == f"{API}/api/machines"
    assert odata.api_url(API + "/", "/api/machines") == f"{API}/api/machines"
    assert odata.api_url(API, f"{API}/api/machines?$skip=2") == f"{API}/api/machines?$skip=2"


@pytest.mark.parametrize(
    ("link", "url"),
    [
        (f"{API}/api/machineactions?$skip=2", f"{API}/api/machineactions?$skip=2"),
        ("/api/machineactions?$skip=2", f"{API}/api/machineactions?$skip=2"),
        ("api/machineactions?$skip=2", f"{API}/api/machineactions?$skip=2"),
    ],
)
def test_paging_links_on_the_api_host_are_followed(link: str, url: str) -> None:
    assert odata.same_host(link, API) == url


@pytest.mark.parametrize(
    "link",
    [
        "https://attacker.invalid/api/machineactions",
        "http://api.security.microsoft.com/api/machineactions",  # the token must not travel in clear
        "https://api.security.microsoft.com:8443/api/machineactions",
        "//attacker.invalid/api",
        "javascript:alert(1)",
        "http://[broken",
    ],
)
def test_paging_links_anywhere_else_are_refused(link: str) -> None:
    with pytest.raises(LiveResponseApiError, match="refusing to send the access token there"):
        odata.same_host(link, API)


def test_pages_follow_next_links_until_the_last() -> None:
    pages = odata.Pages("api/machineactions", {"$top": 2}, "Listing machine actions")
    assert (pages.url, pages.params) == ("api/machineactions", {"$top": 2})
    assert pages.read({"value": [1, 2], "@odata.nextLink": "/api/machineactions?$skip=2"}, API) == [1, 2]
    assert (pages.url, pages.params) == (f"{API}/api/machineactions?$skip=2", None)
    assert pages.read({"value": [3]}, API) == [3]
    assert pages.url is None
