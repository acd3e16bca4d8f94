"""What the campaigns leave behind, for campaign 5 (secrets): every text they collected (logs, XComs, rendered
fields, trigger rows, exception texts, metadata databases) and every secret their simulators handed out.

The campaigns call :func:`add_place` and :func:`add_simulator` (before their simulator stops); the ``secrets``
campaign, which runs last, looks for each secret in each place, in every form it could be written in (as the
system test does: the client secret; each access token and its signature; each link's query, signature and
URL-encoded signature).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterator, MutableMapping

    from airflow_provider_liveresponse.simulator.server import Simulator


@dataclass
class Collected:
    """Places (where, bytes) and secrets (name, value) gathered so far in this run."""

    places: list[tuple[str, bytes]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)


COLLECTED = Collected()


def add_place(kind: str, where: str, text: str | bytes) -> None:
    """Keep ``text`` (a log, an XCom, an exception message, ...) of kind ``kind`` to search for secrets."""
    data = text.encode(errors="replace") if isinstance(text, str) else text
    COLLECTED.places.append((f"{kind}: {where}", data))
    COLLECTED.sources[kind] = COLLECTED.sources.get(kind, 0) + 1


def add_simulator(sim: Simulator, label: str) -> None:
    """Keep every secret ``sim`` handed out (call before it stops)."""
    state = sim.state
    found = COLLECTED.secrets
    found[f"{label} client secret"] = sim.client_secret
    with state.lock:
        tokens, links = list(state.issued_tokens), list(state.issued_links)
    for n, token in enumerate(tokens):
        found[f"{label} access token #{n}"] = token
        found[f"{label} access token #{n} signature"] = token.rsplit(".", 1)[-1]
    for n, link in enumerate(links):
        query = urlsplit(link).query
        signature = parse_qs(query)["sig"][0]
        found[f"{label} link #{n} query"] = query
        found[f"{label} link #{n} signature"] = signature
        found[f"{label} link #{n} signature, URL-encoded"] = quote(signature, safe="")


def leaks() -> list[str]:
    """Every (secret, place) pair where the secret occurs."""
    found: list[str] = []
    for where, data in COLLECTED.places:
        found.extend(f"{name} in {where}" for name, secret in COLLECTED.secrets.items() if secret.encode() in data)
    return found


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a record that cannot be formatted is not a leak
            self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


@contextlib.contextmanager
def captured_logs(where: str) -> Iterator[None]:
    """Record every log line (stdlib logging and structlog) while the block runs, as a place; the lines are
    kept out of the benchmark's output."""
    import structlog

    keep = _Keep()
    root = logging.getLogger()
    # Every logger at DEBUG, the HTTP and identity libraries too: urllib3 logs each URL it opens (a result link's
    # path and query, its signature included), and this capture does not apply Airflow's secrets masker, so a
    # link in these lines is only kept out by the package's own redaction of links by their shape
    # (airflow_provider_liveresponse.secrets), which applies to every log record whoever logs it.
    names = ("airflow_provider_liveresponse", "airflow.task", "airflow.triggers", "msal", "urllib3")
    debug = names
    levels = {name: logging.getLogger(name).level for name in names}
    handlers = {name: list(logging.getLogger(name).handlers) for name in names}
    previous = structlog.get_config()
    events: list[str] = []

    def capture(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        events.append(repr(event))
        raise structlog.DropEvent

    for name in names:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG if name in debug else logging.INFO)
        logger.handlers = [keep]
    root.addHandler(keep)
    structlog.configure(
        processors=[structlog.stdlib.add_log_level, capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**previous)
        root.removeHandler(keep)
        for name in names:
            logger = logging.getLogger(name)
            logger.setLevel(levels[name])
            logger.handlers = handlers[name]
        add_place("log", where, "\n".join(keep.lines + events))
