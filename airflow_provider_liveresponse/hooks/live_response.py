"""LiveResponseHook: the one place that knows MDE's URLs, tokens, limits and retries.

Every call returns a pydantic model from :mod:`airflow_provider_liveresponse.models`. Each request goes through the
call protocol (:mod:`~airflow_provider_liveresponse.hooks.protocol`: token renewal, 429 and transient retries
within a budget, clear errors), the same one the async hook uses; filters and paging come from
:mod:`~airflow_provider_liveresponse.hooks.odata`. Submitting live response is made safe to retry: each submission
carries a unique marker in its comment, and after a reset, a timeout or a 5xx the hook looks the action up by that
marker before it ever submits again.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.connection import EXTRA_FIELDS
from airflow_provider_liveresponse.constants import CONN_TYPE, DEFAULT_CONN_ID, HOOK_NAME, LIBRARY_FILE_MAX_BYTES
from airflow_provider_liveresponse.exceptions import (
    LiveResponseApiError,
    LiveResponseConfigError,
    LiveResponseParameterTypeError,
)
from airflow_provider_liveresponse.hooks import odata
from airflow_provider_liveresponse.hooks.action_workflow import ActionWorkflowMixin
from airflow_provider_liveresponse.hooks.machine_lookup import MachineLookupMixin
from airflow_provider_liveresponse.hooks.mde_http import MdeHttpHook, connection_form_widgets, ui_field_behaviour
from airflow_provider_liveresponse.hooks.responses import already_ended, entity
from airflow_provider_liveresponse.hooks.result_reader import BlobProperties, ResultReader, read_blob_properties
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
from airflow_provider_liveresponse.secrets import mask_link, redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow_provider_liveresponse.hooks.retry_policy import RetryState
    from airflow_provider_liveresponse.models import Command

log = logging.getLogger(__name__)

_MAX_TRANSCRIPT_BYTES = 64 * 1024 * 1024
#: How far back a marker look-up searches: a bit more than the longest a submit can take to be retried.
_MARKER_LOOKBACK = timedelta(hours=6)


def validate_machine_id(machine_id: Any, field: str = "machine_id") -> str:
    """A 40-hex-character MDE device id, or a clear error naming ``field`` (:func:`validation.machine_id`)."""
    return validation.machine_id(machine_id, field)


def validate_action_id(action_id: Any, field: str = "action_id") -> str:
    """A machine action id, or a clear error naming ``field`` (:func:`validation.action_id`)."""
    return validation.action_id(action_id, field)


class LiveResponseHook(ActionWorkflowMixin, MachineLookupMixin, MdeHttpHook):
    """Talks to the Microsoft Defender for Endpoint Live Response API through an ``mde_live_response``
    connection.

    Built on :class:`~airflow_provider_liveresponse.hooks.mde_http.MdeHttpHook` (HttpHook with the call protocol
    underneath: token, retries within a budget, clear errors).

    :param mde_conn_id: the Airflow connection: login = application (client) id, password = client secret,
        extras ``tenant_id``, ``cloud``, ``api_url``, ``authority_url``, ``certificate_path`` /
        ``certificate_pem`` + ``certificate_thumbprint``, ``ca_bundle``.
    :param max_retry_wait: total seconds one call may wait between retries (429 and transient errors).
    :param max_throttle_wait: seconds of that budget one call may spend on 429s (None: all of it; 0: raise at once).
    :param max_attempts: attempts for transient errors (5xx, resets, timeouts).
    :param timeout: requests' (connect, read) timeout in seconds.
    :param sleep: how the hook waits between attempts (tests hand in one that does not sleep).
    """

    conn_name_attr = "mde_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    # Airflow 3.1 reads the connection form from methods of the hook class itself (3.2+ from provider info).
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form."""
        return connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabelled standard fields of the connection form."""
        return ui_field_behaviour()

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
        comment = validation.text(comment, "comment", hint="why this live response runs (audit trail)")
        marker = uuid.uuid4().hex if marker is None else check_marker(marker)
        body = RunLiveResponseRequest.model_validate(
            {"Commands": parsed, "Comment": marked_comment(comment, marker)}
        ).to_wire()
        submitted_after = datetime.now().astimezone() - timedelta(minutes=5)
        what = f"Live response on machine {machine_id}"

        def send(state: RetryState) -> MachineAction:
            try:
                data = self._request_json(
                    "POST",
                    f"api/machines/{machine_id}/runliveresponse",
                    what=what,
                    json_body=body,
                    ok=(200, 201),
                    idempotent=False,
                    machine_id=machine_id,
                    state=state,
                    paced=True,
                )
            except LiveResponseApiError as exc:
                if exc.code == "ActiveRequestAlreadyExists":
                    # Our own earlier attempt may be the active session.
                    own = self.find_action_by_marker(machine_id, marker, created_after=submitted_after)
                    if own is not None:
                        return own
                raise
            return entity(MachineAction, data, what, machine_id=machine_id)

        action = self._submit(
            send, lambda: self.find_action_by_marker(machine_id, marker, created_after=submitted_after), what
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
        marker = check_marker(marker)
        since = validation.optional_datetime(created_after, "created_after") or (
            datetime.now().astimezone() - _MARKER_LOOKBACK
        )
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
        data = self._request_json("GET", f"api/machineactions/{quote(action_id)}", what=what, action_id=action_id)
        return entity(MachineAction, data, what, action_id=action_id)

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
        machine_id = validate_machine_id(machine_id) if machine_id is not None else None
        clauses = [odata.eq("machineId", machine_id)] if machine_id else []
        action_type = validation.optional_text(action_type, "action_type", empty_allowed=True)
        if action_type:
            clauses.append(odata.eq("type", action_type))
        if statuses := _optional_texts(status, "status", validation.text):
            clauses.append(odata.any_of("status", statuses))
        requestor = validation.optional_text(requestor, "requestor", empty_allowed=True)
        if requestor:
            clauses.append(odata.eq("requestor", requestor))
        if ids := _optional_texts(action_ids, "action_ids", validation.action_id, lone_text=False):
            clauses.append(odata.ids_in(ids))
        created_after = validation.optional_datetime(created_after, "created_after")
        if created_after is not None:
            clauses.append(f"creationDateTimeUtc ge {odata.timestamp(created_after)}")
        validation.optional_text(comment_contains, "comment_contains", empty_allowed=True)
        top = validation.count(page_size, "page_size", maximum=10_000)
        limit = None if limit is None else validation.count(limit, "limit")
        what = "Listing machine actions"
        pages = odata.Pages("api/machineactions", odata.query(clauses, top), what)
        actions: list[MachineAction] = []
        while pages.url:
            payload = self._request_json("GET", pages.url, what=what, params=pages.params, machine_id=machine_id)
            for item in pages.read(payload, self.base_url):
                action = entity(MachineAction, item, what, machine_id=machine_id)
                if not comment_contains or comment_contains in (action.requestor_comment or ""):
                    actions.append(action)
                if limit is not None and len(actions) >= limit:
                    return actions
        return actions

    def cancel_machine_action(self, action_id: str, comment: str) -> MachineAction:
        """Cancel a pending or running action; cancelling an action that already ended is not an error."""
        action_id = validate_action_id(action_id)
        comment = validation.text(comment, "comment", hint="why the action is cancelled (audit trail)")
        what = f"Cancelling machine action {action_id}"
        path = f"api/machineactions/{quote(action_id)}/cancel"
        try:
            data = self._request_json(
                "POST", path, what=what, json_body={"Comment": comment}, ok=(200, 201), action_id=action_id
            )
        except LiveResponseApiError as exc:
            if exc.status != 400:
                raise
            return already_ended(exc, self.get_machine_action(action_id))
        return entity(MachineAction, data, what, action_id=action_id)

    # -- results ----------------------------------------------------------------------------------------

    def get_result_download_link(self, action_id: str, index: int) -> str:
        """A fresh 30-minute download link for command ``index``'s result. It is a bearer credential: it is
        masked in logs; never log, return through XCom or store it."""
        action_id = validate_action_id(action_id)
        index = validation.count(index, "index", minimum=0)
        what = f"Getting the result link of command {index} of action {action_id}"
        path = f"api/machineactions/{quote(action_id)}/GetLiveResponseResultDownloadLink(index={index})"
        link = self._request_json("GET", path, what=what, action_id=action_id).get("value")
        if not isinstance(link, str) or not link.startswith("https://"):
            raise LiveResponseApiError(f"{what}: MDE returned no https link", action_id=action_id, status=200)
        mask_link(link)
        log.info("Got a result link for command %d of action %s: %s", index, action_id, redact_url(link))
        return link

    def open_result(self, action_id: str, index: int, *, max_resumes: int = 8) -> ResultReader:
        """A streaming reader of command ``index``'s result blob (GetFile results are gzip-compressed).

        It asks for a new link when one has expired and resumes with ``Range`` after a broken connection.
        """
        action_id = validate_action_id(action_id)
        max_resumes = validation.count(max_resumes, "max_resumes", minimum=0)
        return ResultReader(
            lambda: self.get_result_download_link(action_id, index),
            self._blob(),
            action_id=action_id,
            index=index,
            timeout=self.timeout,
            max_resumes=max_resumes,
            sleep=self._sleep,
        )

    def get_result_properties(self, action_id: str, index: int) -> BlobProperties:
        """The length and Content-MD5 of command ``index``'s result blob, from a ``HEAD`` on a fresh link (no body
        is downloaded; the link is neither logged nor returned)."""
        action_id = validate_action_id(action_id)
        index = validation.count(index, "index", minimum=0)
        return read_blob_properties(
            lambda: self.get_result_download_link(action_id, index),
            self._blob(),
            action_id=action_id,
            index=index,
            timeout=self.timeout,
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
        """Every file in the live-response library, following ``@odata.nextLink`` paging."""
        what = "Listing the live-response library"
        pages = odata.Pages("api/libraryfiles", None, what)
        files: list[LibraryFile] = []
        while pages.url:
            payload = self._request_json("GET", pages.url, what=what, params=pages.params)
            files.extend(entity(LibraryFile, item, what) for item in pages.read(payload, self.base_url))
        return files

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
        validation.optional_text(file_name, "file_name", empty_allowed=True)
        validation.optional_text(description, "description", empty_allowed=True)
        validation.optional_text(parameters_description, "parameters_description", empty_allowed=True)
        has_parameters = validation.optional_flag(has_parameters, "has_parameters")
        override_if_exists = validation.flag(override_if_exists, "override_if_exists")
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
            files = {"File": (name, content, "application/octet-stream")}
            data = self._request_json(
                "POST",
                "api/libraryfiles",
                what=what,
                files=files,
                data=form,
                ok=(200, 201),
                idempotent=False,
                state=state,
            )
            return entity(LibraryFile, data, what)

        def reconcile() -> LibraryFile | None:
            for item in self.list_library_files():
                if item.file_name == name and (item.sha256 or "").lower() == digest:
                    return item
            return None

        return self._submit(send, reconcile, what)

    def delete_library_file(self, file_name: str) -> None:
        """Delete a file from the live-response library (404 when it is not there)."""
        _check_library_file_name_or_raise(file_name)
        what = f"Deleting {file_name!r} from the live-response library"
        self._request("DELETE", f"api/libraryfiles/{quote(file_name)}", what=what, ok=(200, 204))

    # -- machines ---------------------------------------------------------------------------------------

    def get_machine(self, machine_id: str) -> Machine:
        """The device ``machine_id``."""
        machine_id = validate_machine_id(machine_id)
        what = f"Reading machine {machine_id}"
        data = self._request_json("GET", f"api/machines/{machine_id}", what=what, machine_id=machine_id)
        return entity(Machine, data, what, machine_id=machine_id)

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


def _optional_texts(value: Any, field: str, item: Callable[[Any, str], str], *, lone_text: bool = True) -> list[str]:
    """A filter's values: none for None, an empty list or blank text (no filter); one text (when ``lone_text``)
    or a list of them, each checked by ``item`` (:func:`validation.text_list`)."""
    if isinstance(value, str) and lone_text:
        return [item(value, field)] if value.strip() else []
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return []
    return validation.text_list(value, field, item)


def _check_library_file_name_or_raise(name: str) -> None:
    validation.text(name, "file_name", hint="a library file name such as triage.ps1")
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
    if not callable(getattr(source, "read", None)):
        raise LiveResponseParameterTypeError(
            f"source must be a file path, bytes or a binary stream, got {source!r:.80} ({type(source).__name__})"
        )
    content = source.read(LIBRARY_FILE_MAX_BYTES + 1)
    name = file_name or Path(str(getattr(source, "name", ""))).name
    if not name:
        raise LiveResponseConfigError("file_name is required when uploading from a stream without a name")
    return content, name


__all__ = ["EXTRA_FIELDS", "LiveResponseHook", "marker_tag", "validate_action_id", "validate_machine_id"]
