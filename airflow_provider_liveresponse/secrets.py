"""Keeps bearer credentials (secrets, tokens, certificate keys, result links) out of logs and messages."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote_plus, urlsplit

#: Query keys that carry a link's signature (Azure SAS: ``sig``).
_SIGNATURE_KEYS = frozenset({"sig", "signature"})


def mask(value: str | None) -> None:
    """Register ``value`` with Airflow's secrets masker, in the task process and its supervisor.

    No name is passed on purpose: Airflow masks a named value only when the name looks sensitive (``token``,
    ``secret``...), and a result link or a certificate must be masked whatever it is called.
    """
    if not value:
        return
    from airflow.sdk.log import mask_secret

    mask_secret(value)


def mask_link(url: str) -> None:
    """Mask a result download link: the whole URL and each signature-bearing query value, both decoded and as
    the URL carries it (percent-encoded, as an HTTP client's debug line shows it)."""
    mask(url)
    query = urlsplit(url).query
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key.lower() in _SIGNATURE_KEYS:
            mask(value)
    for pair in query.split("&"):
        key, _, raw = pair.partition("=")
        if unquote_plus(key).lower() in _SIGNATURE_KEYS:
            mask(raw)


def redact(text: str) -> str:
    """``text`` with every value registered with Airflow's secrets masker replaced by ``***``."""
    try:
        from airflow.sdk._shared.secrets_masker import redact as airflow_redact
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return text
    return str(airflow_redact(text))


def redact_url(url: str) -> str:
    """The URL without its query and fragment (where a link's signature lives): safe to log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
