"""LiveResponseHook: the one place that knows MDE's URLs, tokens, limits and retries.

Every call returns a pydantic model from :mod:`airflow_provider_liveresponse.models`. Submitting live
response is made safe to retry: each submission carries a unique marker in its comment, and after a reset,
a timeout or a 5xx the hook looks the action up by that marker before it ever submits again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from airflow.providers.http.hooks.http import HttpHook

from airflow_provider_liveresponse.auth import TokenProvider, VerifyingSession, token_provider_for
from airflow_provider_liveresponse.connection import EXTRA_FIELDS, ConnectionSettings
from airflow_provider_liveresponse.constants import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    HOOK_NAME,
    LIBRARY_FILE_MAX_BYTES,
)
from airflow_provider_liveresponse.exceptions import LiveResponseApiError, LiveResponseConfigError
from airflow_provider_liveresponse.hooks.action_workflow import ActionWorkflowMixin
from airflow_provider_liveresponse.hooks.responses import entity, items, json_object, next_link
from airflow_provider_liveresponse.hooks.result_reader import ResultReader
from airflow_provider_liveresponse.hooks.retry_policy import (
    TRANSIENT_STATUSES,
    RetryPolicy,
    RetryState,
    api_error,
    parse_retry_after,
)
from airflow_provider_liveresponse.markers import (
    carries_marker,
    carries_marker_family,
    check_marker,
    marked_comment,
    marker_tag,
)
from airflow_provider_liveresponse.models import (
    LibraryFile,
    Machine,
    MachineAction,
    RunLiveResponseRequest,
    ScriptTranscript,
    check_library_file_name,
    parse_commands,
)
from airflow_provider_liveresponse.secrets import mask, mask_link, redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from airflow_provider_liveresponse.models import Command

log = logging.getLogger(__name__)

T = TypeVar("T")

_MACHINE_ID = re.compile(r"^[0-9a-fA-F]{40}$")
_ACTION_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z\-]{7,127}$")
_MAX_TRANSCRIPT_BYTES = 64 * 1024 * 1024
#: How far back a marker look-up searches: a bit more than the longest a submit can take to be retried.
_MARKER_LOOKBACK = timedelta(hours=6)


def validate_machine_id(machine_id: Any, field: str = "machine_id") -> str:
    """A 40-hex-character MDE device id, or a clear error naming ``field``."""
    if not isinstance(machine_id, str) or not _MACHINE_ID.match(machine_id.strip()):
        raise LiveResponseConfigError(
            f"{field} {machine_id!r} is not an MDE device id (40 hexadecimal characters, as in the device "
            "page's URL); to start from a host name, look it up with find_machines(computer_dns_name=...)"
        )
    return machine_id.strip().lower()


def validate_action_id(action_id: Any, field: str = "action_id") -> str:
    """A machine action id, or a clear error naming ``field``."""
    if not isinstance(action_id, str) or not _ACTION_ID.match(action_id.strip()):
        raise LiveResponseConfigError(
            f"{field} {action_id!r} is not an MDE machine action id (a GUID such as "
            "'7c1d4ea0-...'); pass the id returned by LiveResponseOperator (XCom key 'action_id')"
        )
    return action_id.strip()


def _odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _odata_datetime(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Ambiguous(Exception):
    """A non-idempotent request may or may not have been carried out (reset, timeout or 5xx)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LiveResponseHook(ActionWorkflowMixin, HttpHook):
    """Talks to the Microsoft Defender for Endpoint Live Response API through an ``mde_live_response``
    connection.

    :param mde_conn_id: the Airflow connection: login = application (client) id, password = client secret,
        extras ``tenant_id``, ``cloud``, ``api_url``, ``authority_url``, ``certificate_path`` /
        ``certificate_pem`` + ``certificate_thumbprint``, ``ca_bundle``.
    :param max_retry_wait: total seconds one call may wait between retries (429 and transient errors).
    :param max_throttle_wait: seconds of that budget one call may spend on 429s (None: all of it; 0: raise at once).
    :param max_attempts: attempts for transient errors (5xx, resets, timeouts).
    :param timeout: requests' (connect, read) timeout in seconds.
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
        timeout: float | tuple[float, float] = (10.0, 120.0),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(method="GET", http_conn_id=mde_conn_id)
        self.mde_conn_id = mde_conn_id
        self.retry_policy = RetryPolicy(
            max_retry_wait=max_retry_wait, max_throttle_wait=max_throttle_wait, max_attempts=max_attempts
        )
        self.timeout = timeout
        self._sleep = sleep
        self._settings: ConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._blob_session: requests.Session | None = None

    # -- connection form (Airflow 3.1; 3.2+ reads the same fields from provider info) --------------------

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form, for Airflow versions that read them from the hook."""
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

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabelled standard fields of the connection form."""
        from airflow_provider_liveresponse.get_provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    # -- connection, session, token ---------------------------------------------------------------------

    @property
    def settings(self) -> ConnectionSettings:
        """The validated connection settings (read once per hook)."""
        if self._settings is None:
            conn = self.get_connection(self.mde_conn_id)
            settings = ConnectionSettings.from_connection(conn)
            mask(settings.client_secret)
            mask(settings.certificate_pem)
            self._settings = settings
            self.base_url = settings.api_url
            self._base_url_initialized = True
        return self._settings

    @property
    def tokens(self) -> TokenProvider:
        """The process-wide token provider of this connection's identity."""
        return token_provider_for(self.settings)

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """A requests session for the MDE API: TLS verified per request, keep-alive, the provider's UA.

        Unlike ``HttpHook.get_conn``, connection extras never become HTTP headers.
        """
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

    def url_from_endpoint(self, endpoint: str | None) -> str:
        """The absolute URL of an API path such as ``api/machineactions``."""
        return f"{self.settings.api_url}/{(endpoint or '').lstrip('/')}"

    def run(
        self,
        endpoint: str | None = None,
        data: dict[str, Any] | str | None = None,
        headers: dict[str, Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> requests.Response:
        """HttpHook's generic call (``self.method`` on an API path), with this hook's auth, retries and errors.

        ``data`` becomes the query string of a GET and the JSON body otherwise.
        """
        method = self.method
        is_get = method in ("GET", "HEAD", "DELETE")
        return self._request(
            method,
            endpoint or "",
            what=f"{method} {endpoint or '/'}",
            params=data if is_get and isinstance(data, dict) else None,
            json_body=data if not is_get and isinstance(data, dict) else None,
            data=data if isinstance(data, str) else None,
            ok=range(200, 300),
            idempotent=is_get,
        )

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
        json_body: Any = None,
        files: Any = None,
        data: Any = None,
        ok: Iterable[int] = (200,),
        idempotent: bool = True,
        action_id: str | None = None,
        machine_id: str | None = None,
        state: RetryState | None = None,
    ) -> requests.Response:
        """Send one API call with auth, 401 refresh, 429 and transient retries; raise a clear error."""
        url = path if path.startswith("https://") else self.url_from_endpoint(path)
        shown_path = urlsplit(url).path
        accepted = set(ok)
        state = state or RetryState(self.retry_policy)
        refreshed = False
        session = self.get_conn()
        while True:
            token = self.tokens.token()
            try:
                response = session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    files=files,
                    data=data,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                reason = type(exc).__name__
                if not idempotent:
                    raise _Ambiguous(reason) from None
                self._wait_transient(state, reason, what, method, shown_path, action_id, machine_id)
                continue
            status = response.status_code
            if status in accepted:
                return response
            body = response.content
            response.close()
            if status == 401 and not refreshed:
                log.info("MDE refused the access token (401) on %s %s; fetching a new one", method, shown_path)
                self.tokens.invalidate(token)
                refreshed = True
                continue
            if status == 429:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                delay = state.wait_for_throttle(retry_after)
                if delay is None:
                    raise api_error(
                        f"{what} was throttled by MDE for longer than the retry budget "
                        f"({self.retry_policy.max_retry_wait:g} s)",
                        status=status,
                        body=body,
                        headers=response.headers,
                        method=method,
                        path=shown_path,
                        action_id=action_id,
                        machine_id=machine_id,
                    )
                log.warning(
                    "MDE throttled %s %s (429); waiting %.1f s (%s); %.0f of %.0f s retry budget used",
                    method,
                    shown_path,
                    delay,
                    "Retry-After" if retry_after is not None else "backoff",
                    state.waited,
                    self.retry_policy.max_retry_wait,
                )
                self._sleep(delay)
                continue
            if status in TRANSIENT_STATUSES:
                if not idempotent:
                    raise _Ambiguous(f"HTTP {status}")
                self._wait_transient(
                    state, f"HTTP {status}", what, method, shown_path, action_id, machine_id, body, response
                )
                continue
            raise api_error(
                f"{what} failed",
                status=status,
                body=body,
                headers=response.headers,
                method=method,
                path=shown_path,
                action_id=action_id,
                machine_id=machine_id,
            )

    def _wait_transient(
        self,
        state: RetryState,
        reason: str,
        what: str,
        method: str,
        path: str,
        action_id: str | None,
        machine_id: str | None,
        body: bytes | None = None,
        response: requests.Response | None = None,
    ) -> None:
        delay = state.wait_for_transient(reason)
        if delay is None:
            if response is not None:
                raise api_error(
                    f"{what} kept failing after {state.transient_attempts} attempts",
                    status=response.status_code,
                    body=body,
                    headers=response.headers,
                    method=method,
                    path=path,
                    action_id=action_id,
                    machine_id=machine_id,
                )
            raise LiveResponseApiError(
                f"{what} failed: MDE did not answer ({reason}) after {state.transient_attempts} attempts. What to "
                "do: rerun the task later; if it persists, check the network path to the connection's api_url",
                method=method,
                path=path,
                action_id=action_id,
                machine_id=machine_id,
            )
        log.warning(
            "%s %s failed (%s); retrying in %.1f s (attempt %d of %d)",
            method,
            path,
            reason,
            delay,
            state.transient_attempts + 1,
            self.retry_policy.max_attempts,
        )
        self._sleep(delay)

    def _submit(
        self,
        send: Callable[[RetryState], T],
        reconcile: Callable[[], T | None],
        what: str,
    ) -> T:
        """Run a non-idempotent call; after an ambiguous failure, reconcile before sending again."""
        state = RetryState(self.retry_policy)
        while True:
            try:
                return send(state)
            except _Ambiguous as exc:
                found = reconcile()
                if found is not None:
                    log.warning(
                        "%s: the answer was lost (%s) but MDE had carried it out; reusing the result",
                        what,
                        exc.reason,
                    )
                    return found
                delay = state.wait_for_transient(exc.reason)
                if delay is None:
                    raise LiveResponseApiError(
                        f"{what} failed: MDE did not answer ({exc.reason}) after {state.transient_attempts} "
                        "attempts, and nothing was carried out. What to do: rerun the task later; if it persists, "
                        "check the network path to the connection's api_url"
                    ) from None
                log.warning("%s failed (%s) and was not carried out; retrying in %.1f s", what, exc.reason, delay)
                self._sleep(delay)

    def _json(self, response: requests.Response, what: str) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            raise LiveResponseApiError(
                f"{what}: MDE answered HTTP {response.status_code} with a body that is not JSON; this is "
                "usually a proxy or an outage page in the way: rerun the task, and check the connection's api_url",
                status=response.status_code,
                path=urlsplit(response.url).path,
            ) from None
        return json_object(payload, what, status=response.status_code, path=urlsplit(response.url).path)

    # -- live response ----------------------------------------------------------------------------------

    def run_live_response(
        self,
        machine_id: str,
        commands: Sequence[Command | dict[str, Any]],
        comment: str,
        *,
        marker: str | None = None,
    ) -> MachineAction:
        """Start a live-response session on a device and return its (Pending) machine action.

        The comment gets ``[airflow:<marker>]`` appended (a random marker unless one is given); if the
        answer is lost, the hook finds the action by that marker instead of submitting again.
        """
        machine_id = validate_machine_id(machine_id)
        try:
            parsed = parse_commands(list(commands) if isinstance(commands, tuple) else commands)
        except ValueError as exc:
            raise LiveResponseConfigError(str(exc)) from None
        if not isinstance(comment, str) or not comment.strip():
            raise LiveResponseConfigError("comment is empty: say why this live response runs (audit trail)")
        marker = check_marker(marker or uuid.uuid4().hex)
        full_comment = marked_comment(comment, marker)
        body = RunLiveResponseRequest.model_validate({"Commands": parsed, "Comment": full_comment}).to_wire()
        submitted_after = datetime.now().astimezone() - timedelta(minutes=5)
        what = f"Live response on machine {machine_id}"

        def send(state: RetryState) -> MachineAction:
            try:
                response = self._request(
                    "POST",
                    f"api/machines/{machine_id}/runliveresponse",
                    what=what,
                    json_body=body,
                    ok=(200, 201),
                    idempotent=False,
                    machine_id=machine_id,
                    state=state,
                )
            except LiveResponseApiError as exc:
                if exc.code == "ActiveRequestAlreadyExists":
                    # Our own earlier attempt may be the active session.
                    own = self.find_action_by_marker(machine_id, marker, created_after=submitted_after)
                    if own is not None:
                        return own
                raise
            return entity(MachineAction, self._json(response, what), what, machine_id=machine_id)

        action = self._submit(
            send,
            lambda: self.find_action_by_marker(machine_id, marker, created_after=submitted_after),
            what,
        )
        log.info(
            "Live response submitted: action %s on machine %s (%s), %d command(s), status %s",
            action.id,
            machine_id,
            action.computer_dns_name or "host name not reported",
            len(parsed),
            action.status,
        )
        return action

    def find_action_by_marker(
        self, machine_id: str, marker: str, *, created_after: datetime | None = None
    ) -> MachineAction | None:
        """The live-response action on ``machine_id`` whose comment carries exactly ``marker``, if any.

        Matches on the client (the API does not document filtering by comment). With several matches
        (which this hook never creates) the oldest is returned.
        """
        matches = [
            action
            for action in self.find_actions_by_marker(machine_id, marker, created_after=created_after)
            if carries_marker(action.requestor_comment, marker)
        ]
        if len(matches) > 1:
            log.warning(
                "Found %d live-response actions with marker %s on machine %s: %s; using the oldest",
                len(matches),
                marker,
                machine_id,
                ", ".join(a.id for a in matches),
            )
        return matches[0] if matches else None

    def find_actions_by_marker(
        self, machine_id: str, marker: str, *, created_after: datetime | None = None
    ) -> list[MachineAction]:
        """Live-response actions on ``machine_id`` marked ``marker`` or ``marker.<suffix>``, oldest first.

        An operator marks each try's submission ``<marker>.<try>``: this finds every try's action.
        """
        machine_id = validate_machine_id(machine_id)
        since = created_after or (datetime.now().astimezone() - _MARKER_LOOKBACK)
        matches = [
            action
            for action in self.list_machine_actions(
                machine_id=machine_id, action_type="LiveResponse", created_after=since
            )
            if carries_marker_family(action.requestor_comment, marker)
        ]
        matches.sort(key=lambda a: a.creation_date_time_utc or datetime.min.replace(tzinfo=UTC))
        return matches

    # -- machine actions --------------------------------------------------------------------------------

    def get_machine_action(self, action_id: str) -> MachineAction:
        """The machine action ``action_id`` with its commands' statuses."""
        action_id = validate_action_id(action_id)
        what = f"Reading machine action {action_id}"
        response = self._request("GET", f"api/machineactions/{quote(action_id)}", what=what, action_id=action_id)
        return entity(MachineAction, self._json(response, what), what, action_id=action_id)

    def list_machine_actions(
        self,
        *,
        machine_id: str | None = None,
        action_type: str | None = None,
        status: str | Sequence[str] | None = None,
        requestor: str | None = None,
        action_ids: Sequence[str] | None = None,
        created_after: datetime | None = None,
        comment_contains: str | None = None,
        page_size: int = 1000,
        limit: int | None = None,
    ) -> list[MachineAction]:
        """Machine actions matching the filters, following ``@odata.nextLink`` paging.

        ``comment_contains`` is matched on the client, as the API does not document filtering by comment.
        """
        clauses: list[str] = []
        if machine_id is not None:
            clauses.append(f"machineId eq {_odata_string(validate_machine_id(machine_id))}")
        if action_type:
            clauses.append(f"type eq {_odata_string(action_type)}")
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            either = " or ".join(f"status eq {_odata_string(str(s))}" for s in statuses)
            clauses.append(f"({either})" if len(statuses) > 1 else either)
        if requestor:
            clauses.append(f"requestor eq {_odata_string(requestor)}")
        if action_ids:
            ids = ", ".join(_odata_string(validate_action_id(a, "action_ids[]")) for a in action_ids)
            clauses.append(f"id in ({ids})")
        if created_after is not None:
            clauses.append(f"creationDateTimeUtc ge {_odata_datetime(created_after)}")
        if not 1 <= page_size <= 10_000:
            raise LiveResponseConfigError(f"page_size {page_size} must be between 1 and 10000 (the API's $top)")
        params: dict[str, Any] | None = {"$top": page_size}
        if clauses:
            assert params is not None
            params["$filter"] = " and ".join(clauses)
        actions: list[MachineAction] = []
        url = "api/machineactions"
        what = "Listing machine actions"
        while True:
            response = self._request("GET", url, what=what, params=params, machine_id=machine_id)
            payload = self._json(response, what)
            for item in items(payload, what):
                action = entity(MachineAction, item, what, machine_id=machine_id)
                if comment_contains and comment_contains not in (action.requestor_comment or ""):
                    continue
                actions.append(action)
                if limit is not None and len(actions) >= limit:
                    return actions
            link = next_link(payload, what)
            if not link:
                return actions
            url = self._same_host(link)
            params = None

    def _same_host(self, link: str) -> str:
        """Follow a paging link only on the API's own host: the token must go nowhere else."""
        api = urlsplit(self.settings.api_url)
        target = urlsplit(link)
        if not link.startswith("https://"):
            return link.lstrip("/")
        if (target.scheme, target.netloc) != (api.scheme, api.netloc):
            raise LiveResponseApiError(
                f"MDE's paging link points at another host ({target.netloc}, not {api.netloc}); refusing to send "
                "the access token there. Check the connection's api_url"
            )
        return link

    def cancel_machine_action(self, action_id: str, comment: str) -> MachineAction:
        """Cancel a pending or running action; cancelling an action that already ended is not an error."""
        action_id = validate_action_id(action_id)
        if not isinstance(comment, str) or not comment.strip():
            raise LiveResponseConfigError("comment is empty: say why the action is cancelled (audit trail)")
        what = f"Cancelling machine action {action_id}"
        try:
            response = self._request(
                "POST",
                f"api/machineactions/{quote(action_id)}/cancel",
                what=what,
                json_body={"Comment": comment},
                ok=(200, 201),
                action_id=action_id,
            )
        except LiveResponseApiError as exc:
            if exc.status == 400:
                current = self.get_machine_action(action_id)
                if current.is_terminal:
                    log.info("Action %s had already ended (%s); nothing to cancel", action_id, current.status)
                    return current
            raise
        return entity(MachineAction, self._json(response, what), what, action_id=action_id)

    # -- results ----------------------------------------------------------------------------------------

    def get_result_download_link(self, action_id: str, index: int) -> str:
        """A fresh 30-minute download link for command ``index``'s result. It is a bearer credential: it is
        masked in logs; never log, return through XCom or store it."""
        action_id = validate_action_id(action_id)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise LiveResponseConfigError(f"index {index!r} must be a command index (an integer from 0)")
        what = f"Getting the result link of command {index} of action {action_id}"
        response = self._request(
            "GET",
            f"api/machineactions/{quote(action_id)}/GetLiveResponseResultDownloadLink(index={index})",
            what=what,
            action_id=action_id,
        )
        link = self._json(response, what).get("value")
        if not isinstance(link, str) or not link.startswith("https://"):
            raise LiveResponseApiError(
                f"{what}: MDE returned no https link", action_id=action_id, status=response.status_code
            )
        mask_link(link)
        log.info("Got a result link for command %d of action %s: %s", index, action_id, redact_url(link))
        return link

    def open_result(self, action_id: str, index: int, *, max_resumes: int = 8) -> ResultReader:
        """A streaming reader of command ``index``'s result blob (GetFile results are gzip-compressed).

        It asks for a new link when one has expired and resumes with ``Range`` after a broken connection.
        """
        action_id = validate_action_id(action_id)
        return ResultReader(
            lambda: self.get_result_download_link(action_id, index),
            self._blob(),
            action_id=action_id,
            index=index,
            timeout=self.timeout,
            max_resumes=max_resumes,
            sleep=self._sleep,
        )

    def get_script_transcript(self, action_id: str, index: int) -> ScriptTranscript:
        """The transcript (exit code, output, errors) of a completed RunScript command."""
        with self.open_result(action_id, index) as reader:
            data = bytearray()
            for chunk in reader.iter_chunks():
                data.extend(chunk)
                if len(data) > _MAX_TRANSCRIPT_BYTES:
                    raise LiveResponseApiError(
                        f"The result of command {index} of action {action_id} is larger than "
                        f"{_MAX_TRANSCRIPT_BYTES} bytes: it is not a script transcript (is it a GetFile?)",
                        action_id=action_id,
                    )
        raw = bytes(data)
        if raw[:2] == b"\x1f\x8b":
            import gzip

            raw = gzip.decompress(raw)
        try:
            return ScriptTranscript.model_validate(json.loads(raw.decode("utf-8-sig")))
        except (ValueError, UnicodeDecodeError):
            raise LiveResponseApiError(
                f"The result of command {index} of action {action_id} is not a JSON script transcript; "
                "check that the command is a RunScript",
                action_id=action_id,
            ) from None

    # -- library ----------------------------------------------------------------------------------------

    def list_library_files(self) -> list[LibraryFile]:
        """Every file in the live-response library."""
        what = "Listing the live-response library"
        response = self._request("GET", "api/libraryfiles", what=what)
        return [entity(LibraryFile, item, what) for item in items(self._json(response, what), what)]

    def upload_library_file(
        self,
        source: str | os.PathLike[str] | bytes | IO[bytes],
        *,
        file_name: str | None = None,
        description: str | None = None,
        parameters_description: str | None = None,
        has_parameters: bool | None = None,
        override_if_exists: bool = False,
    ) -> LibraryFile:
        """Upload a script or file (at most 20 MB) to the live-response library."""
        content, name = _read_upload(source, file_name)
        _check_library_file_name_or_raise(name)
        if len(content) > LIBRARY_FILE_MAX_BYTES:
            raise LiveResponseConfigError(
                f"Library file {name!r} is {len(content)} bytes; the live-response library takes at most "
                f"{LIBRARY_FILE_MAX_BYTES} bytes (20 MB): compress it or collect it differently"
            )
        if has_parameters is None:
            has_parameters = parameters_description is not None
        form = {
            "Description": description or "",
            "ParametersDescription": parameters_description or "",
            "HasParameters": "true" if has_parameters else "false",
            "OverrideIfExists": "true" if override_if_exists else "false",
        }
        import hashlib

        digest = hashlib.sha256(content).hexdigest()
        what = f"Uploading {name!r} to the live-response library"

        def send(state: RetryState) -> LibraryFile:
            response = self._request(
                "POST",
                "api/libraryfiles",
                what=what,
                files={"File": (name, content, "application/octet-stream")},
                data=form,
                ok=(200, 201),
                idempotent=False,
                state=state,
            )
            return entity(LibraryFile, self._json(response, what), what)

        def reconcile() -> LibraryFile | None:
            for item in self.list_library_files():
                if item.file_name == name and (item.sha256 or "").lower() == digest:
                    return item
            return None

        return self._submit(send, reconcile, what)

    def delete_library_file(self, file_name: str) -> None:
        """Delete a file from the live-response library (404 when it is not there)."""
        _check_library_file_name_or_raise(file_name)
        self._request(
            "DELETE",
            f"api/libraryfiles/{quote(file_name)}",
            what=f"Deleting {file_name!r} from the live-response library",
            ok=(200, 204),
        )

    # -- machines ---------------------------------------------------------------------------------------

    def get_machine(self, machine_id: str) -> Machine:
        """The device ``machine_id``."""
        machine_id = validate_machine_id(machine_id)
        what = f"Reading machine {machine_id}"
        response = self._request("GET", f"api/machines/{machine_id}", what=what, machine_id=machine_id)
        return entity(Machine, self._json(response, what), what, machine_id=machine_id)

    def find_machines(
        self,
        *,
        computer_dns_name: str | None = None,
        machine_tag: str | None = None,
        health_status: str | None = None,
        os_platform: str | None = None,
        onboarding_status: str | None = None,
        top: int = 10_000,
    ) -> list[Machine]:
        """Devices matching every filter given (an empty list when none match)."""
        clauses: list[str] = []
        if computer_dns_name is not None:
            if not isinstance(computer_dns_name, str) or not computer_dns_name.strip():
                raise LiveResponseConfigError(
                    f"computer_dns_name {computer_dns_name!r} is not a host name: give the device's full DNS name"
                )
            clauses.append(f"computerDnsName eq {_odata_string(computer_dns_name.strip().lower())}")
        if machine_tag is not None:
            clauses.append(f"machineTags/any(tag: tag eq {_odata_string(machine_tag)})")
        if health_status is not None:
            clauses.append(f"healthStatus eq {_odata_string(health_status)}")
        if os_platform is not None:
            clauses.append(f"osPlatform eq {_odata_string(os_platform)}")
        if onboarding_status is not None:
            clauses.append(f"onboardingStatus eq {_odata_string(onboarding_status)}")
        if not clauses:
            raise LiveResponseConfigError(
                "find_machines needs at least one filter (computer_dns_name, machine_tag, health_status, "
                "os_platform or onboarding_status)"
            )
        if not 1 <= top <= 10_000:
            raise LiveResponseConfigError(f"top {top} must be between 1 and 10000")
        what = "Looking up machines"
        try:
            response = self._request(
                "GET", "api/machines", what=what, params={"$filter": " and ".join(clauses), "$top": top}
            )
        except LiveResponseApiError as exc:
            if exc.status == 404:  # MDE answers 404 when there are no recent machines at all
                return []
            raise
        return [entity(Machine, item, what) for item in items(self._json(response, what), what)]

    # -- Airflow UI -------------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a token and read one machine action: proves the credentials, the host and the permission."""
        try:
            settings = self.settings
            self._request("GET", "api/machineactions", what="Testing the connection", params={"$top": 1})
        except Exception as exc:
            return False, str(exc)
        return True, (
            f"Connected to {settings.api_url} as application {settings.client_id} in tenant "
            f"{settings.tenant_id}; the token and a machine-actions read work."
        )


def _check_library_file_name_or_raise(name: str) -> None:
    try:
        check_library_file_name("file_name", name)
    except ValueError as exc:
        raise LiveResponseConfigError(str(exc)) from None


def _read_upload(source: str | os.PathLike[str] | bytes | IO[bytes], file_name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        if not file_name:
            raise LiveResponseConfigError("file_name is required when uploading bytes")
        return bytes(source), file_name
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise LiveResponseConfigError(f"source {str(path)!r} is not a readable file")
        if path.stat().st_size > LIBRARY_FILE_MAX_BYTES:
            raise LiveResponseConfigError(
                f"source {str(path)!r} is {path.stat().st_size} bytes; the library takes at most 20 MB"
            )
        return path.read_bytes(), file_name or path.name
    content = source.read(LIBRARY_FILE_MAX_BYTES + 1)
    name = file_name or Path(str(getattr(source, "name", ""))).name
    if not name:
        raise LiveResponseConfigError("file_name is required when uploading from a stream without a name")
    return content, name


__all__ = ["EXTRA_FIELDS", "LiveResponseHook", "marker_tag", "validate_action_id", "validate_machine_id"]
