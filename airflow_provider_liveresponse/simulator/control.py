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
``GET /_sim/devices``                       every device as a Machine entity plus ``online`` (``?tag=x``: one tag)
``POST /_sim/devices``                      ``{"computerDnsName", "osPlatform", "online", "onboarded",
                                            "rbacGroupName", "automation", "machineTags", "offlineFor"}`` -> 201
``PATCH /_sim/devices/{id}``                ``{"online": true|false}``: now; with ``"at"`` (epoch seconds or ISO
                                            text) or ``"afterSeconds"``: at that simulated time (``scheduled``)
``POST /_sim/fleet``                        seed a large fleet: ``{"devices": 5000, "offlineFraction": 0.1,
                                            "tag", "group", "prefix", "domain", "osPlatform", "seed",
                                            "replace"}`` -> 201 with counts and offline host names
``GET /_sim/fleet``                         ``{"devices", "online", "activeOffline", "inactive"}`` now
                                            (``?tag=sweep``: of one tag)
``GET /_sim/usage``                         per API (``runliveresponse``, ``machineactions``, ``link``,
                                            ``library``, ``machines``): ``calls``, ``throttled`` (429s),
                                            ``peak_per_minute``, ``peak_per_hour``, ``per_hour``; plus
                                            ``submissions``, ``throttled_per_submission`` (``?since=epoch``)
``GET /_sim/sessions``                      per action ``created``, ``pickedUp``, ``ended``, ``pendingSeconds``,
                                            ``heldSeconds``; ``max_pending_seconds``, ``max_concurrent_sessions``
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

from airflow_provider_liveresponse.simulator.clock import format_datetime, parse_datetime
from airflow_provider_liveresponse.simulator.errors import ApiError, error_response
from airflow_provider_liveresponse.simulator.estate import FleetSpec, fleet_counts
from airflow_provider_liveresponse.simulator.usage import sessions_report

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
    "offlineFor": "offline_for",
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
            Route("/_sim/fleet", w(self.fleet), methods=["GET", "POST"]),
            Route("/_sim/usage", w(self.usage), methods=["GET"]),
            Route("/_sim/sessions", w(self.sessions), methods=["GET"]),
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
        tag = request.query_params.get("tag")
        with self.state.lock:
            now = self.state.tick()
            devices = [device for device in self.state.devices.values() if tag is None or tag in device.machine_tags]
            value = [{**self.state.machine_entity(device, now), "online": device.online} for device in devices]
        return JSONResponse({"value": value})

    def _device(self, machine_id: str) -> dict[str, Any]:
        with self.state.lock:
            now = self.state.tick()
            device = self.state.devices[machine_id]
            return {**self.state.machine_entity(device, now), "online": device.online}

    async def patch_device(self, request: Request) -> Response:
        """Bring a device online or take it offline, now or at a simulated time."""
        body = await _body(request)
        machine_id = request.path_params["machine_id"]
        online = body.get("online")
        if not isinstance(online, bool):
            raise ApiError(400, "InvalidInput", "online must be true or false")
        at = self._moment(body)
        try:
            device = self.state.set_device_online(machine_id, online, at)
        except KeyError:
            raise ApiError(404, "ResourceNotFound", f"Machine {machine_id} was not found") from None
        return JSONResponse({**self._device(device.id), "scheduled": self.state.scheduled_changes(device.id)})

    def _moment(self, body: dict[str, Any]) -> float | None:
        """The simulated time of ``at`` (epoch seconds or ISO 8601 text) or now + ``afterSeconds``; None: now."""
        at, after = body.get("at"), body.get("afterSeconds")
        if at is not None and after is not None:
            raise ApiError(400, "InvalidInput", "give at or afterSeconds, not both")
        if after is not None:
            if isinstance(after, bool) or not isinstance(after, (int, float)) or after < 0:
                raise ApiError(400, "InvalidInput", "afterSeconds must be a non-negative number of simulated seconds")
            return self.state.clock.time() + float(after)
        if at is None:
            return None
        if isinstance(at, str):
            try:
                return parse_datetime(at)
            except ValueError:
                raise ApiError(400, "InvalidInput", f"at must be epoch seconds or ISO 8601 text, got {at!r}") from None
        if isinstance(at, bool) or not isinstance(at, (int, float)):
            raise ApiError(400, "InvalidInput", f"at must be epoch seconds or ISO 8601 text, got {at!r}")
        return float(at)

    async def fleet(self, request: Request) -> Response:
        """Seed a large fleet, or count devices by state (online, offline but Active, Inactive)."""
        if request.method == "POST":
            summary = self.state.add_fleet(FleetSpec.from_options(await _body(request)))
            return JSONResponse(summary, status_code=201)
        tag = request.query_params.get("tag")
        with self.state.lock:
            now = self.state.tick()
            devices = [device for device in self.state.devices.values() if tag is None or tag in device.machine_tags]
            counts = fleet_counts(devices, now, self.state.limits.inactive_after_seconds)
        return JSONResponse(counts)

    async def usage(self, request: Request) -> Response:
        """Calls and 429s per API on the simulated clock, and 429s per submission."""
        since_text = request.query_params.get("since")
        try:
            since = float(since_text) if since_text else None
        except ValueError:
            raise ApiError(400, "InvalidInput", f"since must be epoch seconds, got {since_text!r}") from None
        with self.state.lock:
            now = self.state.tick()
            report = self.state.usage.report(now, since)
            submissions = sum(1 for action in self.state.actions.values() if action.created >= report["since"])
        throttled = report["apis"]["runliveresponse"]["throttled"]
        report["submissions"] = submissions
        report["submission_429s"] = throttled
        report["throttled_per_submission"] = throttled / submissions if submissions else 0.0
        return JSONResponse(report)

    async def sessions(self, request: Request) -> Response:
        """Each action's creation, pickup and end times on the simulated clock, and the peak of sessions."""
        with self.state.lock:
            now = self.state.tick()
            report = sessions_report(self.state.actions.values(), now, self.state.counters["max_concurrent_sessions"])
        return JSONResponse(report)

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
