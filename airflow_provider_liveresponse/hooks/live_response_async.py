"""LiveResponseAsyncHook: the read and cancel calls of the MDE API for triggers, on aiohttp.

Same connection, token provider, call protocol (:mod:`~airflow_provider_liveresponse.hooks.protocol`), OData
paging (:mod:`~airflow_provider_liveresponse.hooks.odata`) and errors as :class:`LiveResponseHook`; the
connection is read with ``aget_connection`` and msal runs in a worker thread, so nothing blocks the triggerer's
event loop.

It is not built on :class:`~airflow.providers.http.hooks.http.HttpAsyncHook`: that hook sends a connection's
login as Basic auth and its extras as headers (here they are Entra credentials, a certificate among them), binds
a session to one method, and retries with tenacity on top of its caller; this one needs none of that.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseHook

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.auth import token_provider_for
from airflow_provider_liveresponse.connection import ConnectionSettings
from airflow_provider_liveresponse.constants import CONN_TYPE, DEFAULT_CONN_ID, HOOK_NAME, USER_AGENT
from airflow_provider_liveresponse.exceptions import LiveResponseApiError
from airflow_provider_liveresponse.hooks import odata
from airflow_provider_liveresponse.hooks.protocol import Action, Answer, Call, CallProtocol, NoAnswer
from airflow_provider_liveresponse.hooks.responses import already_ended, entity
from airflow_provider_liveresponse.hooks.retry_policy import RetryPolicy
from airflow_provider_liveresponse.models import MachineAction
from airflow_provider_liveresponse.secrets import mask

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    import aiohttp

log = logging.getLogger(__name__)


class LiveResponseAsyncHook(BaseHook):
    """Async counterpart of :class:`LiveResponseHook` for triggers: get, list and cancel machine actions.

    :param mde_conn_id: the ``mde_live_response`` connection.
    :param timeout: total seconds for one request.
    :param max_retry_wait: total seconds one call may wait between retries.
    :param max_throttle_wait: seconds of that budget one call may spend on 429s (None: all of it; 0: raise at once).
    :param max_attempts: attempts for transient errors.
    :param sleep: how the hook waits between attempts (tests hand in one that does not sleep).
    """

    conn_name_attr = "mde_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(
        self,
        mde_conn_id: str = DEFAULT_CONN_ID,
        *,
        timeout: float = 120.0,
        max_retry_wait: float = 600.0,
        max_throttle_wait: float | None = None,
        max_attempts: int = 6,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        mde_conn_id = validation.conn_id(mde_conn_id)
        self.timeout = validation.duration(timeout, "timeout")
        self.retry_policy = RetryPolicy(
            max_retry_wait=max_retry_wait, max_throttle_wait=max_throttle_wait, max_attempts=max_attempts
        )
        super().__init__()
        self.mde_conn_id = mde_conn_id
        self._sleep = sleep
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

    async def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        ok: Sequence[int] = (200,),
        action_id: str | None = None,
        machine_id: str | None = None,
    ) -> dict[str, Any]:
        """One API call through the call protocol; returns the answer's JSON object."""
        import aiohttp

        settings = await self.settings()
        tokens = token_provider_for(settings)
        url = odata.api_url(settings.api_url, path)
        call = Call(what, method, urlsplit(url).path, frozenset(ok), True, action_id, machine_id)
        protocol = CallProtocol(call, self.retry_policy)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT}) as session:
            while True:
                token = await asyncio.to_thread(tokens.token)
                sending = self._send(session, method, url, token, params, json_body, self._ssl_context(settings))
                outcome = await self._attempt(sending)
                step = protocol.decide(outcome)
                if step.action is Action.RETURN and isinstance(outcome, Answer):
                    return call.payload(outcome)
                step.log()
                if step.action is Action.RENEW_TOKEN:
                    tokens.invalidate(token)
                elif step.action is Action.WAIT:
                    await self._sleep(step.seconds)
                else:
                    step.raise_error()

    @staticmethod
    async def _attempt(sending: Awaitable[tuple[int, dict[str, str], bytes]]) -> Answer | NoAnswer:
        """The outcome of one :meth:`_send`: its answer, or why there was none."""
        import aiohttp

        try:
            status, headers, body = await sending
        except TimeoutError:
            return NoAnswer(NoAnswer.TIMEOUT)
        except aiohttp.ClientError:
            return NoAnswer(NoAnswer.CONNECTION)
        return Answer(status, headers, body)

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

    async def get_machine_action(self, action_id: str) -> MachineAction:
        """The machine action ``action_id``."""
        action_id = validation.action_id(action_id)
        what = f"Reading machine action {action_id}"
        data = await self._request("GET", f"api/machineactions/{quote(action_id)}", what=what, action_id=action_id)
        return entity(MachineAction, data, what, action_id=action_id)

    async def get_machine_actions(self, action_ids: Sequence[str]) -> dict[str, MachineAction]:
        """Several machine actions in as few calls as possible (``id in (...)``, paged)."""
        if isinstance(action_ids, (list, tuple)) and not action_ids:
            return {}
        ids = validation.text_list(action_ids, "action_ids", validation.action_id)
        base = (await self.settings()).api_url
        what = "Listing machine actions"
        found: dict[str, MachineAction] = {}
        for batch in odata.batches(ids):
            pages = odata.Pages("api/machineactions", odata.query([odata.ids_in(batch)], len(batch)), what)
            while pages.url:
                payload = await self._request("GET", pages.url, what=what, params=pages.params)
                for item in pages.read(payload, base):
                    action = entity(MachineAction, item, what)
                    found[action.id] = action
        return found

    async def cancel_machine_action(self, action_id: str, comment: str) -> MachineAction:
        """Cancel a pending or running action; cancelling an action that already ended is not an error."""
        action_id = validation.action_id(action_id)
        comment = validation.text(comment, "comment", hint="why the action is cancelled (audit trail)")
        what = f"Cancelling machine action {action_id}"
        path = f"api/machineactions/{quote(action_id)}/cancel"
        try:
            data = await self._request(
                "POST", path, what=what, json_body={"Comment": comment}, ok=(200, 201), action_id=action_id
            )
        except LiveResponseApiError as exc:
            if exc.status != 400:
                raise
            return already_ended(exc, await self.get_machine_action(action_id))
        return entity(MachineAction, data, what, action_id=action_id)
