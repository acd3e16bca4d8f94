"""Keeps bearer credentials (secrets, tokens, certificate keys, result links) out of logs and messages.

Two mechanisms. Credentials of which a task holds a few (client secrets, tokens, signing keys) are registered with
Airflow's secrets masker (:func:`mask`). Result download links are bearer credentials a fleet sweep holds by the
thousand, and Airflow's masker recompiles one regular expression of every value it knows at each registration (in
the task process and again in its supervisor), so registering every link costs O(n^2). A link is therefore kept out
by its shape (:func:`scrub_links`: a signed query and any ``sig=`` value), in every log event of the process
(:func:`install_redaction`, called with each link), and registered with the masker only for the first
:data:`MASKED_LINKS_PER_PROCESS` links (belt and braces: the masker also catches a signature taken out of its URL).
The provider itself never logs, raises, returns or stores a link, only :func:`redact_url`.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

#: Query keys that carry a link's signature (Azure SAS: ``sig``).
_SIGNATURE_KEYS = frozenset({"sig", "signature"})
#: Result links registered with Airflow's masker per process; later links are kept out by their shape only.
MASKED_LINKS_PER_PROCESS = 100
#: What replaces a signed query or a signature value.
REPLACEMENT = "***"

# Cheap test first: most text has no signature key at all.
_HINT = re.compile(r"(?:sig|signature)(?:=|%3D)", re.IGNORECASE)
# A query string: from "?" to the end of the token (whitespace, quotes and brackets end it).
_QUERY = re.compile(r"\?[^\s\"'<>`]*")
# A signature key as a query parameter: at the start of the query or after a separator (plain or percent-encoded).
_SIGNED = re.compile(r"(?:^\?|[?&;]|%26|%3F)(?:signature|sig)(?:=|%3D)", re.IGNORECASE)
# Any signature value outside a query (a stray "sig=..."); its value is a base64 text, percent-encoded or not.
_SIGNATURE_VALUE = re.compile(r"((?:signature|sig)(?:=|%3D))[\w%+/=.~:\\-]+", re.IGNORECASE)
_PLAIN = (int, float, complex, bool, type(None), bytes, bytearray)

_lock = threading.RLock()
_masked_links = 0


def mask(value: str | None) -> None:
    """Register ``value`` with Airflow's secrets masker, in the task process and its supervisor.

    No name is passed on purpose: Airflow masks a named value only when the name looks sensitive (``token``,
    ``secret``...), and a result link or a certificate must be masked whatever it is called. Registrations are
    serialized: Airflow 3.1's channel to the supervisor has no lock, and evidence threads register links.
    """
    if not value:
        return
    from airflow.sdk.log import mask_secret

    with _lock:
        mask_secret(value)


def mask_link(url: str) -> None:
    """Keep a result download link out of every log event of this process: redaction by shape is installed (or
    checked), and the first :data:`MASKED_LINKS_PER_PROCESS` links are also registered with Airflow's masker (the
    whole URL and each signature-bearing query value, decoded and as the URL carries it). Constant cost per link
    once that many are registered."""
    global _masked_links
    install_redaction()
    with _lock:
        if _masked_links >= MASKED_LINKS_PER_PROCESS:
            return
        _masked_links += 1
    mask(url)
    query = urlsplit(url).query
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key.lower() in _SIGNATURE_KEYS:
            mask(value)
    for pair in query.split("&"):
        key, _, raw = pair.partition("=")
        if unquote_plus(key).lower() in _SIGNATURE_KEYS:
            mask(raw)


def masked_links() -> int:
    """How many result links this process registered with Airflow's masker (at most the budget)."""
    return _masked_links


def reset_masked_links() -> None:
    """Start the budget of masker registrations again (with a fresh masker, as a new task process does)."""
    global _masked_links
    with _lock:
        _masked_links = 0


def scrub_links(text: str) -> str:
    """``text`` with every signed query (one that carries a ``sig`` or ``signature`` parameter, as a whole URL or
    as an HTTP request line has it) replaced by ``?***``, and any other ``sig=`` value by ``***``."""
    if not _hinted(text):
        return text
    text = _QUERY.sub(_scrub_query, text)
    return _SIGNATURE_VALUE.sub(rf"\1{REPLACEMENT}", text)


def _hinted(text: str) -> bool:
    """Whether ``text`` may hold a signature key. Every match of ``_HINT`` holds "sig" once case-folded, and a
    substring test runs in C without trying the pattern at each character: about a third of the cost per log
    record (``bash scripts/bench.sh --only log-redaction``). Never narrower than the pattern, whose IGNORECASE
    also matches U+017F (long s: case folding gives "s") and the dotted and dotless I (which case folding does not
    make "i": looked for as such)."""
    if "sig" not in text.casefold() and "\u0130" not in text and "\u0131" not in text:
        return False
    return _HINT.search(text) is not None


