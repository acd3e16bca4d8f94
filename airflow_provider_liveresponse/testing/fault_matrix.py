"""The fault matrix: every fault MDE, Entra ID or the blob host can throw, and how a call ends.

Each case arms one fault on the simulator (``sim.state.faults``), makes the hook call it affects (through
``LiveResponseHook``, ``LiveResponseAsyncHook``, ``MachineActionTrigger`` or the ``ResultReader``), and checks
that it ends correctly: a success after retrying as the fault asks (``Retry-After`` honoured, a new token after a
401, a new link after a 403), or a :class:`LiveResponseError` whose message names the action or the call and
what to do. Retries really wait, with the backoff scaled down so that the campaign stays fast.

The cases are plain functions: ``tests/campaigns/test_fault_matrix.py`` runs them as tests and fault campaign 3
(``benchmarks/fault_matrix.py``) as a table.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.testing.simulated_connection import counter, running_simulator

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook
    from airflow_provider_liveresponse.models import MachineAction
    from airflow_provider_liveresponse.simulator.server import Simulator

#: The simulator's speed in the campaign, and a token life of one real hour (as the test fixture).
SPEED = 60.0
TOKEN_LIFETIME = 3600 * SPEED
#: Backoff of the retried calls (the policy's curve, scaled down).
BACKOFF_BASE = 0.02
BACKOFF_MAX = 0.2


class CaseFailed(AssertionError):
    """A case did not end as it should."""


@dataclass
class Bench:
    """What a case works with: the simulator, and hooks on it whose waits are recorded."""

    sim: Simulator
    conn_id: str
    waits: list[float] = dataclasses.field(default_factory=list)

    def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(min(seconds, 0.2))

    def hook(self, **options: Any) -> LiveResponseHook:
        """A sync hook with the scaled-down backoff; its waits go to :attr:`waits`."""
        from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

        hook = LiveResponseHook(self.conn_id, sleep=self._sleep, **options)
        hook.retry_policy = dataclasses.replace(hook.retry_policy, backoff_base=BACKOFF_BASE, backoff_max=BACKOFF_MAX)
        return hook

    def async_hook(self, **options: Any) -> LiveResponseAsyncHook:
        """An async hook with the scaled-down backoff."""
        from airflow_provider_liveresponse.hooks.live_response_async import LiveResponseAsyncHook

        hook = LiveResponseAsyncHook(self.conn_id, **options)
        hook.retry_policy = dataclasses.replace(hook.retry_policy, backoff_base=BACKOFF_BASE, backoff_max=BACKOFF_MAX)
        return hook

    def device(self) -> str:
        """A new online workstation (no earlier session on it)."""
        return self.sim.state.add_device(f"fault-{len(self.sim.state.devices):05d}.contoso.local").id

    def action(self, script: str = "triage.ps1", args: str | None = None) -> MachineAction:
        """A new live-response action (RunScript) on a fresh device, submitted through the hook."""
        from airflow_provider_liveresponse.models import RunScript

        return self.hook().run_live_response(self.device(), [RunScript(script, args)], "fault matrix")

    def finished(self, action_id: str) -> MachineAction:
        """Move the simulated clock on until the action has ended."""
        with self.sim.state.lock:
            for _ in range(200):
                if not self.sim.state.action(action_id).is_active:
                    break
                self.sim.state.advance_clock(30)
        return self.hook().get_machine_action(action_id)


@dataclass(frozen=True)
class Case:
    """One row of the matrix."""

    fault: str
    call: str
    expected: str
    run: Callable[[Bench], str]


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CaseFailed(message)


def expect_clear_error(exc: BaseException, *must_name: str) -> str:
    """``exc`` is one of ours and its message names ``must_name`` and what to do."""
    from airflow_provider_liveresponse.exceptions import LiveResponseError

    expect(isinstance(exc, LiveResponseError), f"{type(exc).__name__} is not a LiveResponseError: {exc}")
    text = str(exc)
    for name in must_name:
        expect(name in text, f"the message does not name {name!r}: {text}")
    expect(
        any(hint in text.lower() for hint in ("what to do", "rerun", "check")),
        f"the message does not say what to do: {text}",
    )
    return f"{type(exc).__name__}: {text[:90]}..."


@contextlib.contextmanager
def raises() -> Iterator[list[BaseException]]:
    """Catch the exception of the block (a case that expects a failure checks it afterwards)."""
    caught: list[BaseException] = []
    try:
        yield caught
    except Exception as exc:
        caught.append(exc)
    if not caught:
        raise CaseFailed("the call succeeded; it should have failed clearly")


# -- the cases ---------------------------------------------------------------------------------------------------


def _throttled_with_retry_after(bench: Bench) -> str:
    action = bench.action()
    bench.sim.state.faults.set("get_action", throttle_next=2, throttle_retry_after=6)
    found = bench.hook().get_machine_action(action.id)
    expect(found.id == action.id, "the wrong action came back")
    announced = 6 / SPEED
    expect(bench.waits == [announced, announced], f"waited {bench.waits}, Retry-After said {announced} s twice")
    return f"waited {bench.waits} s as Retry-After said"


def _throttled_without_retry_after(bench: Bench) -> str:
    action = bench.action()
    bench.sim.state.faults.set("get_action", throttle_next=2, throttle_retry_after=False)
    bench.hook().get_machine_action(action.id)
    expect(len(bench.waits) == 2 and all(w > 0 for w in bench.waits), f"backoff waits {bench.waits}")
    return f"backed off {[round(w, 3) for w in bench.waits]} s"


def _throttled_past_the_budget(bench: Bench) -> str:
    action = bench.action()
    bench.sim.state.faults.set("get_action", throttle_next=1000, throttle_retry_after=60)
    with raises() as caught:
        bench.hook(max_retry_wait=3.5).get_machine_action(action.id)
    expect(getattr(caught[0], "status", None) == 429, f"status {getattr(caught[0], 'status', None)}, not 429")
    return expect_clear_error(caught[0], action.id)


def _server_error(status: int) -> Callable[[Bench], str]:
    def run(bench: Bench) -> str:
        action = bench.action()
        bench.sim.state.faults.set("get_action", fail_next=2, status=status)
        found = bench.hook().get_machine_action(action.id)
        expect(found.id == action.id and len(bench.waits) == 2, f"waits {bench.waits}")
        return f"succeeded on the third attempt after {len(bench.waits)} backoffs"

    return run


def _server_error_persisting(bench: Bench) -> str:
    action = bench.action()
    bench.sim.state.faults.set("get_action", fail_next=1000, status=503)
    with raises() as caught:
        bench.hook(max_attempts=3).get_machine_action(action.id)
    expect(getattr(caught[0], "status", None) == 503, "the error does not carry HTTP 503")
    return expect_clear_error(caught[0], action.id)


def _reset_on_read(bench: Bench) -> str:
    action = bench.action()
    bench.sim.state.faults.set("get_action", reset_next=2)
    bench.hook().get_machine_action(action.id)
    return f"succeeded after {len(bench.waits)} resets"


def _reset_on_submit(bench: Bench) -> str:
    from airflow_provider_liveresponse.models import RunScript

    before = counter(bench.sim, "actions_created")
    bench.sim.state.faults.set("runliveresponse", reset_next=1)
    action = bench.hook().run_live_response(bench.device(), [RunScript("triage.ps1")], "fault matrix")
    created = counter(bench.sim, "actions_created") - before
    expect(created == 1, f"{created} actions were created")
    return f"action {action.id[:8]}..., created once"


def _commit_then_drop(bench: Bench) -> str:
    from airflow_provider_liveresponse.models import RunScript

    before = counter(bench.sim, "actions_created")
    bench.sim.state.faults.set("runliveresponse", commit_then_drop_next=1)
    action = bench.hook().run_live_response(bench.device(), [RunScript("triage.ps1")], "fault matrix")
    created = counter(bench.sim, "actions_created") - before
    expect(created == 1, f"{created} actions were created")
    expect(action.id in bench.sim.state.actions, "the hook returned an action the simulator does not have")
    return "the lost answer was found by its marker; created once"


def _slow_answer(bench: Bench) -> str:
    action = bench.action()
    bench.sim.state.faults.set("get_action", delay_seconds=1.0, delay_next=1)
    bench.hook(timeout=(5.0, 0.3)).get_machine_action(action.id)
    expect(len(bench.waits) == 1, f"waits {bench.waits}")
    return "timed out after 0.3 s, retried, succeeded"


def _slow_answer_persisting(bench: Bench) -> str:
    action = bench.action()
    bench.sim.state.faults.set("get_action", delay_seconds=0.6, delay_next=None)
    with raises() as caught:
        bench.hook(timeout=(5.0, 0.2), max_attempts=2).get_machine_action(action.id)
    bench.sim.state.faults.clear("get_action")
    return expect_clear_error(caught[0], action.id)


def _token_expired(bench: Bench) -> str:
    action = bench.action()
    before = counter(bench.sim, "token_requests")
    # The cached token is still fresh by the process's clock; the simulated one says it has expired.
    bench.sim.state.advance_clock(bench.sim.identity.token_lifetime + 60)
    bench.hook().get_machine_action(action.id)
    fetched = counter(bench.sim, "token_requests") - before
    expect(fetched == 1, f"{fetched} new tokens after one 401")
    return "401, one new token, then success"


def _token_refused_twice(bench: Bench) -> str:
    action = bench.action()
    bench.sim.state.faults.set("get_action", unauthorized_next=2)
    with raises() as caught:
        bench.hook().get_machine_action(action.id)
    expect(getattr(caught[0], "status", None) == 401, "the error does not carry HTTP 401")
    return expect_clear_error(caught[0], action.id, "tenant_id")


def _token_endpoint_error(bench: Bench) -> str:
    from airflow_provider_liveresponse.auth import reset_token_providers

    reset_token_providers()
    bench.sim.state.faults.set("token", fail_next=1, status=503)
    with raises() as caught:
        bench.hook().list_machine_actions(page_size=1, limit=1)
    return expect_clear_error(caught[0], bench.conn_id)


def _token_endpoint_throttled(bench: Bench) -> str:
    from airflow_provider_liveresponse.auth import reset_token_providers

    reset_token_providers()
    bench.sim.state.faults.set("token", throttle_next=1)
    with raises() as caught:
        bench.hook().list_machine_actions(page_size=1, limit=1)
    text = str(caught[0]) if caught else ""
    expect("busy or throttling" in text and "check tenant_id" not in text, f"not told it is a throttle: {text}")
    return expect_clear_error(caught[0], bench.conn_id)


def _token_endpoint_reset(bench: Bench) -> str:
    from airflow_provider_liveresponse.auth import reset_token_providers

    reset_token_providers()
    bench.sim.state.faults.set("token", reset_next=1)
    with raises() as caught:
        bench.hook().list_machine_actions(page_size=1, limit=1)
    return expect_clear_error(caught[0], bench.conn_id)


def _expired_link_during_download(bench: Bench) -> str:
    from airflow_provider_liveresponse.models import GetFile

    size = 3_000_000
    hook = bench.hook()
    action = hook.run_live_response(
        bench.device(), [GetFile(f"C:\\Windows\\Temp\\sim-size-{size}.bin")], "fault matrix"
    )
    bench.finished(action.id)
    expected = bench.sim.state.result_digest(action.id, 0)["compressed"]
    bench.sim.state.faults.set("blob", cut_after_bytes=expected["size"] // 2, cut_mode="once")
    with hook.open_result(action.id, 0) as reader:
        # The link expires while the first half streams; the cut makes the reader ask again, with Range.
        bench.sim.state.advance_clock(bench.sim.state.limits.link_lifetime_seconds + 60)
        digest_input = b"".join(reader.iter_chunks())
        links, resumes = reader.links_requested, reader.resumes
        sha256 = reader.sha256
    expect(len(digest_input) == expected["size"], f"{len(digest_input)} bytes of {expected['size']}")
    expect(sha256 == expected["sha256"], "the downloaded bytes differ from the blob")
    expect(links == 2, f"{links} links requested; the expired one should be replaced once")
    return f"cut at half, 403 on the old link, new link, {resumes} resume; SHA-256 matches"


def _link_throttled(bench: Bench) -> str:
    action = bench.action()
    bench.finished(action.id)
    bench.sim.state.faults.set("link", throttle_next=1, throttle_retry_after=6)
    link = bench.hook().get_result_download_link(action.id, 0)
    expect(link.startswith("https://") and bench.waits == [6 / SPEED], f"waits {bench.waits}")
    return "waited Retry-After, got the link"


def _malformed_read(bench: Bench) -> str:
    action = bench.action()
    bench.sim.state.faults.set("get_action", malformed_next=1)
    with raises() as caught:
        bench.hook().get_machine_action(action.id)
    return expect_clear_error(caught[0], action.id)


def _malformed_listing(bench: Bench) -> str:
    bench.sim.state.faults.set("list_actions", malformed_next=1)
    with raises() as caught:
        bench.hook().list_machine_actions(action_type="LiveResponse")
    return expect_clear_error(caught[0], "Listing machine actions")


def _malformed_async_read(bench: Bench) -> str:
    action = bench.action()
    bench.sim.state.faults.set("get_action", malformed_next=1)
    with raises() as caught:
        asyncio.run(bench.async_hook().get_machine_action(action.id))
    return expect_clear_error(caught[0], action.id)


def _trigger_through(group_fault: dict[str, Any]) -> Callable[[Bench], str]:
    """A waiting trigger whose polls meet the fault still fires success once the action ends."""

    def run(bench: Bench) -> str:
        from airflow_provider_liveresponse.triggers.machine_action import MachineActionTrigger

        action = bench.action()
        bench.sim.state.faults.set("list_actions", **group_fault)
        trigger = MachineActionTrigger(action.id, bench.conn_id, poll_interval=0.05, end_time=time.time() + 60)

        async def first_event() -> Any:
            return await asyncio.wait_for(anext(trigger.run()), timeout=60)

        event = asyncio.run(first_event())
        expect(event.payload["status"] == "success", f"the trigger sent {event.payload['status']}")
        return "the failed polls were retried; the trigger fired success"

    return run


def _unknown_fields(bench: Bench) -> str:
    action = bench.action()
    hook = bench.hook()
    found = hook.get_machine_action(action.id)
    listed = hook.list_machine_actions(action_ids=[action.id])
    extra = set(found.model_extra or {}) | set(found.commands[0].model_extra or {})
    expect({"actionRegion", "hostOutputTruncated"} <= extra, f"unknown fields kept: {sorted(extra)}")
    expect(listed[0].last_update_date_time_utc is not None, "the list's lastUpdateTimeUtc was not read")
    return f"kept {sorted(extra)}; read the list's lastUpdateTimeUtc"


CASES: tuple[Case, ...] = (
    Case("429 with Retry-After", "get_machine_action", "success, waits as told", _throttled_with_retry_after),
    Case("429 without Retry-After", "get_machine_action", "success after backoff", _throttled_without_retry_after),
    Case("429 past the retry budget", "get_machine_action", "clear LiveResponseApiError", _throttled_past_the_budget),
    Case("HTTP 500", "get_machine_action", "success after retry", _server_error(500)),
    Case("HTTP 502", "get_machine_action", "success after retry", _server_error(502)),
    Case("HTTP 503", "get_machine_action", "success after retry", _server_error(503)),
    Case("HTTP 503 persisting", "get_machine_action", "clear LiveResponseApiError", _server_error_persisting),
    Case("connection reset", "get_machine_action", "success after retry", _reset_on_read),
    Case("connection reset", "run_live_response", "success, one action", _reset_on_submit),
    Case("answer lost after commit", "run_live_response", "success, one action", _commit_then_drop),
    Case("slow answer (once)", "get_machine_action", "success after a timeout", _slow_answer),
    Case("slow answer (always)", "get_machine_action", "clear LiveResponseApiError", _slow_answer_persisting),
    Case("401 after token expiry", "get_machine_action", "new token, success", _token_expired),
    Case("401 twice", "get_machine_action", "clear LiveResponseApiError", _token_refused_twice),
    Case("token endpoint 503", "list_machine_actions", "clear LiveResponseAuthError", _token_endpoint_error),
    Case("token endpoint 429", "list_machine_actions", "clear LiveResponseAuthError", _token_endpoint_throttled),
    Case("token endpoint reset", "list_machine_actions", "clear LiveResponseAuthError", _token_endpoint_reset),
    Case("403 on an expired link", "ResultReader", "new link, resume, SHA-256", _expired_link_during_download),
    Case("429 on the link", "get_result_download_link", "success, waits as told", _link_throttled),
    Case("malformed JSON", "get_machine_action", "clear LiveResponseApiError", _malformed_read),
    Case("malformed JSON", "list_machine_actions", "clear LiveResponseApiError", _malformed_listing),
    Case("malformed JSON", "async get_machine_action", "clear LiveResponseApiError", _malformed_async_read),
    Case("malformed JSON", "MachineActionTrigger", "retried, success", _trigger_through({"malformed_next": 2})),
    Case("HTTP 503", "MachineActionTrigger", "retried, success", _trigger_through({"fail_next": 1})),
    Case("unknown fields", "get / list machine actions", "parsed, fields kept", _unknown_fields),
)


def run_case(case: Case, sim: Simulator, conn_id: str) -> str:
    """Run one case on ``sim`` (faults cleared before and after); returns what happened, raises CaseFailed."""
    sim.state.faults.clear()
    bench = Bench(sim, conn_id)
    try:
        return case.run(bench)
    finally:
        sim.state.faults.clear()


def campaign_simulator(conn_id: str) -> contextlib.AbstractContextManager[Simulator]:
    """A simulator for the campaign: fast, with limits raised so that only the armed faults get in the way."""

    @contextlib.contextmanager
    def make() -> Iterator[Simulator]:
        with running_simulator(conn_id, speed=SPEED, token_lifetime=TOKEN_LIFETIME) as sim:
            sim.state.set_limits(run_calls_per_minute=100_000, concurrent_sessions=1_000)
            sim.state.set_limits(read_calls_per_minute=100_000, read_calls_per_hour=1_000_000)
            yield sim

    return make()
