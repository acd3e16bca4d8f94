"""Keeps bearer credentials (secrets, tokens, certificate keys, result links) out of logs and messages."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit


def mask(value: str | None, name: str | None = None) -> None:
    """Register ``value`` with Airflow's secrets masker, in the task process and its supervisor."""
    if not value:
        return
    from airflow.sdk.log import mask_secret

    mask_secret(value, name)


def mask_link(url: str) -> None:
    """Mask a result download link: the whole URL and each signature-bearing query value."""
    mask(url, "mde_result_link")
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=False):
        if key.lower() in {"sig", "signature"}:
            mask(value, "mde_result_link_signature")


def redact_url(url: str) -> str:
    """The URL without its query and fragment (where a link's signature lives): safe to log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