def _scrub_query(match: re.Match[str]) -> str:
    query = match.group(0)
    return f"?{REPLACEMENT}" if _SIGNED.search(query) else query


def redact(text: str) -> str:
    """``text`` without signed links and with every value registered with Airflow's secrets masker replaced by
    ``***``."""
    text = scrub_links(text)
    try:
        from airflow.sdk._shared.secrets_masker import redact as airflow_redact
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return text
    return str(airflow_redact(text))


def redact_url(url: str) -> str:
    """The URL without its query and fragment (where a link's signature lives): safe to log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# -- redaction by shape in every log event of the process ------------------------------------------------------


def scrub_exception(exc: BaseException, depth: int = 0) -> None:
    """Scrub signed links out of ``exc``'s arguments in place, and out of its cause and context (5 deep)."""
    if depth > 5:
        return
    try:
        exc.args = tuple(_scrub_value(arg, depth) for arg in exc.args)
    except Exception:  # an exception type whose args cannot be set: leave it (the masker still sees it)
        return
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None and linked is not exc:
            scrub_exception(linked, depth + 1)


def _scrub_value(value: Any, depth: int = 0) -> Any:
    """``value`` without signed links: strings scrubbed, exceptions scrubbed in place, containers walked, and any
    other object whose text shows a signature replaced by that text scrubbed."""
    if isinstance(value, str):
        return scrub_links(value)
    if isinstance(value, _PLAIN) or depth > 5:
        return value
    if isinstance(value, BaseException):
        scrub_exception(value, depth)
        return value
    if isinstance(value, Mapping):
        return {key: _scrub_value(item, depth + 1) for key, item in value.items()}
    if type(value) is list:
        return [_scrub_value(item, depth + 1) for item in value]
    if type(value) is tuple:
        return tuple(_scrub_value(item, depth + 1) for item in value)
    try:
        text = str(value)
    except Exception:
        return value
    return scrub_links(text) if _hinted(text) else value


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Scrub a standard-library log record's message, arguments and exception in place (before any handler)."""
    record.msg = _scrub_value(record.msg)
    if isinstance(record.args, Mapping):
        record.args = {key: _scrub_value(value) for key, value in record.args.items()}
    elif record.args:
        record.args = tuple(_scrub_value(value) for value in record.args)
    if record.exc_info and record.exc_info[1] is not None:
        scrub_exception(record.exc_info[1])
    return record


class _RedactingRecordFactory:
    """The standard library's log record factory, wrapped: every record of the process is scrubbed as it is made
    (urllib3's and requests' debug lines included), whatever handler later writes it."""

    redacts_links = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(self.inner(*args, **kwargs))


class _RedactingRenderer:
    """structlog's last processor (the renderer), wrapped: every structlog event (Airflow's task logger, a failed
    task's exception) is scrubbed just before it is written. Replacing one element of structlog's live processor
    list is safe while other threads log, where inserting one would shift the others under them."""

    redacts_links = True

    def __init__(self, renderer: Any) -> None:
        self.renderer = renderer

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        if isinstance(event_dict, Mapping):
            event_dict = {key: _scrub_event(key, value) for key, value in event_dict.items()}
        return self.renderer(logger, method_name, event_dict)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.renderer, name)


def _scrub_event(key: str, value: Any) -> Any:
    if key == "exc_info":  # True (the exception being handled), an exception or a sys.exc_info() tuple
        exc = sys.exc_info()[1] if value is True else value
        if isinstance(exc, tuple) and len(exc) == 3:
            exc = exc[1]
        if isinstance(exc, BaseException):
            scrub_exception(exc)
        return value
    return _scrub_value(value)


def _installed(factory: Any) -> bool:
    for _ in range(8):
        if getattr(factory, "redacts_links", False):
            return True
        factory = getattr(factory, "inner", None)
        if factory is None:
            return False
    return False


def install_redaction() -> None:
    """Scrub signed links out of every log event of this process from now on: standard-library records as they are
    made, structlog events before they are rendered. Idempotent and cheap; called with every result link, so that
    logging configured after the first link (Airflow reconfigures it per task) is covered too.

    In an Airflow 3 task process both paths end in the JSON channel to the supervisor, which masks only registered
    values (``mask_secrets = not sending_to_supervisor`` in ``airflow.sdk.log``): this runs before that channel.
    """
    with _lock:
        current = logging.getLogRecordFactory()
        if not _installed(current):
            logging.setLogRecordFactory(_RedactingRecordFactory(current))
        structlog = sys.modules.get("structlog")
        if structlog is None:
            return
        processors = structlog.get_config()["processors"]
        if processors and not getattr(processors[-1], "redacts_links", False):
            processors[-1] = _RedactingRenderer(processors[-1])


__all__ = [
    "MASKED_LINKS_PER_PROCESS",
    "install_redaction",
    "mask",
    "mask_link",
    "masked_links",
    "redact",
    "redact_url",
    "reset_masked_links",
    "scrub_exception",
    "scrub_links",
    "scrub_record",
]
