"""The simulated Entra ID: msal against discovery and the token endpoint, error shapes, token checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msal
import pytest
import requests

from airflow_provider_liveresponse.simulator import Simulator
from tests.certificates import self_signed_certificate, sha1_thumbprint
from tests.simulator.sim_helpers import SCOPE, SimClient

if TYPE_CHECKING:
    from pathlib import Path

GCC_HIGH_SCOPE = "https://securitycenter.onmicrosoft.us/windowsatpservice/.default"


def _verifying_session(ca_file: str) -> requests.Session:
    class VerifyingSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            kwargs["verify"] = ca_file
            return super().request(*args, **kwargs)

    return VerifyingSession()


def _app(sim: Simulator, credential: Any, tenant: str | None = None) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        sim.client_id,
        client_credential=credential,
        authority=f"{sim.authority_url}/{tenant or sim.tenant_id}",
        instance_discovery=False,
        http_client=_verifying_session(str(sim.ca_file)),
    )


def _certificate() -> tuple[str, str, str]:
    """(private key PEM, certificate PEM, SHA-1 thumbprint hex) of a fresh self-signed certificate."""
    key_pem, cert_pem = self_signed_certificate()
    return key_pem, cert_pem, sha1_thumbprint(cert_pem)


def test_msal_gets_a_token_with_the_client_secret(simulator: Simulator) -> None:
    result = _app(simulator, simulator.client_secret).acquire_token_for_client(scopes=[SCOPE])

    assert result["token_type"] == "Bearer"
    assert result["access_token"]
    assert result["expires_in"] == 3600  # the fixture's lifetime is one real hour
    assert simulator.state.counters["token_requests"] == 1
    assert simulator.state.scopes_used == [SCOPE]


def test_expires_in_is_the_simulated_lifetime_in_real_seconds_rounded_up(tmp_path: Path) -> None:
    with Simulator(speed=7, token_lifetime=100, state_dir=tmp_path) as sim:
        response = SimClient(sim).fetch_token()

    assert response.json()["expires_in"] == 15
    assert response.json()["ext_expires_in"] == 15


def test_msal_reuses_its_cached_token(simulator: Simulator) -> None:
    app = _app(simulator, simulator.client_secret)
    first = app.acquire_token_for_client(scopes=[SCOPE])
    second = app.acquire_token_for_client(scopes=[SCOPE])

    assert first["access_token"] == second["access_token"]
    assert simulator.state.counters["token_requests"] == 1


@pytest.mark.parametrize("use_public_certificate", [False, True], ids=["x5t-sha1", "x5t-sha256"])
def test_msal_gets_a_token_with_a_certificate(simulator: Simulator, use_public_certificate: bool) -> None:
    key_pem, cert_pem, thumbprint = _certificate()
    assert simulator.register_certificate(cert_pem) == thumbprint.upper()
    credential: dict[str, Any] = {"private_key": key_pem}
    if use_public_certificate:
        credential["public_certificate"] = cert_pem
    else:
        credential["thumbprint"] = thumbprint

    result = _app(simulator, credential).acquire_token_for_client(scopes=[SCOPE])

    assert "access_token" in result, result
    response = requests.get(
        f"{simulator.api_url}/api/libraryfiles",
        headers={"Authorization": f"Bearer {result['access_token']}"},
        verify=simulator.ca_file,
        timeout=10,
    )
    assert response.status_code == 200


def test_an_unregistered_certificate_is_refused(simulator: Simulator) -> None:
    key_pem, _, thumbprint = _certificate()

    result = _app(simulator, {"private_key": key_pem, "thumbprint": thumbprint}).acquire_token_for_client(
        scopes=[SCOPE]
    )

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]


def test_every_issued_token_is_recorded_and_refusals_are_not(simulator: Simulator, mde: SimClient) -> None:
    first = mde.fetch_token().json()["access_token"]
    second = mde.fetch_token().json()["access_token"]
    assert mde.fetch_token(client_secret="not-the-secret").status_code == 401

    assert simulator.state.issued_tokens == [first, second]


def test_a_wrong_secret_gets_entras_invalid_client_error(simulator: Simulator) -> None:
    result = _app(simulator, "not-the-secret").acquire_token_for_client(scopes=[SCOPE])

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(result)


def test_a_wrong_tenant_fails_discovery(simulator: Simulator) -> None:
    with pytest.raises(ValueError, match="double check your tenant"):
        _app(simulator, simulator.client_secret, tenant="00000000-0000-0000-0000-000000000000")


def test_the_token_endpoint_refuses_an_unknown_tenant(mde: SimClient) -> None:
    response = mde.fetch_token(tenant="00000000-0000-0000-0000-000000000000")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_codes"] == [90002]


def test_an_unknown_client_is_unauthorized(mde: SimClient) -> None:
    response = mde.fetch_token(client_id="11111111-2222-3333-4444-555555555555")

    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert response.json()["error_codes"] == [700016]


def test_a_scope_that_is_not_a_default_scope_is_invalid(mde: SimClient) -> None:
    response = mde.fetch_token(scope="https://graph.microsoft.com/User.Read")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert response.json()["error_codes"] == [70011]


@pytest.mark.parametrize(
    "scope",
    [
        "https://api.security.microsoft.com/.default",
        "https://api-gcc.securitycenter.microsoft.us/.default",
        GCC_HIGH_SCOPE,
    ],
)
def test_every_clouds_scope_is_accepted_and_recorded(simulator: Simulator, mde: SimClient, scope: str) -> None:
    response = mde.fetch_token(scope=scope)

    assert response.status_code == 200
    assert simulator.state.scopes_used == [scope]


def test_the_discovery_document_points_at_the_simulator(simulator: Simulator, mde: SimClient) -> None:
    response = mde.session.get(
        f"{simulator.authority_url}/{simulator.tenant_id}/v2.0/.well-known/openid-configuration",
        verify=mde.verify,
        timeout=10,
    )

    document = response.json()
    assert document["token_endpoint"] == f"{simulator.authority_url}/{simulator.tenant_id}/oauth2/v2.0/token"
    assert document["issuer"] == f"{simulator.authority_url}/{simulator.tenant_id}/v2.0"
    assert document["authorization_endpoint"].startswith(simulator.authority_url)


def test_an_expired_token_gets_401(simulator: Simulator, mde: SimClient) -> None:
    assert mde.get("/api/libraryfiles").status_code == 200

    simulator.state.advance_clock(simulator.identity.token_lifetime + 1)
    response = mde.get("/api/libraryfiles", headers={"Authorization": f"Bearer {mde.token}"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Unauthorized"


@pytest.mark.parametrize(
    "header",
    [None, "Bearer forged.token.value", "Basic dXNlcjpwYXNz"],
    ids=["missing", "forged", "not-bearer"],
)
def test_requests_without_a_valid_token_get_401(mde: SimClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}

    response = mde.get("/api/machineactions", auth=False, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Unauthorized"


def test_revoked_tokens_get_401(mde: SimClient) -> None:
    assert mde.get("/api/libraryfiles").status_code == 200

    mde.control("POST", "/tokens/revoke")

    assert mde.get("/api/libraryfiles", headers={"Authorization": f"Bearer {mde.token}"}).status_code == 401
