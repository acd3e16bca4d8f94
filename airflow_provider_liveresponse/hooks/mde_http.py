"""MdeHttpHook: HttpHook for the MDE API: the connection, the session, the token, and the request loop.

:class:`~airflow_provider_liveresponse.hooks.live_response.LiveResponseHook` builds its API calls on it. It
keeps what :class:`~airflow.providers.http.hooks.http.HttpHook` gives (connection handling, the adapter and
TCP keep-alive set-up, ``url_from_endpoint``, the generic ``run``) and puts the call protocol
(:mod:`~airflow_provider_liveresponse.hooks.protocol`) underneath: every request, ``run``'s included, carries a
fresh bearer token, is verified against the connection's CA bundle, and is retried, renewed or refused as the
protocol decides. The connection's login and extras are Entra credentials and settings: never Basic auth or
HTTP headers, as HttpHook would make of them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests
from airflow.providers.http.hooks.http import HttpHook

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.auth import TokenProvider, VerifyingSession, token_provider_for
from airflow_provider_liveresponse.connection import ConnectionSettings
from airflow_provider_liveresponse.constants import DEFAULT_CONN_ID
from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.hooks import odata
from airflow_provider_liveresponse.hooks.protocol import (
    Action,
    AmbiguousCall,
    Answer,
    Call,
    CallProtocol,
    NoAnswer,
    resend_step,
)
from airflow_provider_liveresponse.hooks.retry_policy import RetryPolicy, RetryState, api_error, parse_retry_after
from airflow_provider_liveresponse.secrets import mask

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from airflow_provider_liveresponse.hooks.submission_turns import SubmissionTurns

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Methods whose calls may be sent again after a lost answer (HttpHook's generic ``run``).
_IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE"})


def _timeout(value: Any) -> float | tuple[float, float]:
    """requests' timeout: seconds, or a (connect, read) pair of seconds."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise LiveResponseConfigError(f"timeout {value!r} must be seconds or a (connect, read) pair of seconds")
        return validation.duration(value[0], "timeout (connect)"), validation.duration(value[1], "timeout (read)")
    return validation.duration(value, "timeout")


