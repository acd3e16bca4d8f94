"""LiveResponseAsyncHook: the read and cancel calls of the MDE API for triggers, on aiohttp.

Same connection, token provider, retry policy and errors as :class:`LiveResponseHook`; the connection is
read with ``aget_connection`` and msal runs in a worker thread, so nothing blocks the triggerer's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseHook

from airflow_provider_liveresponse.auth import token_provider_for
from airflow_provider_liveresponse.connection import ConnectionSettings
from airflow_provider_liveresponse.constants import CONN_TYPE, DEFAULT_CONN_ID, HOOK_NAME, USER_AGENT
from airflow_provider_liveresponse.exceptions import LiveResponseApiError
from airflow_provider_liveresponse.hooks.live_response import validate_action_id
from airflow_provider_liveresponse.hooks.responses import entity, items, json_object, next_link
from airflow_provider_liveresponse.hooks.retry_policy import (
    TRANSIENT_STATUSES,
    RetryPolicy,
    RetryState,
    api_error,
    parse_retry_after,
)
from airflow_provider_liveresponse.models import MachineAction
from airflow_provider_liveresponse.secrets import mask

if TYPE_CHECKING:
    from collections.abc import Sequence

    import aiohttp

    from airflow_provider_liveresponse.auth import TokenProvider

log = logging.getLogger(__name__)


class LiveResponseAsyncHook(BaseHook):
    """Async counterpart of :class:`LiveResponseHook` for triggers: get, list and cancel machine actions.

    :param mde_conn_id: the ``mde_live_response`` connection.
    :param max_retry_wait: total seconds one call may wait between retries.
    :param max_throttle_wait: seconds of that budget one call may spend on 429s (None: all of it; 0: raise at once).
    :param max_attempts: attempts for transient errors.
    :param timeout: total seconds for one request.
    """

    conn_name_attr = "mde_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(
        self,
        mde_conn_id: str = DEFAULT_CONN_ID,
        *,
        max_retry_wait: float = 600.0,
        max_throttle_wait: float | None = None,
        max_attempts: int = 6,
        timeout: float = 120.0,
    ) -> None:
        super().__init__()
        self.mde_conn_id = mde_conn_id
        self.retry_policy = RetryPolicy(
            max_retry_wait=max_retry_wait, max_throttle_wait=max_throttle_wait, max_attempts=max_attempts
        )
        self.timeout = timeout
        self._settings: ConnectionSettings | None = None
        self._ssl: ssl.SSLContext | None = None
        self.calls = 0

    async def settings(self) -> ConnectionSettings:
        """The validated connection settings, read without blocking the event loop."""
        if self._settings is None:
            conn = await self.aget_connection(self.mde_conn_id)
            settings = await asyncio.to_thread(ConnectionSettings.from_connection, conn)
            mask(settings.client_secret)
            mask(settings.certificate_pem)
            # Loading a CA bundle takes a while: off the triggerer's event loop too.
            self._ssl = await asyncio.to_thread(ssl.create_default_context, cafile=settings.ca_bundle)
            self._settings = settings
        return self._settings

    def _ssl_context(self, settings: ConnectionSettings) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=settings.ca_bundle)
        return self._ssl

    async def _tokens(self) -> TokenProvider:
        return token_provider_for(await self.settings())

    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        ok: Sequence[int] = (200,),
        action_id: str | None = None,
    ) -> dict[str, Any]:
        """One API call with auth, 401 refresh, 429 and transient retries; returns the parsed JSON object."""
        import aiohttp

        settings = await self.settings()
        tokens = await self._tokens()
        url = path if path.startswith("https://") else f"{settings.api_url}/{path.lstrip('/')}"
        shown_path = urlsplit(url).path
        state = RetryState(self.retry_policy)
        refreshed = False
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT}) as session:
            while True:
                token = await asyncio.to_thread(tokens.token)
                try:
                    status, headers, body = await self._send(
                        session, method, url, token, params, json_body, self._ssl_context(settings)
                    )
                except (aiohttp.ClientError, TimeoutError) as exc:
                    await self._wait_transient(state, type(exc).__name__, what, method, shown_path, action_id)
                    continue
                if status in ok:
                    try:
                        payload = _loads(body)
                    except ValueError:
                        raise LiveResponseApiError(
                            f"{what}: MDE answered HTTP {status} with a body that is not JSON; rerun later",
                            status=status,
                            method=method,
                            path=shown_path,
                            action_id=action_id,
                        ) from None
                    return json_object(payload, what, status=status, path=shown_path)
                if status == 401 and not refreshed:
                    tokens.invalidate(token)
                    refreshed = True
                    continue
                if status == 429:
                    retry_after = parse_retry_after(headers.get("Retry-After"))
                    delay = state.wait_for_throttle(retry_after)
                    if delay is not None:
                        log.warning("MDE throttled %s %s (429); waiting %.1f s", method, shown_path, delay)
                        await asyncio.sleep(delay)
                        continue
                elif status in TRANSIENT_STATUSES:
                    await self._wait_transient(
                        state, f"HTTP {status}", what, method, shown_path, action_id, status, headers, body
                    )
                    continue
                raise api_error(
                    f"{what} failed",
                    status=status,
                    body=body,
                    headers=headers,
                    method=method,
                    path=shown_path,
                    action_id=action_id,
                )

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        token: str,
        params: dict[str, Any] | None,
        json_body: Any,
        ssl_context: ssl.SSLContext,
    ) -> tuple[int, dict[str, str], bytes]:
        self.calls += 1
        async with session.request(
            method,
            url,
            params=params,
            json=json_body,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            ssl=ssl_context,
        ) as response:
            body = await response.read()
            return response.status, dict(response.headers), body

    async def _wait_transient(
        self,
        state: RetryState,
        reason: str,
        what: str,
        method: str,
        path: str,
        action_id: str | None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> None:
        delay = state.wait_for_transient(reason)
        if delay is None:
            if status is not None:
                raise api_error(
                    f"{what} kept failing after {state.transient_attempts} attempts",
                    status=status,
                    body=body,
                    headers=headers or {},
                    method=method,
                    path=path,
                    action_id=action_id,
                )
            raise LiveResponseApiError(
                f"{what} failed: MDE did not answer ({reason}) after {state.transient_attempts} attempts. What to "
                "do: rerun the task later; if it persists, check the network path to the connection's api_url",
                method=method,
                path=path,
                action_id=action_id,
            )
        log.warning("%s %s failed (%s); retrying in %.1f s", method, path, reason, delay)
        await asyncio.sleep(delay)

    async def get_machine_action(self, action_id: str) -> MachineAction:
        """The machine action ``action_id``."""
        action_id = validate_action_id(action_id)
        data = await self._request(
            "GET",
            f"api/machineactions/{quote(action_id)}",
            what=f"Reading machine action {action_id}",
            action_id=action_id,
        )
        return entity(MachineAction, data, f"Reading machine action {action_id}", action_id=action_id)

    async def get_machine_actions(self, action_ids: Sequence[str]) -> dict[str, MachineAction]:
        """Several machine actions in as few calls as possible (``id in (...)``, paged)."""
        ids = [validate_action_id(a, "action_ids[]") for a in dict.fromkeys(action_ids)]
        found: dict[str, MachineAction] = {}
        for start in range(0, len(ids), 100):
            batch = ids[start : start + 100]
            quoted = ", ".join("'" + a.replace("'", "''") + "'" for a in batch)
            url: str = "api/machineactions"
            params: dict[str, Any] | None = {"$filter": f"id in ({quoted})", "$top": len(batch)}
            while True:
                what = "Reading machine actions"
                payload = await self._request("GET", url, what=what, params=params)
                for item in items(payload, what):
                    action = entity(MachineAction, item, what)
                    found[action.id] = action
                link = next_link(payload, what)
                if not link:
                    break
                url, params = await self._same_host(link), None
        return found

    async def _same_host(self, link: str) -> str:
        api = urlsplit((await self.settings()).api_url)
        target = urlsplit(link)
        if (target.scheme, target.netloc) != (api.scheme, api.netloc):
            raise LiveResponseApiError(
                f"MDE's paging link points at another host ({target.netloc}); refusing to send the token there"
            )
        return link

    async def cancel_machine_action(self, action_id: str, comment: str) -> MachineAction:
        """Cancel a pending or running action."""
        action_id = validate_action_id(action_id)
        data = await self._request(
            "POST",
            f"api/machineactions/{quote(action_id)}/cancel",
            what=f"Cancelling machine action {action_id}",
            json_body={"Comment": comment},
            ok=(200, 201),
            action_id=action_id,
        )
        return entity(MachineAction, data, f"Cancelling machine action {action_id}", action_id=action_id)


def _loads(body: bytes) -> Any:
    import json

    return json.loads(body)
