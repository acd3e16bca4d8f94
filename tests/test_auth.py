"""TokenProvider with the real msal against the simulator's token endpoint: msal's cache is the only one.

The provider decides when to renew from msal's own cache entry and empties it with msal's
``remove_tokens_for_client``; a clock handed in stands for the time passing, so no test waits.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import Connection

from airflow_provider_liveresponse.auth import TokenProvider, VerifyingSession, token_provider_for
from airflow_provider_liveresponse.connection import ConnectionSettings
from airflow_provider_liveresponse.exceptions import LiveResponseAuthError
from tests.certificates import self_signed_certificate

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from airflow_provider_liveresponse.simulator import Simulator


def settings_of(sim: Simulator, **extra: Any) -> ConnectionSettings:
    password = extra.pop("password", sim.client_secret)
    conn = Connection(
        conn_id="mde_auth",
        conn_type="mde_live_response",
        login=sim.client_id,
        password=password,
        extra=json.dumps({**sim.connection_extra(), **extra}),
    )
    return ConnectionSettings.from_connection(conn)


class Clock:
    """The wall clock, moved on by hand; pinned to a start (``base``) so that how long the machine takes between
    two steps of a test does not move it."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.base: float | None = None

    def __call__(self) -> float:
        return (time.time() if self.base is None else self.base) + self.offset


def cached_at(provider: TokenProvider) -> float:
    """When msal cached the provider's one access token (its wall clock, whole seconds)."""
    app = provider._client()
    cache = app.token_cache
    (entry,) = cache.search(cache.CredentialType.ACCESS_TOKEN)
    return float(entry["cached_at"])


def cached_tokens(provider: TokenProvider) -> list[str]:
    app = provider._client()
    cache = app.token_cache
    return [entry["secret"] for entry in cache.search(cache.CredentialType.ACCESS_TOKEN)]


def test_one_token_serves_every_call_while_it_is_fresh(simulator: Simulator) -> None:
    provider = TokenProvider(settings_of(simulator))
    tokens = {provider.token() for _ in range(50)}
    assert len(tokens) == 1
    assert provider.requests_made == 1
    assert simulator.state.counters["token_requests"] == 1


def test_msal_caches_the_token_and_the_provider_keeps_no_copy(simulator: Simulator) -> None:
    provider = TokenProvider(settings_of(simulator))
    token = provider.token()
    assert cached_tokens(provider) == [token]
    assert token not in {str(value) for value in vars(provider).values()}


def test_an_hour_token_is_renewed_five_minutes_before_it_expires(simulator: Simulator) -> None:
    clock = Clock()
    provider = TokenProvider(settings_of(simulator), clock=clock)  # the fixture's tokens live one real hour
    first = provider.token()
    clock.offset = 3600 - 300 - 60
    assert provider.token() == first
    clock.offset = 3600 - 300 + 1
    renewed = provider.token()
    assert renewed != first
    assert provider.requests_made == 2
    assert cached_tokens(provider) == [renewed]  # the old one is gone from msal's cache


def test_a_short_token_is_renewed_at_nine_tenths_of_its_life(simulator_factory: Callable[..., Simulator]) -> None:
    sim = simulator_factory(speed=60.0, token_lifetime=20 * 60.0)  # 20 real seconds: renewed 2 s early
    clock = Clock()
    provider = TokenProvider(settings_of(sim), clock=clock)
    first = provider.token()
    clock.base = cached_at(provider)  # a slow machine's seconds between the two calls must not count
    clock.offset = 16
    assert provider.token() == first
    clock.offset = 19
    assert provider.token() != first
    assert sim.state.counters["token_requests"] == 2


def test_a_refused_token_is_dropped_from_msals_cache(simulator: Simulator) -> None:
    provider = TokenProvider(settings_of(simulator))
    first = provider.token()
    provider.invalidate(first)
    assert cached_tokens(provider) == []
    second = provider.token()
    assert second != first
    assert simulator.state.counters["token_requests"] == 2


def test_invalidating_a_token_already_replaced_keeps_the_new_one(simulator: Simulator) -> None:
    provider = TokenProvider(settings_of(simulator))
    first = provider.token()
    second = provider.token(force_refresh=True)
    provider.invalidate(first)  # a request that still carried the first token was refused: too late to matter
    assert provider.token() == second
    assert simulator.state.counters["token_requests"] == 2


def test_hooks_of_one_identity_share_one_provider(simulator: Simulator) -> None:
    settings = settings_of(simulator)
    assert token_provider_for(settings) is token_provider_for(settings_of(simulator))
    assert token_provider_for(settings) is not token_provider_for(settings_of(simulator, password="other"))


def test_certificate_auth(simulator: Simulator, tmp_path: Path) -> None:
    key_pem, cert_pem = self_signed_certificate()
    simulator.register_certificate(cert_pem)
    pem_file = tmp_path / "app.pem"
    pem_file.write_text(key_pem + cert_pem)
    provider = TokenProvider(settings_of(simulator, password=None, certificate_path=str(pem_file)))
    assert provider.token()
    assert simulator.state.counters["token_requests"] == 1


def test_a_throttled_token_request_says_entra_is_busy(simulator: Simulator) -> None:
    simulator.state.faults.set("token", throttle_next=1)
    with pytest.raises(LiveResponseAuthError) as info:
        TokenProvider(settings_of(simulator)).token()
    assert "busy or throttling" in str(info.value)
    assert "credentials were not rejected" in str(info.value)


def test_a_wrong_secret_is_refused_naming_what_to_check(simulator: Simulator) -> None:
    with pytest.raises(LiveResponseAuthError) as info:
        TokenProvider(settings_of(simulator, password="not-the-secret")).token()
    assert "invalid_client" in str(info.value)
    assert "check tenant_id" in str(info.value)
    assert "not-the-secret" not in str(info.value)


def test_the_connections_ca_bundle_wins_over_requests_environment(
    simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import certifi

    # A bundle that does not hold the simulator's CA: requests would prefer it to a session's verify.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    settings = settings_of(simulator)
    assert TokenProvider(settings).token()
    response = VerifyingSession(settings.verify).get(f"{simulator.api_url}/api/machines")
    assert response.status_code == 401  # TLS verified against the connection's CA; no token sent
