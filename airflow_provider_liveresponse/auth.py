"""Access tokens for the MDE API from Microsoft Entra ID, through msal's client-credentials flow.

One token provider serves every hook of the same identity in a process, so a worker or a triggerer fetches
one token per token lifetime however many hooks or triggers it runs.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import requests

from airflow_provider_liveresponse.constants import USER_AGENT
from airflow_provider_liveresponse.exceptions import LiveResponseAuthError
from airflow_provider_liveresponse.secrets import mask

if TYPE_CHECKING:
    from airflow_provider_liveresponse.connection import ConnectionSettings

#: Renew a token this long before it expires (or at 90% of its life, when it is shorter).
_RENEW_MARGIN_SECONDS = 300.0


class VerifyingSession(requests.Session):
    """A requests session that passes its own ``verify`` on every request.

    requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` override a session's ``verify``; passing it per
    request keeps a connection's ``ca_bundle`` in force. It also sets the provider's ``User-Agent``.
    """

    def __init__(self, verify: str | bool, timeout: float | tuple[float, float] = (10.0, 60.0)) -> None:
        super().__init__()
        self.verify = verify
        self._default_timeout = timeout
        self.headers["User-Agent"] = USER_AGENT

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["verify"] = self.verify
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._default_timeout
        return super().request(method, url, *args, **kwargs)


class TokenProvider:
    """Fetches and caches the app's access token; thread-safe; renews shortly before expiry."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._app: Any = None
        self._token: str | None = None
        self._renew_at = 0.0
        self.requests_made = 0

    def _client(self) -> Any:
        if self._app is None:
            import msal

            settings = self._settings
            credential: Any
            if settings.certificate_pem is not None:
                credential = {
                    "private_key": settings.certificate_pem,
                    "thumbprint": settings.certificate_thumbprint,
                }
            else:
                credential = settings.client_secret
            self._app = msal.ConfidentialClientApplication(
                settings.client_id,
                client_credential=credential,
                authority=settings.authority,
                http_client=VerifyingSession(settings.verify),
                # A custom authority (a sovereign or test login host) is trusted as given: no discovery call
                # to the public cloud, which such a host's network may not reach.
                instance_discovery=False if settings.custom_authority else None,
                app_name="airflow-provider-liveresponse",
            )
        return self._app

    def token(self, *, force_refresh: bool = False) -> str:
        """A valid access token; ``force_refresh`` discards the cached one (after a 401)."""
        with self._lock:
            now = time.monotonic()
            if self._token is not None and not force_refresh and now < self._renew_at:
                return self._token
            return self._fetch(now)

    def invalidate(self, token: str) -> None:
        """Forget ``token`` if it is still the cached one (the API refused it)."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self, now: float) -> str:
        app = self._client()
        # msal keeps its own cache; clear it so that a renewal really goes to the token endpoint.
        cache = app.token_cache
        for item in list(cache.search(cache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(item)
        from msal.exceptions import MsalError

        try:
            result = app.acquire_token_for_client(scopes=[self._settings.scope])
        except (requests.RequestException, ValueError) as exc:
            raise LiveResponseAuthError(
                f"Could not reach Microsoft Entra ID at {self._settings.authority} for connection "
                f"{self._settings.conn_id!r}: {type(exc).__name__}: {exc}. Check the network path to the login "
                "host, the connection's authority_url, and ca_bundle if a proxy re-signs TLS."
            ) from None
        except MsalError as exc:  # msal raises for an HTTP error without an OAuth error body (a 5xx)
            raise LiveResponseAuthError(
                f"Microsoft Entra ID failed to issue a token for connection {self._settings.conn_id!r} at "
                f"{self._settings.authority} ({exc}): a failure on Entra's side, usually brief. What to do: rerun "
                "the task; if it persists, check Entra ID's service health and the connection's authority_url."
            ) from None
        self.requests_made += 1
        token: str | None = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            error = result.get("error", "unknown_error") if isinstance(result, dict) else "unknown_error"
            description = (result.get("error_description") or "") if isinstance(result, dict) else ""
            first_line = str(description).splitlines()[0] if description else ""
            if error in _TRANSIENT_ERRORS or not isinstance(error, str):
                raise LiveResponseAuthError(
                    f"Microsoft Entra ID did not issue a token for connection {self._settings.conn_id!r} "
                    f"(client {self._settings.client_id}, tenant {self._settings.tenant_id}) because it is busy or "
                    f"throttling this tenant: {_short(error)}: {first_line}. The credentials were not rejected. What "
                    "to do: rerun the task in a few minutes; this provider asks for one token per worker process "
                    "and hour, so if it recurs look for other tools requesting tokens with the same app registration."
                )
            raise LiveResponseAuthError(
                f"Microsoft Entra ID refused a token for connection {self._settings.conn_id!r} "
                f"(client {self._settings.client_id}, tenant {self._settings.tenant_id}): {error}: {first_line}. "
                "What to do: check tenant_id, the client id (login) and the client secret or certificate "
                "thumbprint; secrets expire, so renew it on the app's 'Certificates & secrets' page."
            )
        mask(token)
        lifetime = float(result.get("expires_in") or 3600)
        self._token = token
        self._renew_at = now + max(lifetime - min(_RENEW_MARGIN_SECONDS, lifetime * 0.1), 0.0)
        return token


#: OAuth errors that say Entra is busy or throttling, not that the request or the credentials are wrong.
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


def _short(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


_PROVIDERS: dict[tuple[str, ...], TokenProvider] = {}
_PROVIDERS_LOCK = threading.Lock()


def token_provider_for(settings: ConnectionSettings) -> TokenProvider:
    """The process-wide token provider of ``settings``' identity."""
    key = settings.fingerprint()
    with _PROVIDERS_LOCK:
        provider = _PROVIDERS.get(key)
        if provider is None:
            provider = _PROVIDERS[key] = TokenProvider(settings)
        return provider


def reset_token_providers() -> None:
    """Forget every cached token provider (tests, or after rotating a secret in a long-lived process)."""
    with _PROVIDERS_LOCK:
        _PROVIDERS.clear()
