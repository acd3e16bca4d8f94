"""Access tokens for the MDE API from Microsoft Entra ID, through msal's client-credentials flow.

One token provider serves every hook of the same identity in a process, so a worker or a triggerer fetches
one token per token lifetime however many hooks or triggers it runs. msal's token cache is the one place that
holds the token and its expiry: the provider reads the cached entry (``cached_at``, ``expires_on``) to decide
when to renew, and empties the cache with msal's own ``remove_tokens_for_client``.
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
    from collections.abc import Callable

    from airflow_provider_liveresponse.connection import ConnectionSettings

#: Renew a token this long before it expires (or at 90% of its life, when it is shorter): msal's own margin.
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
    """Fetches the app's access token through msal and serves it from msal's cache; thread-safe.

    A token is renewed :data:`_RENEW_MARGIN_SECONDS` before it expires, or at 90% of a shorter life (counted in
    whole seconds, as msal stores them), which is what msal itself does for tokens of an hour. ``clock`` is the
    wall clock msal's cache is written in (tests hand in one that has moved on).
    """

    def __init__(self, settings: ConnectionSettings, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._app: Any = None
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
        """A valid access token; ``force_refresh`` discards the cached one first."""
        with self._lock:
            app = self._client()
            cached = None if force_refresh else self._cached(app)
            if cached is not None:
                return cached
            # Whatever msal still holds is due for renewal: drop it, so msal asks Entra.
            app.remove_tokens_for_client()
            return self._fetch(app)

    def invalidate(self, token: str) -> None:
        """Forget ``token`` if msal still caches it (the API refused it)."""
        with self._lock:
            if self._app is not None and any(entry.get("secret") == token for entry in self._entries(self._app)):
                self._app.remove_tokens_for_client()

    def _entries(self, app: Any) -> list[dict[str, Any]]:
        """msal's cached access tokens of this app and scope."""
        cache = app.token_cache
        query = {"client_id": app.client_id, "home_account_id": None}
        return list(cache.search(cache.CredentialType.ACCESS_TOKEN, target=[self._settings.scope], query=query))

    def _cached(self, app: Any) -> str | None:
        """msal's cached token, while it is not yet due for renewal."""
        now = self._clock()
        for entry in self._entries(app):
            expires_on = float(entry["expires_on"])
            lifetime = expires_on - float(entry.get("cached_at", expires_on))
            if now < expires_on - min(_RENEW_MARGIN_SECONDS, float(int(lifetime * 0.1))):
                secret: str = entry["secret"]
                return secret
        return None

    def _fetch(self, app: Any) -> str:
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
        if not isinstance(result, dict) or result.get("token_source") != "cache":
            self.requests_made += 1
        token: str | None = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            raise self._refusal(result)
        mask(token)
        return token

    def _refusal(self, result: Any) -> LiveResponseAuthError:
        """The error for an answer without a token: Entra busy or throttling, or the credentials refused."""
        error = result.get("error", "unknown_error") if isinstance(result, dict) else "unknown_error"
        description = (result.get("error_description") or "") if isinstance(result, dict) else ""
        first_line = str(description).splitlines()[0] if description else ""
        settings = self._settings
        if error in _TRANSIENT_ERRORS or not isinstance(error, str):
            return LiveResponseAuthError(
                f"Microsoft Entra ID did not issue a token for connection {settings.conn_id!r} "
                f"(client {settings.client_id}, tenant {settings.tenant_id}) because it is busy or "
                f"throttling this tenant: {_short(error)}: {first_line}. The credentials were not rejected. What "
                "to do: rerun the task in a few minutes; this provider asks for one token per worker process "
                "and hour, so if it recurs look for other tools requesting tokens with the same app registration."
            )
        return LiveResponseAuthError(
            f"Microsoft Entra ID refused a token for connection {settings.conn_id!r} "
            f"(client {settings.client_id}, tenant {settings.tenant_id}): {error}: {first_line}. "
            "What to do: check tenant_id, the client id (login) and the client secret or certificate "
            "thumbprint; secrets expire, so renew it on the app's 'Certificates & secrets' page."
        )


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
