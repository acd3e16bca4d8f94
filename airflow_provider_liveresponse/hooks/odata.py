"""OData for the MDE API, shared by both hooks: ``$filter`` clauses, paging, and the same-host check.

Strings are quoted the OData way (``'`` doubled), datetimes are written in UTC, ``id in (...)`` filters hold at
most :data:`MAX_IDS_PER_FILTER` ids, and :class:`Pages` follows ``@odata.nextLink`` (absolute, or relative to the
API) only on the API's own host: the access token goes with every page request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_liveresponse.exceptions import LiveResponseApiError
from airflow_provider_liveresponse.hooks.responses import items, next_link

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

#: Ids per ``id in (...)`` filter: one listing call answers up to this many actions.
MAX_IDS_PER_FILTER = 100


def string(value: str) -> str:
    """An OData string literal: ``'it''s'``."""
    return "'" + value.replace("'", "''") + "'"


def timestamp(value: datetime) -> str:
    """An OData datetime literal in UTC (a naive datetime is taken to be UTC already)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def eq(field: str, value: str) -> str:
    """``field eq 'value'``."""
    return f"{field} eq {string(value)}"


def any_of(field: str, values: Sequence[str]) -> str:
    """``field eq 'a'``, or ``(field eq 'a' or field eq 'b')`` for several values."""
    either = " or ".join(eq(field, value) for value in values)
    return f"({either})" if len(values) > 1 else either


def ids_in(ids: Iterable[str]) -> str:
    """``id in ('a', 'b')``."""
    return f"id in ({', '.join(string(i) for i in ids)})"


def batches(values: Sequence[str], size: int = MAX_IDS_PER_FILTER) -> list[Sequence[str]]:
    """``values`` in slices of at most ``size``, in order."""
    return [values[start : start + size] for start in range(0, len(values), size)]


def query(clauses: Sequence[str], top: int) -> dict[str, Any]:
    """The query string of a listing: ``$top`` and, with any clauses, ``$filter`` joining them with ``and``."""
    params: dict[str, Any] = {"$top": top}
    if clauses:
        params["$filter"] = " and ".join(clauses)
    return params


def api_url(base: str, path: str) -> str:
    """The absolute URL of an API path such as ``api/machineactions`` (an https URL is kept as it is)."""
    return path if path.startswith("https://") else f"{base.rstrip('/')}/{path.lstrip('/')}"


def same_host(link: str, base: str) -> str:
    """The absolute URL of a paging link: relative to the API, or absolute on the API's own scheme and host.

    Any other link is refused: the access token must go nowhere else.
    """
    api = urlsplit(base)
    try:
        target = urlsplit(link)
    except ValueError:
        target = None
    if target is not None and not target.scheme and not target.netloc:
        return api_url(base, link)
    if target is None or (target.scheme, target.netloc) != (api.scheme, api.netloc):
        where = (target.netloc or f"{target.scheme}:") if target is not None else repr(link[:80])
        raise LiveResponseApiError(
            f"MDE's paging link points at another host ({where}, not {api.netloc}); refusing to send the access "
            "token there. Check the connection's api_url"
        )
    return link


class Pages:
    """The pages of one listing: request :attr:`url` (an API path, then an absolute URL) with :attr:`params`
    while :attr:`url` is set, and hand each answer to :meth:`read`, which returns its entities and moves on."""

    def __init__(self, path: str, params: dict[str, Any] | None, what: str) -> None:
        self.url: str | None = path
        self.params = params
        self.what = what

    def read(self, payload: dict[str, Any], base: str) -> list[Any]:
        """The entities of one page's answer; :attr:`url` becomes the next page's (None after the last), checked
        to be on the host of the API at ``base``."""
        entities = items(payload, self.what)
        link = next_link(payload, self.what)
        self.url = same_host(link, base) if link else None
        self.params = None  # a next link carries the whole query
        return entities


__all__ = [
    "MAX_IDS_PER_FILTER",
    "Pages",
    "any_of",
    "api_url",
    "batches",
    "eq",
    "ids_in",
    "query",
    "same_host",
    "string",
    "timestamp",
]
