"""LiveResponseHook against the simulator over real HTTPS, with the real msal."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_liveresponse.constants import USER_AGENT
from airflow_provider_liveresponse.exceptions import (
    LiveResponseApiError,
    LiveResponseAuthError,
    LiveResponseConfigError,
)
from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook, marker_tag
from airflow_provider_liveresponse.models import ActionStatus, GetFile, RunScript
from airflow_provider_liveresponse.simulator.fleet import device_id
from tests.certificates import self_signed_certificate

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.simulator import Simulator

WS1 = device_id("ws-0001.contoso.local")
WS2 = device_id("ws-0002.contoso.local")
OFFLINE = device_id("laptop-0001.contoso.local")
KIOSK = device_id("kiosk-0001.contoso.local")


def sim_sleep(sim: Simulator, waits: list[float] | None = None) -> Any:
    """A sleep that advances the simulated clock instead of waiting for real."""

    def sleep(seconds: float) -> None:
        if waits is not None:
            waits.append(seconds)
        sim.clock.advance(seconds * sim.clock.speed)

    return sleep


def calls(sim: Simulator) -> int:
    return sum(v for k, v in sim.state.counters.items() if k.startswith("calls:"))


def run_to_end(sim: Simulator, hook: LiveResponseHook, action_id: str, step: float = 60.0) -> Any:
    action = hook.get_machine_action(action_id)
    for _ in range(5000):
        if action.is_terminal:
            return action
        sim.clock.advance(step)
        action = hook.get_machine_action(action_id)
    raise AssertionError(f"action {action_id} never ended")


def test_runs_live_response_end_to_end_with_a_client_secret(simulator: Simulator, hook: LiveResponseHook) -> None:
    action = hook.run_live_response(
        WS1, [RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\triage.zip")], comment="IR-1 triage"
    )
    assert action.status == ActionStatus.PENDING
    assert action.machine_id == WS1
    assert action.requestor_comment is not None
    assert action.requestor_comment.startswith("IR-1 triage [airflow:")
    done = run_to_end(simulator, hook, action.id)
    assert done.status == ActionStatus.SUCCEEDED
    assert [str(c.command_status) for c in done.commands] == ["Completed", "Completed"]
    assert done.commands[1].start_time is not None
    assert done.commands[1].start_time.tzinfo is not None

    transcript = hook.get_script_transcript(action.id, 0)
    assert transcript.exit_code == 0
    assert transcript.script_name == "triage.ps1"

    expected = simulator.state.result_digest(action.id, 1)
    with hook.open_result(action.id, 1) as reader:
        data = b"".join(reader.iter_chunks(64 * 1024))
    assert reader.sha256 == expected["compressed"]["sha256"]
    assert reader.size == len(data) == expected["compressed"]["size"]
    assert reader.file_name == "triage.zip.gz"
    import gzip
    import hashlib

    assert hashlib.sha256(gzip.decompress(data)).hexdigest() == expected["raw"]["sha256"]
    assert simulator.state.counters["blob_requests_with_authorization"] == 0


def test_every_request_names_the_provider_in_its_user_agent(simulator: Simulator, hook: LiveResponseHook) -> None:
    action = hook.run_live_response(WS1, [GetFile(r"C:\Windows\Temp\empty.txt")], comment="ua")
    run_to_end(simulator, hook, action.id)
    with hook.open_result(action.id, 0) as reader:
        reader.read()
    agents = simulator.state.user_agents
    assert set(agents) == {USER_AGENT}, agents
    assert sum(agents.values()) == calls(simulator)


def test_certificate_auth(simulator: Simulator, make_connection: Any, tmp_path: Path) -> None:
    key_pem, cert_pem = self_signed_certificate()
    simulator.register_certificate(cert_pem)
    pem_file = tmp_path / "app.pem"
    pem_file.write_text(key_pem + cert_pem)
    make_connection("mde_cert", password=None, extra={"certificate_path": str(pem_file)})
    hook = LiveResponseHook("mde_cert")
    assert hook.settings.uses_certificate
    assert hook.get_machine(WS1).computer_dns_name == "ws-0001.contoso.local"
    assert simulator.state.counters["token_requests"] == 1
    from airflow.sdk._shared.secrets_masker import redact

    private_key_line = key_pem.splitlines()[1]
    assert private_key_line not in str(redact(key_pem + cert_pem))


@pytest.mark.parametrize(
    ("cloud", "scope"),
    [
        ("commercial", "https://api.securitycenter.microsoft.com/.default"),
        ("gcc", "https://api-gcc.securitycenter.microsoft.us/.default"),
        ("gcc_high", "https://securitycenter.onmicrosoft.us/windowsatpservice/.default"),
        ("dod", "https://securitycenter.onmicrosoft.us/windowsatpservice/.default"),
    ],
)
def test_each_cloud_asks_for_its_scope(simulator: Simulator, make_connection: Any, cloud: str, scope: str) -> None:
    make_connection("mde_cloud", extra={"cloud": cloud})
    LiveResponseHook("mde_cloud").get_machine(WS1)
    assert simulator.state.scopes_used == [scope]


def test_a_token_is_reused_across_100_calls(simulator: Simulator, hook: LiveResponseHook) -> None:
    for _ in range(100):
        simulator.clock.advance(1)
        hook.get_machine(WS1)
    assert simulator.state.counters["token_requests"] == 1
    # A second hook of the same connection in the same process shares the token.
    LiveResponseHook(hook.mde_conn_id).get_machine(WS1)
    assert simulator.state.counters["token_requests"] == 1


def test_an_expired_token_is_replaced_once(simulator: Simulator, hook: LiveResponseHook) -> None:
    hook.get_machine(WS1)
    simulator.clock.advance(simulator.identity.token_lifetime + 1)
    hook.get_machine(WS1)
    assert simulator.state.counters["token_requests"] == 2


def test_a_401_fetches_a_new_token_once_and_retries_once(simulator: Simulator, hook: LiveResponseHook) -> None:
    hook.get_machine(WS1)
    simulator.state.faults.set("machines", unauthorized_next=1)
    assert hook.get_machine(WS1).id == WS1
    assert simulator.state.counters["token_requests"] == 2


def test_a_second_401_fails_clearly(simulator: Simulator, hook: LiveResponseHook) -> None:
    simulator.state.faults.set("machines", unauthorized_next=2)
    with pytest.raises(LiveResponseApiError) as info:
        hook.get_machine(WS1)
    assert info.value.status == 401
    assert "tenant_id" in str(info.value)
    assert simulator.state.counters["calls:machines"] == 2


def test_wrong_secret_fails_with_entras_reason(simulator: Simulator, make_connection: Any) -> None:
    make_connection("mde_wrong", password="not-the-secret")
    with pytest.raises(LiveResponseAuthError) as info:
        LiveResponseHook("mde_wrong").get_machine(WS1)
    assert "invalid_client" in str(info.value)
    assert "not-the-secret" not in str(info.value)
    ok, message = LiveResponseHook("mde_wrong").test_connection()
    assert not ok
    assert "AADSTS7000215" in message


def test_a_throttled_token_request_says_entra_is_busy_not_that_the_credentials_are_wrong(
    simulator: Simulator, make_connection: Any
) -> None:
    make_connection("mde_throttled")
    simulator.state.faults.set("token", throttle_next=1)
    with pytest.raises(LiveResponseAuthError) as info:
        LiveResponseHook("mde_throttled").get_machine(WS1)
    message = str(info.value)
    assert "'mde_throttled'" in message
    assert "busy or throttling" in message
    assert "AADSTS90055" in message
    assert "credentials were not rejected" in message
    assert "check tenant_id" not in message
    assert simulator.state.counters["throttled:token"] == 1
    assert simulator.state.counters["calls:machines"] == 0


def test_connection_button(hook: LiveResponseHook) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert "machine-actions read work" in message


def test_429_waits_for_retry_after(simulator: Simulator, conn_id: str) -> None:
    waits: list[float] = []
    hook = LiveResponseHook(conn_id, sleep=sim_sleep(simulator, waits))
    simulator.state.set_limits(read_calls_per_minute=2)
    for _ in range(3):
        hook.get_machine(WS1)
    assert simulator.state.counters["throttled:machines"] == 1
    assert len(waits) == 1
    assert waits[0] == pytest.approx(60 / simulator.clock.speed, rel=0.05)


def test_429_without_retry_after_backs_off(simulator: Simulator, conn_id: str) -> None:
    waits: list[float] = []
    hook = LiveResponseHook(conn_id, sleep=sim_sleep(simulator, waits))
    simulator.state.faults.set("machines", throttle_next=2, throttle_retry_after=False)
    hook.get_machine(WS1)
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0


def test_429_past_the_budget_fails_with_advice(simulator: Simulator, conn_id: str) -> None:
    hook = LiveResponseHook(conn_id, max_retry_wait=0.5, sleep=sim_sleep(simulator))
    simulator.state.set_limits(read_calls_per_minute=1)
    hook.get_machine(WS1)
    with pytest.raises(LiveResponseApiError) as info:
        hook.get_machine(WS1)
    assert info.value.status == 429
    assert info.value.retry_after is not None
    assert "pool" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_with_backoff(simulator: Simulator, conn_id: str, status: int) -> None:
    waits: list[float] = []
    hook = LiveResponseHook(conn_id, sleep=waits.append)
    simulator.state.faults.set("machines", fail_next=2, status=status)
    assert hook.get_machine(WS1).id == WS1
    assert len(waits) == 2
    assert waits[1] > waits[0] * 0.9


def test_resets_and_timeouts_are_retried(simulator: Simulator, conn_id: str) -> None:
    hook = LiveResponseHook(conn_id, sleep=lambda s: None, timeout=(5.0, 0.5))
    simulator.state.faults.set("machines", reset_next=1)
    assert hook.get_machine(WS1).id == WS1
    simulator.state.faults.set("machines", delay_seconds=1.0, delay_next=1)
    assert hook.get_machine(WS1).id == WS1
    assert simulator.state.counters["calls:machines"] == 4


def test_transient_errors_past_the_attempts_fail_clearly(simulator: Simulator, conn_id: str) -> None:
    hook = LiveResponseHook(conn_id, max_attempts=3, sleep=lambda s: None)
    simulator.state.faults.set("machines", fail_next=10, status=503)
    with pytest.raises(LiveResponseApiError) as info:
        hook.get_machine(WS1)
    assert info.value.status == 503
    assert "after 3 attempts" in str(info.value)
    assert "rerun" in str(info.value)
    assert simulator.state.counters["calls:machines"] == 3


def test_other_4xx_fail_at_once(simulator: Simulator, hook: LiveResponseHook) -> None:
    with pytest.raises(LiveResponseApiError) as info:
        hook.get_machine("f" * 40)
    assert info.value.status == 404
    assert simulator.state.counters["calls:machines"] == 1
    assert "ffffffff" in str(info.value)


def test_malformed_json_is_a_clear_error(simulator: Simulator, hook: LiveResponseHook) -> None:
    simulator.state.faults.set("machines", malformed_next=1)
    with pytest.raises(LiveResponseApiError, match="not JSON"):
        hook.get_machine(WS1)


# -- exactly once ----------------------------------------------------------------------------------------


def test_commit_then_drop_does_not_create_a_second_action(simulator: Simulator, conn_id: str) -> None:
    hook = LiveResponseHook(conn_id, sleep=lambda s: None)
    simulator.state.faults.set("runliveresponse", commit_then_drop_next=1)
    action = hook.run_live_response(WS1, [RunScript("triage.ps1")], comment="dropped answer")
    assert simulator.state.counters["actions_created"] == 1
    assert simulator.state.counters["calls:runliveresponse"] == 1
    assert action.requestor_comment is not None
    assert "dropped answer [airflow:" in action.requestor_comment


@pytest.mark.parametrize("fault", [{"reset_next": 1}, {"fail_next": 1, "status": 502}])
def test_a_submit_that_was_not_carried_out_is_sent_again_once(
    simulator: Simulator, conn_id: str, fault: dict[str, Any]
) -> None:
    hook = LiveResponseHook(conn_id, sleep=lambda s: None)
    simulator.state.faults.set("runliveresponse", **fault)
    hook.run_live_response(WS1, [RunScript("triage.ps1")], comment="retry")
    assert simulator.state.counters["actions_created"] == 1
    assert simulator.state.counters["calls:runliveresponse"] == 2


def test_the_hook_finds_its_own_action_by_marker(simulator: Simulator, hook: LiveResponseHook) -> None:
    action = hook.run_live_response(WS1, [RunScript("triage.ps1")], comment="mine", marker="case-42-ws1")
    found = hook.find_action_by_marker(WS1, "case-42-ws1")
    assert found is not None
    assert found.id == action.id
    assert hook.find_action_by_marker(WS1, "case-43-ws1") is None
    assert action.requestor_comment == f"mine {marker_tag('case-42-ws1')}"


def test_a_busy_device_is_refused_with_the_code_and_advice(simulator: Simulator, hook: LiveResponseHook) -> None:
    hook.run_live_response(WS2, [RunScript("sleep.ps1", args="300")], comment="first")
    with pytest.raises(LiveResponseApiError) as info:
        hook.run_live_response(WS2, [RunScript("triage.ps1")], comment="second")
    assert info.value.code == "ActiveRequestAlreadyExists"
    assert info.value.machine_id == WS2
    assert "already has an active live-response session" in str(info.value)


def test_a_device_without_automation_names_the_fix(hook: LiveResponseHook) -> None:
    with pytest.raises(LiveResponseApiError) as info:
        hook.run_live_response(KIOSK, [RunScript("triage.ps1")], comment="kiosk")
    assert info.value.status == 403
    assert info.value.code == "DisallowedOperation"
    assert "automation level" in str(info.value)


# -- machine actions -------------------------------------------------------------------------------------


def test_list_follows_paging_and_filters(simulator: Simulator, hook: LiveResponseHook) -> None:
    simulator.state.set_limits(page_size=2)
    ids = []
    for n in range(5):
        host = device_id(f"ws-{n + 10:04d}.contoso.local")
        ids.append(hook.run_live_response(host, [RunScript("triage.ps1")], comment=f"batch {n}").id)
        simulator.clock.advance(7)
    listed = hook.list_machine_actions(action_type="LiveResponse")
    assert sorted(a.id for a in listed) == sorted(ids)
    assert simulator.state.counters["calls:list_actions"] == 3
    only = hook.list_machine_actions(comment_contains="batch 3")
    assert next(a.requestor_comment for a in only).startswith("batch 3")
    mine = hook.list_machine_actions(machine_id=device_id("ws-0011.contoso.local"))
    assert [a.id for a in mine] == [ids[1]]
    by_id = hook.list_machine_actions(action_ids=ids[:2])
    assert sorted(a.id for a in by_id) == sorted(ids[:2])
    pending = hook.list_machine_actions(status=["Pending", "InProgress"], limit=2)
    assert len(pending) == 2


def test_cancel_a_queued_action_and_cancel_again(simulator: Simulator, hook: LiveResponseHook) -> None:
    action = hook.run_live_response(OFFLINE, [GetFile(r"C:\Windows\Temp\memory.dmp")], comment="offline")
    cancelled = hook.cancel_machine_action(action.id, "no longer needed")
    assert cancelled.status == ActionStatus.CANCELLED
    again = hook.cancel_machine_action(action.id, "twice")
    assert again.status == ActionStatus.CANCELLED


def test_failed_commands_carry_their_errors(simulator: Simulator, hook: LiveResponseHook) -> None:
    action = hook.run_live_response(
        WS1, [RunScript("fail.ps1"), GetFile(r"C:\Windows\Temp\triage.zip")], comment="will fail"
    )
    done = run_to_end(simulator, hook, action.id)
    assert done.status == ActionStatus.FAILED
    assert [str(c.command_status) for c in done.commands] == ["Failed", "Created"]
    assert done.failed_commands[0].errors


# -- results ---------------------------------------------------------------------------------------------


def _finished_getfile(sim: Simulator, hook: LiveResponseHook, size: int) -> str:
    action = hook.run_live_response(WS1, [GetFile(rf"C:\Evidence\sim-size-{size}.bin")], comment="blob")
    run_to_end(sim, hook, action.id)
    return action.id


def test_a_cut_download_resumes_with_range(simulator: Simulator, conn_id: str) -> None:
    hook = LiveResponseHook(conn_id, sleep=lambda s: None)
    action_id = _finished_getfile(simulator, hook, 3 * 1024 * 1024)
    simulator.state.faults.set("blob", cut_after_bytes=100_000, cut_mode="once")
    with hook.open_result(action_id, 0) as reader:
        for _ in reader.iter_chunks():
            pass
    assert reader.resumes == 1
    assert reader.sha256 == simulator.state.result_digest(action_id, 0)["compressed"]["sha256"]


def test_an_expired_link_is_replaced_mid_download(simulator: Simulator, conn_id: str) -> None:
    hook = LiveResponseHook(conn_id, sleep=lambda s: None)
    action_id = _finished_getfile(simulator, hook, 3 * 1024 * 1024)
    simulator.state.faults.set("blob", cut_after_bytes=500_000, cut_mode="once")
    with hook.open_result(action_id, 0) as reader:
        first = reader.read(64 * 1024)
        simulator.clock.advance(31 * 60)  # the link has expired when the cut forces a new request
        rest = b"".join(reader.iter_chunks())
    assert reader.links_requested == 2
    assert len(first) + len(rest) == reader.size
    assert reader.sha256 == simulator.state.result_digest(action_id, 0)["compressed"]["sha256"]


def test_a_blob_cut_for_good_fails_clearly(simulator: Simulator, conn_id: str) -> None:
    hook = LiveResponseHook(conn_id, sleep=lambda s: None)
    action_id = _finished_getfile(simulator, hook, 1024 * 1024)
    simulator.state.faults.set("blob", cut_after_bytes=1000, cut_mode="always")
    with pytest.raises(LiveResponseApiError) as info, hook.open_result(action_id, 0, max_resumes=3) as reader:
        reader.read()
    assert action_id in str(info.value)
    assert "Rerun the task" in str(info.value)


@pytest.mark.parametrize("size", [0, 1])
def test_tiny_results(simulator: Simulator, hook: LiveResponseHook, size: int) -> None:
    action_id = _finished_getfile(simulator, hook, size)
    with hook.open_result(action_id, 0) as reader:
        data = reader.read()
    import gzip

    assert len(gzip.decompress(data)) == size


# -- library and machines --------------------------------------------------------------------------------


def test_library_upload_list_delete(simulator: Simulator, hook: LiveResponseHook, tmp_path: Path) -> None:
    script = tmp_path / "collect_prefetch.ps1"
    script.write_text("Get-ChildItem C:\\Windows\\Prefetch\n")
    uploaded = hook.upload_library_file(script, description="prefetch", parameters_description="none")
    assert uploaded.file_name == "collect_prefetch.ps1"
    assert "collect_prefetch.ps1" in {f.file_name for f in hook.list_library_files()}
    with pytest.raises(LiveResponseApiError):
        hook.upload_library_file(script)  # exists, no override
    hook.upload_library_file(script, override_if_exists=True)
    hook.delete_library_file("collect_prefetch.ps1")
    assert "collect_prefetch.ps1" not in {f.file_name for f in hook.list_library_files()}
    with pytest.raises(LiveResponseApiError) as info:
        hook.delete_library_file("collect_prefetch.ps1")
    assert info.value.status == 404


def test_the_library_listing_follows_every_page(simulator: Simulator, hook: LiveResponseHook) -> None:
    simulator.state.set_limits(page_size=2)
    before = {f.file_name for f in hook.list_library_files()}
    names = {f"paged_{n}.ps1" for n in range(5)}
    for name in sorted(names):
        hook.upload_library_file(b"Write-Output 1\n", file_name=name)
    listed = [f.file_name for f in hook.list_library_files()]
    assert len(listed) == len(before) + 5 > 2
    assert set(listed) == before | names


def test_an_upload_whose_answer_was_lost_is_not_repeated(simulator: Simulator, conn_id: str, tmp_path: Path) -> None:
    hook = LiveResponseHook(conn_id, sleep=lambda s: None)
    simulator.state.faults.set("library", commit_then_drop_next=1)
    uploaded = hook.upload_library_file(b"Write-Output 1\n", file_name="once.ps1")
    assert uploaded.file_name == "once.ps1"


def test_find_machines_by_name_and_tag(hook: LiveResponseHook) -> None:
    (machine,) = hook.find_machines(computer_dns_name="WS-0001.contoso.local")
    assert machine.id == WS1
    finance = hook.find_machines(machine_tag="finance")
    assert finance
    assert all("finance" in m.machine_tags for m in finance)
    assert hook.find_machines(computer_dns_name="nope.contoso.local") == []


# -- bad input: a clear error before any request ----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda h: h.run_live_response("ws-0001", [RunScript("a.ps1")], "c"), "not an MDE device id"),
        (lambda h: h.run_live_response(WS1, [], "c"), "commands is empty"),
        (lambda h: h.run_live_response(WS1, [{"type": "GetFile", "params": []}], "c"), "missing required param"),
        (lambda h: h.run_live_response(WS1, [RunScript("a.ps1")], " "), "comment is empty"),
        (lambda h: h.run_live_response(WS1, [RunScript("a.ps1")], "c", marker="x"), "marker"),
        (lambda h: h.get_machine_action("../etc"), "not an MDE machine action id"),
        (lambda h: h.get_result_download_link("7c1d4ea0-5b0e-4a34", -1), "index must be a whole number"),
        (lambda h: h.cancel_machine_action("7c1d4ea0-5b0e-4a34", ""), "comment is empty"),
        (lambda h: h.find_machines(), "at least one filter"),
        (lambda h: h.upload_library_file(b"x" * (20 * 1024 * 1024 + 1), file_name="big.ps1"), "at most"),
        (lambda h: h.upload_library_file(b"x", file_name="dir\\a.ps1"), "path separator"),
        (lambda h: h.list_machine_actions(page_size=0), "page_size"),
        (
            lambda h: h.run_live_response(
                WS1, [{"type": "PutFile", "params": [{"key": "FileName", "value": "CON"}]}], "c"
            ),
            "reserved",
        ),
    ],
)
def test_bad_input_is_named_before_any_request(
    simulator: Simulator, hook: LiveResponseHook, call: Any, fragment: str
) -> None:
    with pytest.raises(LiveResponseConfigError) as info:
        call(hook)
    assert fragment in str(info.value)
    assert calls(simulator) == 0


# -- secrets ---------------------------------------------------------------------------------------------


def test_no_secret_token_or_link_signature_reaches_the_logs(
    simulator: Simulator, conn_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = LiveResponseHook(conn_id, sleep=lambda s: None)
    simulator.state.faults.set("machines", unauthorized_next=1)
    hook.get_machine(WS1)
    action = hook.run_live_response(WS1, [GetFile(r"C:\Windows\Temp\empty.txt")], comment="secrets")
    run_to_end(simulator, hook, action.id)
    link = hook.get_result_download_link(action.id, 0)
    signature = parse_qs(urlsplit(link).query)["sig"][0]
    simulator.state.faults.set("blob", cut_after_bytes=5, cut_mode="once")
    with hook.open_result(action.id, 0) as reader:
        reader.read()
    errors: list[str] = []
    for bad in (lambda: hook.get_machine("f" * 40), lambda: hook.get_result_download_link(action.id, 9)):
        try:
            bad()
        except LiveResponseApiError as exc:
            errors.append(str(exc))
    token = hook.tokens.token()
    texts = [caplog.text, *errors, repr(hook.settings), repr(hook)]
    assert urlsplit(link).path in caplog.text  # the link's path is logged...
    for secret in (simulator.client_secret, token, signature, link):
        for text in texts:
            assert secret not in text  # ...never the secret, the token or the signature


def test_secrets_are_registered_with_airflows_masker(simulator: Simulator, hook: LiveResponseHook) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    action = hook.run_live_response(WS1, [GetFile(r"C:\Windows\Temp\empty.txt")], comment="masker")
    run_to_end(simulator, hook, action.id)
    link = hook.get_result_download_link(action.id, 0)
    signature = parse_qs(urlsplit(link).query)["sig"][0]
    for secret in (simulator.client_secret, hook.tokens.token(), link, signature):
        assert secret not in str(redact(f"before {secret} after"))


def test_the_generic_http_hook_call_goes_through_auth_and_retries(
    simulator: Simulator, conn_id: str, hook: LiveResponseHook
) -> None:
    simulator.state.faults.set("machines", fail_next=1, status=500)
    response = LiveResponseHook(conn_id, sleep=lambda s: None).run(f"api/machines/{WS1}")
    assert response.json()["id"] == WS1
    hook.method = "GET"
    listed = hook.run("api/machines", data={"$filter": "computerDnsName eq 'ws-0002.contoso.local'"})
    assert [m["id"] for m in listed.json()["value"]] == [WS2]


# -- built on HttpHook -----------------------------------------------------------------------------------


def test_run_with_advanced_retry_is_the_only_retry(simulator: Simulator, conn_id: str) -> None:
    import tenacity

    hook = LiveResponseHook(conn_id, sleep=lambda s: None)
    retry_args = {
        "stop": tenacity.stop_after_attempt(2),
        "wait": tenacity.wait_none(),
        "retry": tenacity.retry_if_exception_type(LiveResponseApiError),
        "reraise": True,
    }
    simulator.state.faults.set("machines", fail_next=5, status=503)
    with pytest.raises(LiveResponseApiError) as info:
        hook.run_with_advanced_retry(retry_args, f"api/machines/{WS1}")
    assert info.value.status == 503
    assert simulator.state.counters["calls:machines"] == 2  # two tries of one attempt each, not 2 x 6
    assert hook.retry_policy.max_attempts == 6  # the hook's own policy is back
    simulator.state.faults.clear()
    assert hook.run_with_advanced_retry(retry_args, f"api/machines/{WS1}").json()["id"] == WS1


def test_a_generic_post_whose_answer_is_lost_is_not_sent_again(simulator: Simulator, hook: LiveResponseHook) -> None:
    action = hook.run_live_response(OFFLINE, [RunScript("triage.ps1")], comment="generic post")
    simulator.state.faults.set("cancel", fail_next=1, status=502)
    hook.method = "POST"
    with pytest.raises(LiveResponseApiError, match="may have carried it out"):
        hook.run(f"api/machineactions/{action.id}/cancel", data={"Comment": "stop"})
    assert simulator.state.counters["calls:cancel"] == 1


def test_the_api_url_comes_from_the_connection_without_httphooks_private_state(
    simulator: Simulator, hook: LiveResponseHook
) -> None:
    assert hook.url_from_endpoint("api/machines") == f"{simulator.api_url}/api/machines"
    assert hook.base_url == simulator.api_url
    assert hook._base_url_initialized is False  # HttpHook's own flag: never written by this hook


def test_connection_extras_never_become_headers_or_basic_auth(simulator: Simulator, hook: LiveResponseHook) -> None:
    session = hook.get_conn()
    assert session.auth is None
    assert not {"tenant_id", "api_url", "ca_bundle"} & {name.lower() for name in session.headers}
    hook.get_machine(WS1)


def test_the_connections_ca_bundle_wins_over_requests_environment(
    simulator: Simulator, hook: LiveResponseHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    import certifi

    # A bundle without the simulator's CA: requests lets it override a session's verify unless each request
    # passes its own.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    assert hook.get_machine(WS1).id == WS1
    assert hook.run(f"api/machines/{WS1}").json()["id"] == WS1
    action = hook.run_live_response(WS1, [GetFile(r"C:\Windows\Temp\empty.txt")], comment="tls")
    run_to_end(simulator, hook, action.id)
    with hook.open_result(action.id, 0) as reader:
        assert reader.read() is not None