def connection_form_widgets() -> dict[str, Any]:
    """Extra fields of the connection form, for Airflow versions that read them from the hook (3.1)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import PasswordField, StringField

    from airflow_provider_liveresponse.get_provider_info import CONN_FIELDS

    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        sensitive = spec["schema"].get("format") == "password"
        field_class = PasswordField if sensitive else StringField
        widget = BS3PasswordFieldWidget() if sensitive else BS3TextFieldWidget()
        widgets[name] = field_class(
            lazy_gettext(spec["label"]),
            widget=widget,
            description=spec.get("description"),
            default=spec["schema"].get("default"),
        )
    return widgets


def ui_field_behaviour() -> dict[str, Any]:
    """Hidden and relabelled standard fields of the connection form."""
    from airflow_provider_liveresponse.get_provider_info import UI_FIELD_BEHAVIOUR

    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


class MdeHttpHook(HttpHook):
    """HttpHook with MDE's auth, retries and errors under every request; see the module's docstring.

    :param mde_conn_id: the ``mde_live_response`` connection.
    :param max_retry_wait: total seconds one call may wait between retries (429 and transient errors).
    :param max_throttle_wait: seconds of that budget one call may spend on 429s (None: all of it; 0: raise at once).
    :param max_attempts: attempts for transient errors (5xx, resets, timeouts).
    :param timeout: requests' (connect, read) timeout in seconds.
    :param sleep: how the hook waits between attempts (tests hand in one that does not sleep).
    """

    def __init__(
        self,
        mde_conn_id: str = DEFAULT_CONN_ID,
        *,
        max_retry_wait: float = 600.0,
        max_throttle_wait: float | None = None,
        max_attempts: int = 6,
        timeout: float | tuple[float, float] = (10.0, 120.0),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        mde_conn_id = validation.conn_id(mde_conn_id)
        self.retry_policy = RetryPolicy(
            max_retry_wait=max_retry_wait, max_throttle_wait=max_throttle_wait, max_attempts=max_attempts
        )
        self.timeout = _timeout(timeout)
        self._settings: ConnectionSettings | None = None
        super().__init__(method="GET", http_conn_id=mde_conn_id)
        self.mde_conn_id = mde_conn_id
        self._sleep = sleep
        self._session: requests.Session | None = None
        self._blob_session: requests.Session | None = None
        self._turns: SubmissionTurns | None = None

    # -- connection, session, token ---------------------------------------------------------------------

    @property
    def settings(self) -> ConnectionSettings:
        """The validated connection settings (read once per hook)."""
        if self._settings is None:
            settings = ConnectionSettings.from_connection(self.get_connection(self.mde_conn_id))
            mask(settings.client_secret)
            mask(settings.certificate_pem)
            self._settings = settings
        return self._settings

    @property  # type: ignore[override]
    def base_url(self) -> str:
        """The API's URL, from the connection (HttpHook's ``url_from_endpoint`` and adapters read it)."""
        return self.settings.api_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        # HttpHook.__init__ sets "" before any connection is read; the URL always comes from the connection.
        if value and value != (self._settings.api_url if self._settings else None):
            raise LiveResponseConfigError(f"base_url {value!r}: set the connection's api_url instead")

    @property
    def submission_turns(self) -> SubmissionTurns | None:
        """The deployment's shared submission turns (the connection's ``submission_limiter_conn_id``), or None."""
        if self._turns is None and self.settings.submission_limiter_conn_id is not None:
            from airflow_provider_liveresponse.hooks.submission_turns import SubmissionTurns, engine_for

            conn_id = self.settings.submission_limiter_conn_id
            self._turns = SubmissionTurns(
                engine_for(conn_id),
                self.settings.tenant_key,
                speed=self.settings.simulator_speed,
                sleep=self._sleep,
                where=f"the submission limiter database (connection {conn_id!r})",
            )
        return self._turns

    @property
    def tokens(self) -> TokenProvider:
        """The process-wide token provider of this connection's identity."""
        return token_provider_for(self.settings)

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The hook's requests session for the MDE API, made once: HttpHook's adapters (TCP keep-alive),
        ``Accept: application/json``, the provider's User-Agent, and TLS verified per request."""
        if self._session is None:
            session = VerifyingSession(self.settings.verify, self.timeout)
            session.headers["Accept"] = "application/json"
            self._session = self._configure_session_from_mount_adapters(session)
        if headers:
            self._session.headers.update(headers)
        return self._session

    def _blob(self) -> requests.Session:
        """A session for the blob host: no Authorization header, ever."""
        if self._blob_session is None:
            self._blob_session = VerifyingSession(self.settings.verify, self.timeout)
        return self._blob_session

    # -- HttpHook's generic calls -----------------------------------------------------------------------

    def run(
        self,
        endpoint: str | None = None,
        data: dict[str, Any] | str | None = None,
        headers: dict[str, Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> requests.Response:
        """HttpHook's generic call (``self.method`` on an API path), with this hook's auth, retries and errors.

        ``data`` becomes the query string of a GET (or DELETE) and the JSON body otherwise.
        """
        if isinstance(data, dict) and self.method not in ("GET", "HEAD"):
            request_kwargs.setdefault("params" if self.method == "DELETE" else "json", data)
            data = None
        response: requests.Response = super().run(endpoint, data, headers, extra_options, **request_kwargs)
        return response

    def run_and_check(
        self, session: requests.Session, prepped_request: requests.PreparedRequest, extra_options: dict[Any, Any]
    ) -> requests.Response:
        """Send HttpHook's prepared request through the call protocol (token, retries, clear errors)."""
        method = prepped_request.method or self.method
        path = urlsplit(prepped_request.url or "").path
        call = Call(f"{method} {path or '/'}", method, path, frozenset(range(200, 300)), method in _IDEMPOTENT)
        return self._exchange(session, prepped_request, call)

    def run_with_advanced_retry(self, _retry_args: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        """HttpHook's tenacity retry of ``run``, as the only retry: meanwhile each try is a single attempt
        (a first 401 still renews the token; 429s and transient errors raise for tenacity to judge)."""
        own = self.retry_policy
        self.retry_policy = dataclasses.replace(own, max_attempts=1, max_throttle_wait=0.0)
        try:
            return super().run_with_advanced_retry(_retry_args, *args, **kwargs)
        finally:
            self.retry_policy = own

    def check_response(self, response: requests.Response) -> None:
        """Raise on an error status without logging the body (which may hold a result link)."""
        if response.status_code >= 400:
            raise api_error(
                "MDE answered with an error",
                status=response.status_code,
                body=response.content,
                headers=response.headers,
                method=response.request.method or "",
                path=urlsplit(response.url).path,
            )

    # -- the request loop -------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        files: Any = None,
        data: Any = None,
        json_body: Any = None,
        ok: Iterable[int] = (200,),
        idempotent: bool = True,
        action_id: str | None = None,
        machine_id: str | None = None,
        state: RetryState | None = None,
        paced: bool = False,
    ) -> requests.Response:
        """Send one API call (a path, or an https URL on the API's host) through the call protocol; a ``paced``
        call (a submission) takes a turn of the deployment's :attr:`submission_turns` before each attempt."""
        url = odata.api_url(self.base_url, path)
        session = self.get_conn()
        request = requests.Request(method, url, params=params, json=json_body, files=files, data=data)
        call = Call(what, method, urlsplit(url).path, frozenset(ok), idempotent, action_id, machine_id)
        return self._exchange(session, session.prepare_request(request), call, state, paced)

    def _request_json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        action_id: str | None = None,
        machine_id: str | None = None,
        **request: Any,
    ) -> dict[str, Any]:
        """:meth:`_request`, and the answer's JSON object (a clear error when it is not one)."""
        response = self._request(method, path, what=what, action_id=action_id, machine_id=machine_id, **request)
        call = Call(what, method, urlsplit(response.url).path, action_id=action_id, machine_id=machine_id)
        return call.payload(Answer(response.status_code, response.headers, response.content))

    def _exchange(
        self,
        session: requests.Session,
        prepped: requests.PreparedRequest,
        call: Call,
        state: RetryState | None = None,
        paced: bool = False,
    ) -> requests.Response:
        """Attempt ``prepped`` until the call protocol returns the answer or raises."""
        protocol = CallProtocol(call, self.retry_policy, state)
        turns = self.submission_turns if paced else None
        # ``verify`` is the connection's, whatever REQUESTS_CA_BUNDLE says; proxies come from the environment.
        options = session.merge_environment_settings(prepped.url, {}, None, self.settings.verify, None)
        while True:
            token = self.tokens.token()
            prepped.headers["Authorization"] = f"Bearer {token}"
            if turns is not None:
                turns.take(call.what)
            response, outcome = self._attempt(session, prepped, options)
            if turns is not None and isinstance(outcome, Answer) and outcome.status == 429:
                turns.throttled(call.what, parse_retry_after(outcome.headers.get("Retry-After")))
            step = protocol.decide(outcome)
            if step.action is Action.RETURN and response is not None:
                return response
            step.log()
            if step.action is Action.RENEW_TOKEN:
                self.tokens.invalidate(token)
            elif step.action is Action.WAIT:
                self._sleep(step.seconds)
            else:
                step.raise_error()

    def _attempt(
        self, session: requests.Session, prepped: requests.PreparedRequest, options: Any
    ) -> tuple[requests.Response | None, Answer | NoAnswer]:
        try:
            response = session.send(prepped, timeout=self.timeout, allow_redirects=True, **options)
        except requests.Timeout:
            return None, NoAnswer(NoAnswer.TIMEOUT)
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            return None, NoAnswer(NoAnswer.CONNECTION)
        answer = Answer(response.status_code, response.headers, response.content)
        response.close()
        return response, answer

    def _submit(self, send: Callable[[RetryState], T], reconcile: Callable[[], T | None], what: str) -> T:
        """Run a non-idempotent call; after an ambiguous failure, reconcile before sending again."""
        state = RetryState(self.retry_policy)
        while True:
            try:
                return send(state)
            except AmbiguousCall as exc:
                found = reconcile()
                if found is not None:
                    log.warning(
                        "%s: the answer was lost (%s) but MDE had carried it out; reusing the result", what, exc.reason
                    )
                    return found
                step = resend_step(state, what, exc.reason)
                step.log()
                if step.action is not Action.WAIT:
                    step.raise_error()
                self._sleep(step.seconds)
