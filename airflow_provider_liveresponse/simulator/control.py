"""The control API for tests and demos, on the API host under ``/_sim/`` (no authentication: loopback only).

==========================================  ================================================================
``GET /_sim/counters``                      every counter (``token_requests``, ``calls:<group>``,
                                            ``throttled:<group>``, ``actions_created``, ``blob_requests``,
                                            ``blob_requests_with_authorization``, ``max_concurrent_sessions``)
``GET /_sim/clock``                         ``{"now", "epoch", "speed"}``
``POST /_sim/clock/advance``                ``{"seconds": N}``: jump the simulated clock ahead
``GET /_sim/faults``                        armed faults by group
``POST /_sim/faults``                       ``{"group": "get_action", "fail_next": 2, "status": 503, ...}``
``DELETE /_sim/faults``                     disarm all (``?group=x`` for one group)
``GET /_sim/limits``                        current limits and profile
``POST /_sim/limits``                       ``{"profile": "current"}`` and/or single limits
``GET /_sim/devices``                       every device as a Machine entity plus ``online``
``POST /_sim/devices``                      ``{"computerDnsName", "osPlatform", "online", "onboarded",
                                            "rbacGroupName", "automation", "machineTags"}`` -> 201
``PATCH /_sim/devices/{id}``                ``{"online": true|false}``
``POST /_sim/devices/{id}/files``           ``{"path": "C:\\\\x.bin", "size": N}`` -> 201
``GET /_sim/actions``                       ``{"actions_created": n, "value": [MachineAction, ...]}``
``GET /_sim/results/{action}/{index}/digest``  raw and compressed size / sha256 / md5 of a result
``POST /_sim/tokens/revoke``                every issued token becomes invalid (401)
==========================================  ================================================================
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_liveresponse.simulator.clock import format_datetime
from airflow_provider_liveresponse.simulator.errors import ApiError, error_response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from airflow_provider_liveresponse.simulator.identity import Identity
    from airflow_provider_liveresponse.simulator.state import SimulatorState

_DEVICE_OPTIONS = {
    "osPlatform": "os_platform",
    "online": "online",
    "onboarded": "onboarded",
    "rbacGroupName": "rbac_group_name",
    "automation": "automation",
    "machineTags": "machine_tags",
}


class Control:
    """The ``/_sim/`` routes."""

    def __init__(self, state: SimulatorState, identity: Identity) -> None:
        self.state = state
        self.identity = identity

    def routes(self) -> list[Route]:
        """The control routes."""
        w = _wrap
        return [
            Route("/_sim/counters", w(self.counters), methods=["GET"]),
            Route("/_sim/clock", w(self.clock), methods=["GET"]),
            Route("/_sim/clock/advance", w(self.advance), methods=["POST"]),
            Route("/_sim/faults", w(self.faults), methods=["GET", "POST", "DELETE"]),
            Route("/_sim/limits", w(self.limits), methods=["GET", "POST"]),
            Route("/_sim/devices", w(self.devices), methods=["GET", "POST"]),
            Route("/_sim/devices/{machine_id}", w(self.patch_device), methods=["PATCH"]),
            Route("/_sim/devices/{machine_id}/files", w(self.add_file), methods=["POST"]),
            Route("/_sim/actions", w(self.actions), methods=["GET"]),
            Route("/_sim/results/{action_id}/{index:int}/digest", w(self.digest), methods=["GET"]),
            Route("/_sim/tokens/revoke", w(self.revoke), methods=["POST"]),
        ]

    async def counters(self, request: Request) -> Response:
        """Every counter."""
        with self.state.lock:
            return JSONResponse(dict(self.state.counters))

    def _clock_body(self) -> dict[str, Any]:
        now = self.state.clock.time()
        return {"now": format_datetime(now), "epoch": now, "speed": self.state.clock.speed}

    async def clock(self, request: Request) -> Response:
        """The simulated time."""
        return JSONResponse(self._clock_body())

    async def advance(self, request: Request) -> Response:
        """Jump the clock ahead."""
        body = await _body(request)
        seconds = body.get("seconds")
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise ApiError(400, "InvalidInput", "seconds must be a non-negative number")
        self.state.advance_clock(float(seconds))
        return JSONResponse(self._clock_body())

    async def faults(self, request: Request) -> Response:
        """Read, arm or disarm faults."""
        faults = self.state.faults
        if request.method == "POST":
            body = await _body(request)
            group = body.pop("group", None) or body.pop("endpoint", None)
            if not isinstance(group, str):
                raise ApiError(400, "MissingRequiredParameter", "group is required")
            faults.set(group, **body)
        elif request.method == "DELETE":
            faults.clear(request.query_params.get("group"))
        return JSONResponse(faults.as_dict())

    async def limits(self, request: Request) -> Response:
        """Read or change the limits."""
        if request.method == "POST":
            body = await _body(request)
            profile = body.pop("profile", None)
            self.state.set_limits(profile, **body)
        return JSONResponse({"profile": self.state.profile, **self.state.limits.as_dict()})

    async def devices(self, request: Request) -> Response:
        """List devices, or add one."""
        if request.method == "POST":
            body = await _body(request)
            host = body.pop("computerDnsName", None)
            if not isinstance(host, str) or not host:
                raise ApiError(400, "MissingRequiredParameter", "computerDnsName is required")
            unknown = set(body) - set(_DEVICE_OPTIONS)
            if unknown:
                raise ApiError(400, "InvalidInput", f"unknown device option(s): {', '.join(sorted(unknown))}")
            device = self.state.add_device(host, **{_DEVICE_OPTIONS[key]: value for key, value in body.items()})
            return JSONResponse(self._device(device.id), status_code=201)
        with self.state.lock:
            ids = list(self.state.devices)
        return JSONResponse({"value": [self._device(machine_id) for machine_id in ids]})

    def _device(self, machine_id: str) -> dict[str, Any]:
        with self.state.lock:
            now = self.state.tick()
            device = self.state.devices[machine_id]
            return {**device.to_machine(now, format_datetime), "online": device.online}

    async def patch_device(self, request: Request) -> Response:
        """Bring a device online or take it offline."""
        body = await _body(request)
        machine_id = request.path_params["machine_id"]
        online = body.get("online")
        if not isinstance(online, bool):
            raise ApiError(400, "InvalidInput", "online must be true or false")
        try:
            device = self.state.set_device_online(machine_id, online)
        except KeyError:
            raise ApiError(404, "ResourceNotFound", f"Machine {machine_id} was not found") from None
        return JSONResponse(self._device(device.id))

    async def add_file(self, request: Request) -> Response:
        """Create a file of a given size on a device."""
        body = await _body(request)
        path, size = body.get("path"), body.get("size")
        if not isinstance(path, str) or not path or not isinstance(size, int) or size < 0:
            raise ApiError(400, "InvalidInput", "path (string) and size (non-negative integer) are required")
        try:
            self.state.add_device_file(request.path_params["machine_id"], path, size)
        except KeyError:
            raise ApiError(
                404, "ResourceNotFound", f"Machine {request.path_params['machine_id']} was not found"
            ) from None
        return JSONResponse({"path": path, "size": size}, status_code=201)

    async def actions(self, request: Request) -> Response:
        """Every action, including ones a client never heard about."""
        with self.state.lock:
            self.state.tick()
            return JSONResponse(
                {
                    "actions_created": self.state.counters["actions_created"],
                    "value": [action.to_entity() for action in self.state.actions.values()],
                }
            )

    async def digest(self, request: Request) -> Response:
        """The expected digests of a result (materializes the blob if needed)."""
        action_id, index = request.path_params["action_id"], request.path_params["index"]
        return JSONResponse(await asyncio.to_thread(self.state.result_digest, action_id, index))

    async def revoke(self, request: Request) -> Response:
        """Invalidate every token issued so far."""
        self.identity.revoke_tokens()
        return Response(status_code=204)


def _wrap(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as error:
            return error_response(error.status, error.code, error.message)
        except (ValueError, TypeError) as error:
            return error_response(400, "InvalidInput", str(error))

    return endpoint


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "InvalidRequestBody", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidRequestBody", "The request body must be a JSON object")
    return body
