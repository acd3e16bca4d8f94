"""The MDE API routes (machines, run live response, machine actions, result links, library) and the guard
every call goes through: counters, faults, the Bearer token, and rate limits.

Paths, bodies, status codes and error shapes follow the contract (``docs/mde-live-response-api.md``):
camelCase entities with ``@odata.context``, ``value`` lists with ``@odata.nextLink`` paging, 7-digit
datetimes, extra fields clients do not know, and ``lastUpdateTimeUtc`` on the list endpoint.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode

from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_liveresponse.simulator.clock import format_datetime
from airflow_provider_liveresponse.simulator.errors import ApiError, error_response
from airflow_provider_liveresponse.simulator.library import LibraryFile
from airflow_provider_liveresponse.simulator.lifecycle import COMMAND_PARAMETERS, COMMAND_TYPES, Command
from airflow_provider_liveresponse.simulator.limits import retry_after_header
from airflow_provider_liveresponse.simulator.odata import Instant, ODataError, compile_filter, sort_key_for
from airflow_provider_liveresponse.simulator.transport import drop_connection
from airflow_provider_liveresponse.simulator.views import ActionView, MachineView

if TYPE_CHECKING:
    from starlette.requests import Request

    from airflow_provider_liveresponse.simulator.identity import Identity
    from airflow_provider_liveresponse.simulator.state import SimulatorState

Handler = Callable[["Request"], Awaitable[Response]]
T = TypeVar("T")

ACTION_FILTER_FIELDS = ("id", "status", "machineId", "type", "requestor", "creationDateTimeUtc")
ACTION_ORDER_FIELDS = (*ACTION_FILTER_FIELDS, "computerDnsName", "lastUpdateTimeUtc")
MACHINE_FILTER_FIELDS = (
    "id",
    "computerDnsName",
    "machineTags",
    "healthStatus",
    "osPlatform",
    "onboardingStatus",
    "lastSeen",
    "rbacGroupId",
    "riskScore",
    "exposureLevel",
    "lastIpAddress",
)
LIBRARY_FIELDS = ("fileName", "sha256", "createdBy", "hasParameters", "creationTime", "lastUpdatedTime")
_LINK_OPERATION = re.compile(r"^GetLiveResponseResultDownloadLink\(index=(\d+)\)$", re.IGNORECASE)
_ERROR_CODES = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable"}
BLOB_PREFIX = "/mde-liveresponse"


class Api:
    """The API host's MDE endpoints."""

    def __init__(self, state: SimulatorState, identity: Identity) -> None:
        self.state = state
        self.identity = identity
        #: Base URLs, set once the servers are bound.
        self.api_url = ""
        self.blob_url = ""

    # -- the guard ---------------------------------------------------------------------------------------------
    def guarded(self, group: str, handler: Handler, *, rate_group: str | None = None, auth: bool = True) -> Handler:
        """Wrap ``handler`` with counters, faults, token check and rate limits for endpoint ``group``."""

        async def endpoint(request: Request) -> Response:
            state = self.state
            state.count_call(group, request.headers.get("user-agent"))
            with state.lock:
                if group == "token":
                    state.counters["token_requests"] += 1
            decision = state.faults.decide(group)
            if decision.delay > 0:
                await asyncio.sleep(decision.delay)
            if decision.kind == "reset":
                await drop_connection(request.scope)
                return Response(status_code=500)
            if decision.kind == "unauthorized":
                return error_response(401, "Unauthorized", "Access token has expired (simulated fault)")
            if decision.kind == "throttle" and group == "token":
                return self._token_throttled(decision.retry_after)
            if decision.kind == "throttle":
                return self._error(
                    group,
                    ApiError(429, "TooManyRequests", "Rate limit exceeded (simulated fault)", decision.retry_after),
                    announce=decision.retry_after is not None,
                )
            if decision.kind == "error":
                status = decision.status
                return error_response(status, _ERROR_CODES.get(status, "InternalServerError"), "Simulated server error")
            if decision.kind == "malformed":
                body = b'{"@odata.context": "' + self.api_url.encode() + b'/api/$metadata", "value": [{"id": '
                return Response(body, status_code=200, media_type="application/json")
            if auth:
                problem = self.identity.check_bearer(request.headers.get("authorization"))
                if problem is not None:
                    return error_response(
                        401, "Unauthorized", problem, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
                    )
            try:
                if rate_group is not None:
                    wait = state.take_rate(rate_group, state.clock.time())
                    if wait is not None:
                        raise ApiError(429, "TooManyRequests", f"Rate limit exceeded on {rate_group}", retry_after=wait)
                response = await handler(request)
            except ApiError as error:
                response = self._error(group, error)
            except ODataError as error:
                response = error_response(400, "ODataError", str(error))
            if response.status_code == 429 and rate_group is not None:
                state.usage.record_throttle(rate_group, state.clock.time())
            if decision.kind == "commit_then_drop":
                await drop_connection(request.scope)
            return response

        return endpoint

    def _error(self, group: str, error: ApiError, *, announce: bool = True) -> Response:
        headers: dict[str, str] = {}
        if error.status == 429:
            with self.state.lock:
                self.state.counters[f"throttled:{group}"] += 1
            if announce:
                headers["Retry-After"] = retry_after_header(error.retry_after or 1.0, self.state.clock.speed)
        return error_response(error.status, error.code, error.message, headers)

    def _token_throttled(self, retry_after: float | None) -> Response:
        """Entra's answer to too many token requests: 429 with an OAuth error body (not MDE's error shape)."""
        with self.state.lock:
            self.state.counters["throttled:token"] += 1
        response = self.identity.error(
            429,
            "temporarily_unavailable",
            90055,
            "TenantThrottlingError - There are too many incoming requests. Please try again later.",
        )
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after_header(retry_after, self.state.clock.speed)
        return response

    def routes(self) -> list[Route]:
        """The API routes."""
        g = self.guarded
        return [
            Route("/api/machines", g("machines", self.list_machines, rate_group="machines"), methods=["GET"]),
            Route(
                "/api/machines/{machine_id}", g("machines", self.get_machine, rate_group="machines"), methods=["GET"]
            ),
            Route(
                "/api/machines/{machine_id}/runliveresponse",
                g("runliveresponse", self.run_live_response, rate_group="runliveresponse"),
                methods=["POST"],
            ),
            Route(
                "/api/machineactions",
                g("list_actions", self.list_actions, rate_group="machineactions"),
                methods=["GET"],
            ),
            Route(
                "/api/machineactions/{action_id}",
                g("get_action", self.get_action, rate_group="machineactions"),
                methods=["GET"],
            ),
            Route(
                "/api/machineactions/{action_id}/cancel",
                g("cancel", self.cancel_action, rate_group="machineactions"),
                methods=["POST"],
            ),
            Route(
                "/api/machineactions/{action_id}/{operation}",
                g("link", self.result_link, rate_group="link"),
                methods=["GET"],
            ),
            Route("/api/libraryfiles", g("library", self.list_library, rate_group="library"), methods=["GET"]),
            Route("/api/libraryfiles", g("library", self.upload_library_file, rate_group="library"), methods=["POST"]),
            Route(
                "/api/libraryfiles/{file_name}",
                g("library", self.delete_library_file, rate_group="library"),
                methods=["DELETE"],
            ),
        ]

    def _context(self, fragment: str) -> str:
        return f"{self.api_url}/api/$metadata#{fragment}"

    # -- machines ----------------------------------------------------------------------------------------------
    async def get_machine(self, request: Request) -> Response:
        """``GET /api/machines/{id}`` (a host name works too)."""
        machine_id = request.path_params["machine_id"]
        with self.state.lock:
            now = self.state.tick()
            device = self.state.device(machine_id) or self.state.device_by_host(machine_id)
            if device is None:
                raise ApiError(404, "ResourceNotFound", f"Machine {machine_id} was not found")
            entity = self.state.machine_entity(device, now)
        return JSONResponse({"@odata.context": self._context("Machines/$entity"), **entity})

    async def list_machines(self, request: Request) -> Response:
        """``GET /api/machines`` with ``$filter``, ``$top``, ``$skip``, ``$orderby`` and paging."""
        state = self.state
        with state.lock:
            now = state.tick()
            if not state.devices:
                raise ApiError(404, "ResourceNotFound", "No machines found")
            return self._page(
                request,
                "/api/machines",
                list(state.devices.values()),
                MachineView(now, state.limits).bind,
                lambda device: state.machine_entity(device, now),
                MACHINE_FILTER_FIELDS,
                MACHINE_FILTER_FIELDS,
                "Machines",
            )

    # -- actions -----------------------------------------------------------------------------------------------
    async def run_live_response(self, request: Request) -> Response:
        """``POST /api/machines/{id}/runliveresponse``: 201 with the new MachineAction."""
        body = await _json_body(request)
        commands, comment = _parse_run_body(body)
        action = self.state.create_action(request.path_params["machine_id"], commands, comment, self.identity.client_id)
        with self.state.lock:
            entity = action.to_entity()
        return JSONResponse({"@odata.context": self._context("MachineActions/$entity"), **entity}, status_code=201)

    async def get_action(self, request: Request) -> Response:
        """``GET /api/machineactions/{id}``."""
        with self.state.lock:
            entity = self.state.action(request.path_params["action_id"]).to_entity()
        return JSONResponse({"@odata.context": self._context("MachineActions/$entity"), **entity})

    async def list_actions(self, request: Request) -> Response:
        """``GET /api/machineactions`` with ``$filter``, ``$top``, ``$skip``, ``$orderby`` and paging."""
        with self.state.lock:
            now = self.state.tick()
            self.state.action_listings.append((now, request.query_params.get("$filter", "")))
            return self._page(
                request,
                "/api/machineactions",
                list(self.state.actions.values()),
                ActionView().bind,
                lambda action: action.to_entity(list_form=True),
                ACTION_FILTER_FIELDS,
                ACTION_ORDER_FIELDS,
                "MachineActions",
            )

    async def cancel_action(self, request: Request) -> Response:
        """``POST /api/machineactions/{id}/cancel`` with ``{"Comment": ...}``."""
        body = await _json_body(request)
        comment = _get_key(body, "Comment")
        if not isinstance(comment, str) or not comment.strip():
            raise ApiError(400, "MissingRequiredParameter", "Comment is required to cancel a machine action")
        action = self.state.cancel_action(request.path_params["action_id"], comment, self.identity.client_id)
        with self.state.lock:
            entity = action.to_entity()
        return JSONResponse({"@odata.context": self._context("MachineActions/$entity"), **entity})

    async def result_link(self, request: Request) -> Response:
        """``GET /api/machineactions/{id}/GetLiveResponseResultDownloadLink(index={n})``."""
        match = _LINK_OPERATION.match(request.path_params["operation"])
        if match is None:
            raise ApiError(404, "NotFound", f"No such operation: {request.path_params['operation']}")
        action_id = request.path_params["action_id"].lower()
        index = int(match.group(1))
        result = self.state.result(action_id, index)
        now = self.state.clock.time()
        name = "transcript.json" if result.kind == "transcript" else f"{result.file_name}.gz"
        path = f"{BLOB_PREFIX}/{action_id}/{index}/{name}"
        start = format_datetime(now - 300)[:19] + "Z"
        expiry = format_datetime(now + self.state.limits.link_lifetime_seconds)[:19] + "Z"
        url = self.state.results.link(self.blob_url, path, start, expiry)
        with self.state.lock:
            self.state.issued_links.append(url)
        return JSONResponse({"@odata.context": self._context("Edm.String"), "value": url})

    # -- library -----------------------------------------------------------------------------------------------
    async def list_library(self, request: Request) -> Response:
        """``GET /api/libraryfiles``, paged like the other listings (``$filter`` on its plain fields too)."""
        with self.state.lock:
            return self._page(
                request,
                "/api/libraryfiles",
                list(self.state.library.values()),
                lambda item: item.to_entity(format_datetime),
                lambda item: item.to_entity(format_datetime),
                LIBRARY_FIELDS,
                LIBRARY_FIELDS,
                "LibraryFiles",
            )

    async def upload_library_file(self, request: Request) -> Response:
        """``POST /api/libraryfiles`` (multipart: File, Description, ParametersDescription, HasParameters,
        OverrideIfExists)."""
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise ApiError(400, "InvalidRequestBody", "The request must be multipart/form-data")
        limit = self.state.limits.library_max_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + 1024 * 1024:
            raise ApiError(400, "BadRequest", f"File size exceeds the limit of {limit} bytes")
        async with request.form() as form:
            upload = form.get("File")
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise ApiError(400, "MissingRequiredParameter", "File is required")
            digest = hashlib.sha256()
            size = 0
            while chunk := await upload.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
                if size > limit:
                    raise ApiError(400, "BadRequest", f"File size exceeds the limit of {limit} bytes")
            name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1]
            description = str(form.get("Description") or "")
            parameters = form.get("ParametersDescription")
            has_parameters = str(form.get("HasParameters") or "false").strip().lower() == "true"
            override = str(form.get("OverrideIfExists") or "false").strip().lower() == "true"
        with self.state.lock:
            now = self.state.tick()
            existing = self.state.library.get(name.lower())
            if existing is not None and not override:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"A file named '{name}' already exists in the library; set OverrideIfExists to replace it",
                )
            entry = LibraryFile(
                file_name=name,
                sha256=digest.hexdigest(),
                size=size,
                description=description,
                has_parameters=has_parameters,
                parameters_description=str(parameters) if parameters is not None else None,
                creation_time=existing.creation_time if existing else now,
                last_updated_time=now,
                created_by=self.identity.client_id,
            )
            self.state.library[name.lower()] = entry
            entity = entry.to_entity(format_datetime)
        return JSONResponse({"@odata.context": self._context("LibraryFiles/$entity"), **entity})

    async def delete_library_file(self, request: Request) -> Response:
        """``DELETE /api/libraryfiles/{fileName}``: 204, or 404 when absent."""
        name = request.path_params["file_name"]
        with self.state.lock:
            self.state.tick()
            if self.state.library.pop(name.lower(), None) is None:
                raise ApiError(404, "NotFound", f"Library file '{name}' was not found")
        return Response(status_code=204)

    # -- paging ------------------------------------------------------------------------------------------------
    def _page(
        self,
        request: Request,
        path: str,
        items: Sequence[T],
        view: Callable[[T], Mapping[str, Any]],
        render: Callable[[T], dict[str, Any]],
        filter_fields: tuple[str, ...],
        order_fields: tuple[str, ...],
        entity_set: str,
    ) -> Response:
        """One server-driven page: filter and sort ``items`` on ``view(item)``, render only the page's items.

        ``view`` may return the same mapping each call, rebound to the item (:mod:`.views`): each result is read
        before the next call.

        ``$top`` caps the whole result (at most ``max_top``); a page holds at most ``page_size`` entities and an
        ``@odata.nextLink`` (same ``$filter`` and ``$orderby``, ``$skip`` moved on, ``$top`` reduced) while more
        of the ``$top`` remain, as MDE answers.
        """
        query = request.query_params
        filter_text = query.get("$filter", "")
        predicate = compile_filter(filter_text, filter_fields)
        selected = [item for item in items if predicate(view(item), {})]
        orderby = query.get("$orderby")
        if orderby:
            name, descending = sort_key_for(orderby, order_fields)
            keyed = [(view(item).get(name), item) for item in selected]
            present = [(_sortable(key), item) for key, item in keyed if key is not None]
            present.sort(key=lambda pair: pair[0], reverse=descending)
            selected = [item for _, item in present] + [item for key, item in keyed if key is None]
        max_top = self.state.limits.max_top
        top = _int_option(query.get("$top"), "$top", max_top)
        if top > max_top:
            raise ODataError(
                f"The limit of '{max_top}' for Top query has been exceeded. "
                f"The value from the incoming request is '{top}'."
            )
        skip = _int_option(query.get("$skip"), "$skip", 0)
        window = selected[skip : skip + top]
        page_size = max(1, self.state.limits.page_size)
        page = [render(item) for item in window[:page_size]]
        body: dict[str, Any] = {"@odata.context": self._context(entity_set), "value": page}
        if len(window) > page_size:
            options = {
                "$filter": filter_text,
                "$orderby": orderby or "",
                "$top": str(top - page_size),
                "$skip": str(skip + page_size),
            }
            encoded = urlencode({key: value for key, value in options.items() if value}, quote_via=quote)
            body["@odata.nextLink"] = f"{self.api_url}{path}?{encoded}"
        return JSONResponse(body)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "InvalidRequestBody", "The request body is empty")
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "InvalidRequestBody", "The request body is not valid JSON") from None


