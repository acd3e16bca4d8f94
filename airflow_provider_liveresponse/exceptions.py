"""Exceptions of the MDE Live Response provider, written for the responder who reads a failed task's log."""

from __future__ import annotations

from airflow.exceptions import AirflowException  # type: ignore[attr-defined,unused-ignore]

#: What to do next, by API error code or HTTP status.
_HINTS: dict[str | int, str] = {
    401: (
        "the token was refused twice: check the connection's tenant_id, client id and secret or certificate, "
        "and that the app registration still exists"
    ),
    403: (
        "the app registration lacks a permission: grant the WindowsDefenderATP application permissions "
        "Machine.LiveResponse (run, get, cancel), Machine.Read.All (machine lookup) and Library.Manage "
        "(library), then grant admin consent"
    ),
    "DisallowedOperation": (
        "the device's group has no automation level: in the Defender portal set an automation level on "
        "its device group, or collect from this device by hand"
    ),
    "DisabledFeature": "live response is turned off for the tenant: enable it under Settings > Endpoints",
    404: "no such device or action: check the machine id (40 hex characters) or action id",
    429: (
        "MDE's rate limit held past the retry budget: lower the number of concurrent tasks (a pool of 25 "
        "slots with include_deferred=True), raise max_retry_wait, or spread the runs out"
    ),
    "ActiveRequestAlreadyExists": (
        "the device already has an active live-response session: wait for it to end, or cancel it in the "
        "Defender portal if it is stale"
    ),
    "ClientVersionNotSupported": (
        "the device is only discovered, not onboarded to MDE: onboard it before running live response"
    ),
    "OsPlatformNotSupported": "live response does not support this device's operating system",
    "InvalidRequestBody": "the request was malformed: check the commands' types and param keys",
    "MissingRequiredParameter": "a command lacks a required param: check the commands' param keys",
}


class LiveResponseError(AirflowException):
    """Base class of every error this provider raises."""


class LiveResponseConfigError(LiveResponseError, ValueError):
    """The connection or a parameter is wrong; raised before any API call, naming the field and the fix."""


class LiveResponseParameterTypeError(LiveResponseConfigError, TypeError):
    """A parameter has the wrong type (text or None where a number belongs, say); names the field."""


class LiveResponseAuthError(LiveResponseError):
    """Microsoft Entra ID refused to issue a token (wrong tenant, client id, secret or certificate)."""


class LiveResponseApiError(LiveResponseError):
    """The MDE API answered with an error (or not at all), with what is needed to act on it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        api_message: str | None = None,
        correlation_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
        action_id: str | None = None,
        machine_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.code = code
        self.api_message = api_message
        self.correlation_id = correlation_id
        self.method = method
        self.path = path
        self.action_id = action_id
        self.machine_id = machine_id
        super().__init__(self._render(message))

    @property
    def hint(self) -> str | None:
        """What a person should do about this error."""
        if self.code and self.code in _HINTS:
            return _HINTS[self.code]
        if self.status is not None and self.status in _HINTS:
            return _HINTS[self.status]
        if self.status is not None and self.status >= 500:
            return "MDE had a transient failure past the retry budget: rerun the task later"
        return None

    def _render(self, message: str) -> str:
        parts = [message]
        detail = []
        if self.status is not None:
            detail.append(f"HTTP {self.status}")
        if self.code:
            detail.append(f"code {self.code}")
        if self.method and self.path:
            detail.append(f"on {self.method} {self.path}")
        if detail:
            parts.append(f"({', '.join(detail)})")
        if self.api_message:
            parts.append(f"MDE said: {self.api_message}.")
        if self.action_id:
            parts.append(f"Action: {self.action_id}.")
        if self.machine_id:
            parts.append(f"Machine: {self.machine_id}.")
        if self.correlation_id:
            parts.append(f"Correlation id: {self.correlation_id}.")
        if self.hint:
            parts.append(f"What to do: {self.hint}.")
        return " ".join(parts)


class ResultIntegrityError(LiveResponseError):
    """A downloaded result did not match its announced length or Content-MD5 even after retrying."""
