"""The simulated Microsoft Entra ID: OpenID discovery, the v2 token endpoint, and access-token checks.

Client-credentials grant with a client secret or a certificate assertion (a JWT signed with the certificate's
key, ``x5t`` or ``x5t#S256`` header, ``aud`` = token endpoint, ``iss`` = ``sub`` = client id). Errors have
Entra's shape (``error``, ``error_description`` starting with ``AADSTS<code>:``, ``error_codes``,
``timestamp``, ``trace_id``, ``correlation_id``). Access tokens are JWTs signed by the simulator; they expire
on the simulated clock, and ``expires_in`` is the lifetime in *real* seconds (simulated lifetime / speed,
rounded up).
"""

from __future__ import annotations

import base64
import math
import secrets
import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from starlette.requests import Request

    from airflow_provider_liveresponse.simulator.state import SimulatorState

GRANT_CLIENT_CREDENTIALS = "client_credentials"
ASSERTION_TYPE_JWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: API resources whose ``/.default`` scope the token endpoint accepts (every cloud of the contract).
RESOURCES = (
    "https://api.securitycenter.microsoft.com",
    "https://api.security.microsoft.com",
    "https://securitycenter.onmicrosoft.com/windowsatpservice",
    "https://api-gcc.securitycenter.microsoft.us",
    "https://api-gov.securitycenter.microsoft.us",
    "https://securitycenter.onmicrosoft.us/windowsatpservice",
    "fc780465-2017-40d4-a0c5-307022471b92",
)
ROLES = ["Machine.LiveResponse", "Machine.Read.All", "Library.Manage", "Machine.ReadWrite.All"]
_RESERVED_SCOPES = {"openid", "profile", "offline_access"}


