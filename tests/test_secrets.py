"""Bearer credentials stay out of logs: values registered with Airflow's secrets masker, links without their
signature."""

from __future__ import annotations

import logging
import uuid

import pytest

from airflow_provider_liveresponse.secrets import mask, mask_link, redact, redact_url

LINK = (
    "https://automatedirstrprdweu.blob.core.windows.net/resultfiles/{name}.zip"
    "?sv=2024-05-04&se=2026-12-01T22%3A30%3A00Z&sr=b&sp=r&sig={sig}#frag"
)


def _link() -> tuple[str, str]:
    sig = f"S1gn{uuid.uuid4().hex}%3D"
    return LINK.format(name=uuid.uuid4().hex, sig=sig), sig


def test_redact_url_keeps_the_scheme_host_and_path_only() -> None:
    link, _ = _link()
    assert redact_url(link) == link.split("?")[0]


@pytest.mark.parametrize(
    "link",
    [
        "https://blob.example/r.zip?sig=SECRET",
        "https://blob.example/r.zip?SIG=SECRET&sv=1",
        "https://blob.example/r.zip?a=1&signature=SECRET",
        "https://blob.example/r.zip#sig=SECRET",
        "https://blob.example/r.zip?x=1;sig=SECRET#SECRET",
    ],
)
def test_no_query_or_fragment_survives_redact_url(link: str) -> None:
    safe = redact_url(link)
    assert "SECRET" not in safe
    assert "?" not in safe
    assert "#" not in safe
    assert safe == "https://blob.example/r.zip"


def test_a_masked_value_is_redacted() -> None:
    secret = f"client-secret-{uuid.uuid4().hex}"
    mask(secret)
    assert secret not in redact(f"before {secret} after")
    assert redact(f"before {secret} after").startswith("before ")


@pytest.mark.parametrize("empty", [None, ""])
def test_masking_nothing_is_a_no_op(empty: str | None) -> None:
    mask(empty)
    assert redact("nothing to hide") == "nothing to hide"


def test_a_masked_link_and_its_signature_are_redacted_wherever_they_appear() -> None:
    link, sig = _link()
    mask_link(link)
    assert link not in redact(f"downloading {link}")
    decoded = sig.replace("%3D", "=")
    assert decoded not in redact(f"the signature alone: {decoded}")


def test_a_link_signature_is_redacted_as_the_url_carries_it() -> None:
    link, sig = _link()
    mask_link(link)
    request_line = "GET " + link.split(".net", 1)[1].split("#")[0] + " HTTP/1.1"
    assert sig not in redact(request_line)


def test_a_link_without_a_signature_is_still_masked_whole() -> None:
    link = f"https://blob.example/{uuid.uuid4().hex}.zip?sv=1"
    mask_link(link)
    assert link not in redact(link)


def test_airflows_masker_redacts_a_masked_value_in_a_log_record(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk._shared.secrets_masker import SecretsMasker, _secrets_masker

    monkeypatch.setattr(SecretsMasker, "mask_secrets_in_logs", True)  # as the task runner enables it
    secret = f"token-{uuid.uuid4().hex}"
    mask(secret)
    record = logging.LogRecord("airflow.task", logging.INFO, __file__, 1, "using %s now", (secret,), None)
    assert _secrets_masker().filter(record)
    assert secret not in record.getMessage()
    assert "***" in record.getMessage()
