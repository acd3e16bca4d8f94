"""Bearer credentials stay out of logs: values registered with Airflow's secrets masker, links without their
signature."""

from __future__ import annotations

import logging
import uuid

import pytest

from airflow_provider_liveresponse.secrets import (
    MASKED_LINKS_PER_PROCESS,
    install_redaction,
    mask,
    mask_link,
    masked_links,
    redact,
    redact_url,
    reset_masked_links,
    scrub_links,
)

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


# -- redaction by shape: every log event, constant cost per link ------------------------------------------------

SIG = "S1gnAture%2BxY%3D"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"https://b.blob.core.windows.net/r/a.zip?sv=2024-05-04&se=2026&sr=b&sp=r&sig={SIG}", "windows.net/r/a.zip?"),
        (f'https://127.0.0.1:9 "GET /r/a.zip?sv=1&sig={SIG} HTTP/1.1" 200 12', " HTTP/1.1"),
        (f"link=https://b.example/a?SIG={SIG}#frag then", "link=https://b.example/a?*** then"),
        (f"https://b.example/a?x=1;signature={SIG}", "https://b.example/a?"),
        (f"next=https%3A%2F%2Fb.example%2Fa%3Fsv%3D1%26sig%3D{SIG} done", " done"),
        (f"the signature alone: sig={SIG}", "the signature alone: sig="),
        (f'{{"url": "https://b.example/a?sig={SIG}", "n": 1}}', '", "n": 1}'),
    ],
)
def test_a_signed_query_or_signature_never_survives_scrubbing(text: str, kept: str) -> None:
    scrubbed = scrub_links(text)
    assert "S1gnAture" not in scrubbed
    assert kept in scrubbed
    assert "***" in scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "https://api.security.microsoft.com/api/machines?$filter=machineTags/any(t: t eq 'sweep')&$top=100",
        "\"GET /api/machineactions?$filter=id in ('a','b') HTTP/1.1\" 200 3051",
        "a design=ok and no signature here",
    ],
)
def test_text_without_a_signature_is_left_alone(text: str) -> None:
    assert scrub_links(text) == text


def test_the_cheap_first_test_is_never_narrower_than_the_pattern() -> None:
    """``scrub_links`` first looks for "sig" in the case-folded text; the pattern it guards matches case-insensitively
    in Unicode's sense. Every character of the Basic Multilingual Plane in each place of "sig" (and of "signature"):
    wherever the pattern sees a signature key, the first test lets it through."""
    from airflow_provider_liveresponse import secrets

    missed = []
    for word in ("sig", "signature"):
        for place in range(len(word)):
            for code in range(0x10000):
                text = f"{word[:place]}{chr(code)}{word[place + 1 :]}=x"
                if secrets._HINT.search(text) and not secrets._hinted(text):
                    missed.append(text)
    assert missed == []
    assert scrub_links("\u017fig=abc") == "\u017fig=***"
    assert scrub_links("s\u0131g%3Dabc") == "s\u0131g%3D***"


def test_only_the_first_links_are_registered_with_airflows_masker() -> None:
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    reset_masked_links()
    patterns: list[int] = []
    for _ in range(MASKED_LINKS_PER_PROCESS + 50):
        mask_link(_link()[0])
        patterns.append(len(_secrets_masker().patterns))

    assert masked_links() == MASKED_LINKS_PER_PROCESS
    assert patterns[-1] == patterns[MASKED_LINKS_PER_PROCESS - 1]  # flat after the budget: no recompile, no growth
    assert patterns[-1] <= 3 * MASKED_LINKS_PER_PROCESS


def test_a_link_past_the_budget_is_still_kept_out_of_a_log_record(caplog: pytest.LogCaptureFixture) -> None:
    reset_masked_links()
    for _ in range(MASKED_LINKS_PER_PROCESS):
        mask_link(_link()[0])
    link, sig = _link()
    mask_link(link)  # not registered with the masker any more
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        path = link.split(".net", 1)[1].split("#")[0]
        logging.getLogger("urllib3.connectionpool").debug(
            '%s://%s:%s "%s %s %s" %s %s', "https", "h", 443, "GET", path, "HTTP/1.1", 200, 9
        )
        logging.getLogger("mine").warning("fetching %s", link)

    assert "GET /resultfiles/" in caplog.text
    assert sig not in caplog.text
    assert sig.replace("%3D", "=") not in caplog.text
    assert "sig=" not in caplog.text.replace("sig=***", "")


def test_an_exception_logged_with_a_link_is_scrubbed_in_its_cause_too(caplog: pytest.LogCaptureFixture) -> None:
    link, sig = _link()
    install_redaction()
    try:
        try:
            raise ConnectionError(f"Max retries exceeded with url: {link.split('.net', 1)[1]}")
        except ConnectionError as inner:
            raise RuntimeError("download failed") from inner
    except RuntimeError:
        logging.getLogger("mine").exception("the store failed")

    assert "the store failed" in caplog.text
    assert "Max retries exceeded" in caplog.text
    assert sig not in caplog.text


def test_a_structlog_event_with_a_link_is_scrubbed_before_it_is_rendered() -> None:
    import structlog

    rendered: list[str] = []

    def renderer(logger: object, method: str, event: dict[str, object]) -> str:
        rendered.append(repr(event))
        raise structlog.DropEvent

    previous = structlog.get_config()
    structlog.configure(processors=[renderer], cache_logger_on_first_use=False)
    try:
        link, sig = _link()
        mask_link(link)  # installs the redaction into the processors configured now
        structlog.get_logger().warning("got %s", link, url=link, nested={"links": [link]})
    finally:
        structlog.configure(**previous)

    assert rendered
    assert sig not in rendered[0]
    assert "resultfiles" in rendered[0]


def test_installing_twice_wraps_once() -> None:
    install_redaction()
    factory = logging.getLogRecordFactory()
    install_redaction()
    assert logging.getLogRecordFactory() is factory
