"""Benchmark 6, token economy: token requests per 1,000 API calls made in one process.

The simulator issues one-hour tokens (simulated) and runs at a speed that makes a token live a couple of real
seconds, so several lifetimes pass during the run. 1,000 calls (machine-action reads and listings, a new
``LiveResponseHook`` every ten calls, as tasks of one worker process each make their own) are spread evenly
over that time. The simulator counts the requests to its token endpoint. The baseline row makes the same calls
the naive way: a new msal app, hence a new token, for every call.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from airflow_provider_liveresponse.testing.simulated_connection import counter, running_simulator
from benchmarks.core import Result, benchmark
from benchmarks.support import CONN_ID

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_liveresponse.simulator.server import Simulator

#: A token lives one simulated hour, as MDE's do.
TOKEN_LIFETIME = 3600.0
#: Real seconds a token lives during the benchmark (the simulator's speed follows from it).
REAL_LIFETIME = 2.0
#: New hook every this many calls.
CALLS_PER_HOOK = 10


def _one_action(sim: Simulator) -> tuple[str, str]:
    """An action to read, created on the simulator's state directly (no token spent on the setup)."""
    from airflow_provider_liveresponse.simulator.fleet import device_id
    from airflow_provider_liveresponse.simulator.lifecycle import Command

    machine = device_id("ws-0001.contoso.local")
    command = Command(index=0, type="RunScript", params=[{"key": "ScriptName", "value": "triage.ps1"}])
    action = sim.state.create_action(machine, [command], "token economy", sim.client_id)
    return action.id, machine


def _hook_calls(sim: Simulator, calls: int, duration: float) -> tuple[int, float, int]:
    """Make ``calls`` calls through LiveResponseHook spread over ``duration`` real seconds.

    Returns (token requests, simulated seconds from the first call to the last, calls that returned the action).
    """
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

    action_id, machine = _one_action(sim)
    tokens_before = counter(sim, "token_requests")
    started_real = time.monotonic()
    started_sim = sim.clock.time()
    answered = 0
    last_sim = started_sim
    hook = LiveResponseHook(CONN_ID)
    for number in range(calls):
        if number % CALLS_PER_HOOK == 0:
            hook = LiveResponseHook(CONN_ID)
        due = started_real + duration * number / calls
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        last_sim = sim.clock.time()
        if number % 2:
            found = hook.list_machine_actions(machine_id=machine, action_type="LiveResponse")
            answered += any(action.id == action_id for action in found)
        else:
            answered += hook.get_machine_action(action_id).id == action_id
    return counter(sim, "token_requests") - tokens_before, last_sim - started_sim, answered


def _naive_calls(sim: Simulator, calls: int) -> tuple[int, float, int]:
    """The same reads with a fresh msal app (and so a fresh token) per call, as a naive client does."""
    import msal
    import requests

    from airflow_provider_liveresponse.auth import VerifyingSession

    action_id, _ = _one_action(sim)
    tokens_before = counter(sim, "token_requests")
    started_sim = last_sim = sim.clock.time()
    answered = 0
    for _ in range(calls):
        last_sim = sim.clock.time()
        app = msal.ConfidentialClientApplication(
            sim.client_id,
            client_credential=sim.client_secret,
            authority=f"{sim.authority_url}/{sim.tenant_id}",
            http_client=VerifyingSession(str(sim.ca_file)),
            instance_discovery=False,
        )
        token = app.acquire_token_for_client(scopes=[sim.scope])["access_token"]
        response = requests.get(
            f"{sim.api_url}/api/machineactions/{action_id}",
            headers={"Authorization": f"Bearer {token}"},
            verify=str(sim.ca_file),
            timeout=30,
        )
        answered += response.status_code == 200
    return counter(sim, "token_requests") - tokens_before, last_sim - started_sim, answered


@benchmark(
    "tokens",
    "Token economy (6): token requests per 1,000 API calls in one process",
    sizes=(1000,),
    quick_sizes=(200,),
    sizes_mean="API calls per client",
)
def token_economy(sizes: Sequence[int], quick: bool) -> Result:
    result = Result()
    lifetimes = 3 if quick else 5
    table = result.table(
        f"Token requests; a token lives {TOKEN_LIFETIME / 3600:g} simulated hour ({REAL_LIFETIME:g} real seconds)",
        [
            "client",
            "API calls",
            "answered",
            "lifetimes elapsed",
            "at expiry",
            "token requests",
            "per 1,000 calls",
            "per lifetime",
        ],
    )
    for calls in sizes:
        with running_simulator(CONN_ID, speed=TOKEN_LIFETIME / REAL_LIFETIME, token_lifetime=TOKEN_LIFETIME) as sim:
            tokens, elapsed, answered = _hook_calls(sim, calls, lifetimes * REAL_LIFETIME)
            elapsed_lifetimes = elapsed / TOKEN_LIFETIME
            # What a client renewing exactly at expiry needs: one token per lifetime begun by the last call.
            at_expiry = math.floor(elapsed_lifetimes) + 1
            table.add(
                "LiveResponseHook (process-wide token)",
                calls,
                answered,
                f"{elapsed_lifetimes:.2f}",
                at_expiry,
                tokens,
                f"{tokens * 1000 / calls:.1f}",
                f"{tokens / elapsed_lifetimes:.2f}",
            )
            result.check(
                f"token requests for {calls} calls over {elapsed_lifetimes:.2f} lifetimes",
                str(tokens),
                f"<= {at_expiry + 1} (lifetimes begun + 1)",
                tokens <= at_expiry + 1,
            )
            result.check(f"calls answered ({calls})", str(answered), str(calls), answered == calls)

            naive_tokens, naive_elapsed, naive_answered = _naive_calls(sim, calls)
            naive_lifetimes = naive_elapsed / TOKEN_LIFETIME
            table.add(
                "baseline: a new msal app per call",
                calls,
                naive_answered,
                f"{naive_lifetimes:.2f}",
                math.floor(naive_lifetimes) + 1,
                naive_tokens,
                f"{naive_tokens * 1000 / calls:.1f}",
                f"{naive_tokens / naive_lifetimes:.2f}" if naive_lifetimes else "-",
            )
    result.notes.append(
        "the provider renews a token shortly before it expires (5 minutes early, or 10% of a shorter life), so "
        "after more than about 9 lifetimes it has asked for one token more than the lifetimes begun; 'at expiry' "
        "is what a client renewing exactly at expiry would need (one per lifetime begun by the last call)"
    )
    return result