def _get_key(body: Any, key: str) -> Any:
    """A top-level body property; property names bind case-insensitively, as in MDE."""
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidRequestBody", "The request body must be a JSON object")
    for name, value in body.items():
        if name.lower() == key.lower():
            return value
    return None


def _parse_run_body(body: Any) -> tuple[list[Command], str | None]:
    raw_commands = _get_key(body, "Commands")
    comment = _get_key(body, "Comment")
    if raw_commands is None:
        raise ApiError(400, "MissingRequiredParameter", "Commands is required")
    if not isinstance(raw_commands, list) or not raw_commands:
        raise ApiError(400, "InvalidRequestBody", "Commands must be a non-empty list")
    if comment is not None and not isinstance(comment, str):
        raise ApiError(400, "InvalidRequestBody", "Comment must be a string")
    commands: list[Command] = []
    for index, raw in enumerate(raw_commands):
        if not isinstance(raw, dict):
            raise ApiError(400, "InvalidRequestBody", f"Commands[{index}] must be an object")
        command_type = raw.get("type")
        if command_type not in COMMAND_TYPES:
            raise ApiError(
                400,
                "InvalidRequestBody",
                f"Commands[{index}].type {command_type!r} is not one of {', '.join(COMMAND_TYPES)}",
            )
        params = raw.get("params", [])
        if not isinstance(params, list):
            raise ApiError(400, "InvalidRequestBody", f"Commands[{index}].params must be a list")
        required, optional = COMMAND_PARAMETERS[command_type]
        clean: list[dict[str, str]] = []
        for param in params:
            if not isinstance(param, dict) or not isinstance(param.get("key"), str):
                raise ApiError(
                    400, "InvalidRequestBody", f"Commands[{index}].params entries need a 'key' and a 'value'"
                )
            key, value = param["key"], param.get("value")
            if key not in (required, *optional):
                raise ApiError(
                    400,
                    "InvalidRequestBody",
                    f"Commands[{index}]: parameter '{key}' is not valid for {command_type} (keys are case-sensitive)",
                )
            if value is not None and not isinstance(value, str):
                raise ApiError(400, "InvalidRequestBody", f"Commands[{index}]: parameter '{key}' must be a string")
            clean.append({"key": key, "value": value or ""})
        if not any(param["key"] == required and param["value"] for param in clean):
            raise ApiError(
                400, "MissingRequiredParameter", f"Commands[{index}] ({command_type}) requires parameter '{required}'"
            )
        commands.append(Command(index=index, type=command_type, params=clean))
    return commands, comment


def _int_option(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ODataError(f"Invalid value '{value}' for {name}") from None
    if number < 0:
        raise ODataError(f"Invalid value '{value}' for {name}")
    return number


def _sortable(value: Any) -> Any:
    if isinstance(value, Instant):
        return value.epoch
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return value