class Identity:
    """The tenant's app registration (one client, secret and certificates) and the tokens it issued."""

    def __init__(
        self,
        state: SimulatorState,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        token_lifetime: float,
        tenant_domain: str = "contoso.onmicrosoft.com",
    ) -> None:
        self.state = state
        self.tenant_id = tenant_id
        self.tenant_domain = tenant_domain
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.authority_url = ""
        self._signing_key = secrets.token_bytes(32)
        self._generation = 0
        self._certificates: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    # -- app registration ---------------------------------------------------------------------------------------
    def register_certificate(self, certificate_pem: bytes | str) -> str:
        """Accept a certificate (public PEM) for assertions; returns its SHA-1 thumbprint (hex, upper case)."""
        data = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
        certificate = x509.load_pem_x509_certificate(data)
        sha1 = certificate.fingerprint(hashes.SHA1())  # noqa: S303 - x5t is SHA-1 by definition
        sha256 = certificate.fingerprint(hashes.SHA256())
        with self._lock:
            self._certificates[_b64url(sha1)] = certificate
            self._certificates[_b64url(sha256)] = certificate
        return sha1.hex().upper()

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far (the next API call gets 401)."""
        with self._lock:
            self._generation += 1

    # -- tokens ------------------------------------------------------------------------------------------------
    def issue_token(self, resource: str) -> dict[str, Any]:
        """A token response body for ``resource``."""
        now = self.state.clock.time()
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": now + self.token_lifetime,
            "appid": self.client_id,
            "tid": self.tenant_id,
            "roles": ROLES,
            "gen": self._generation,
            "jti": str(uuid.uuid4()),
        }
        token = jwt.encode(claims, self._signing_key, algorithm="HS256")
        expires_in = max(1, math.ceil(self.token_lifetime / self.state.clock.speed))
        return {"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}

    def check_bearer(self, authorization: str | None) -> str | None:
        """None when the header holds a valid, unexpired token; else why it is refused."""
        if not authorization:
            return "Authorization header is missing"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "Authorization header is not a Bearer token"
        try:
            claims = jwt.decode(
                token.strip(),
                self._signing_key,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_aud": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            return "Access token validation failure: invalid signature or malformed token"
        if claims.get("tid") != self.tenant_id or claims.get("aud") not in RESOURCES:
            return "Access token has an invalid audience or tenant"
        if claims.get("gen") != self._generation:
            return "Access token has been revoked"
        if float(claims.get("exp", 0)) <= self.state.clock.time():
            return "Access token has expired"
        return None

    # -- endpoints ---------------------------------------------------------------------------------------------
    def known_tenant(self, tenant: str) -> bool:
        """Whether ``tenant`` names this tenant (its id or its domain)."""
        return tenant.lower() in (self.tenant_id.lower(), self.tenant_domain.lower())

    def openid_configuration(self, tenant: str) -> JSONResponse:
        """The OpenID Connect discovery document of the tenant."""
        if not self.known_tenant(tenant):
            return self.error(400, "invalid_tenant", 90002, _unknown_tenant(tenant))
        base = f"{self.authority_url}/{self.tenant_id}"
        return JSONResponse(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "ver"],
                "kerberos_endpoint": f"{base}/kerberos",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            }
        )

    async def token(self, request: Request, tenant: str) -> JSONResponse:
        """The v2 token endpoint (client-credentials grant)."""
        form = await request.form()
        fields = {key: str(value) for key, value in form.items()}
        if not self.known_tenant(tenant):
            return self.error(400, "invalid_request", 90002, _unknown_tenant(tenant))
        grant = fields.get("grant_type", "")
        if grant != GRANT_CLIENT_CREDENTIALS:
            return self.error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'. This simulator supports client_credentials.",
            )
        client_id = fields.get("client_id", "")
        if client_id != self.client_id:
            return self.error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{self.tenant_id}'. "
                "This can happen if the application has not been installed by the administrator of the tenant or "
                "consented to by any user in the tenant. You may have sent your authentication request to the "
                "wrong tenant.",
            )
        scopes = [scope for scope in fields.get("scope", "").split() if scope not in _RESERVED_SCOPES]
        resource = _resource_of(scopes)
        if resource is None:
            return self.error(
                400,
                "invalid_scope",
                70011,
                f"The provided request must include a 'scope' input parameter. The provided value for the input "
                f"parameter 'scope' ('{fields.get('scope', '')}') is not valid. The scope requested must be a "
                "resource's '/.default' scope.",
            )
        refusal = self._check_credentials(fields)
        if refusal is not None:
            return refusal
        body = self.issue_token(resource)
        with self.state.lock:
            self.state.scopes_used.append(" ".join(scopes))
            self.state.issued_tokens.append(body["access_token"])
        return JSONResponse(body, headers={"Cache-Control": "no-store, no-cache"})

    def _check_credentials(self, fields: dict[str, str]) -> JSONResponse | None:
        secret = fields.get("client_secret")
        assertion = fields.get("client_assertion")
        if secret is not None:
            if secrets.compare_digest(secret.encode(), self.client_secret.encode()):
                return None
            return self.error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                f"value, not the client secret ID, for a secret added to app '{self.client_id}'.",
            )
        if assertion is not None:
            if fields.get("client_assertion_type") != ASSERTION_TYPE_JWT:
                return self.error(
                    400, "invalid_request", 700023, "The client_assertion_type must be " + ASSERTION_TYPE_JWT + "."
                )
            problem = self._check_assertion(assertion)
            if problem is None:
                return None
            code, description = problem
            return self.error(401, "invalid_client", code, description)
        return self.error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )

    def _check_assertion(self, assertion: str) -> tuple[int, str] | None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return 50027, "Invalid JWT token. The token is malformed."
        with self._lock:
            certificate = self._certificates.get(str(header.get("x5t#S256", "")).rstrip("=")) or self._certificates.get(
                str(header.get("x5t", "")).rstrip("=")
            )
        if certificate is None:
            return (
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on application. "
                f"[Reason - The key was not found., Thumbprint of key used by client: '{header.get('x5t', '')}'].",
            )
        token_endpoint = f"{self.authority_url}/{self.tenant_id}/oauth2/v2.0/token"
        audiences = [token_endpoint, f"{self.authority_url}/{self.tenant_domain}/oauth2/v2.0/token"]
        try:
            claims = jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256", "ES256"],
                audience=audiences,
                issuer=self.client_id,
                leeway=300,
                options={"require": ["exp", "aud", "iss"]},
            )
        except jwt.InvalidAudienceError:
            return (
                700212,
                f"No matching federated identity record found for presented assertion audience '{token_endpoint}'.",
            )
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            return 700024, "Client assertion is not within its valid time range."
        except jwt.InvalidIssuerError:
            return 700021, "Client assertion application identifier doesn't match 'client_id' parameter."
        except jwt.PyJWTError:
            return 700027, "Client assertion failed signature validation."
        if claims.get("sub", self.client_id) != self.client_id:
            return 700021, "Client assertion subject doesn't match 'client_id' parameter."
        return None

    def error(self, status: int, error: str, code: int, description: str) -> JSONResponse:
        """An Entra error response."""
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.fromtimestamp(self.state.clock.time(), tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{self.authority_url}/error?code={code}",
        }
        return JSONResponse(body, status_code=status)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unknown_tenant(tenant: str) -> str:
    return (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
        "correct cloud. Check with your subscription administrator, this may happen if there are no active "
        "subscriptions for the tenant."
    )


def _resource_of(scopes: list[str]) -> str | None:
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        return None
    resource = scopes[0][: -len("/.default")].rstrip("/")
    for known in RESOURCES:
        if resource.lower() == known.lower():
            return known
    return None
