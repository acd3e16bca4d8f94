"""MDE API errors: an exception that handlers raise and the JSON body MDE answers with."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    """An MDE API error: HTTP status, error code and message (``{"error": {"code", "message", "target"}}``)."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        #: For 429: the simulated seconds to wait (the API turns it into a ``Retry-After`` header).
        self.retry_after = retry_after


def error_body(code: str, message: str) -> dict[str, Any]:
    """MDE's error body."""
    return {"error": {"code": code, "message": message, "target": str(uuid.uuid4())}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error response in MDE's shape."""
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)
