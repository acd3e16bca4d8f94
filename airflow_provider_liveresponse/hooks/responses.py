"""Turning MDE's answers into models, shared by the sync and async hooks.

Every documented answer is a JSON object; lists hold their entities under ``value``. An answer of another shape
(a proxy's page, a truncated body, a field of the wrong type) becomes a :class:`LiveResponseApiError` that
names the call, never a bare pydantic, type or attribute error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from airflow_provider_liveresponse.exceptions import LiveResponseApiError

if TYPE_CHECKING:
    from airflow_provider_liveresponse.models import MachineAction

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)

_RERUN = "rerun the task; if it persists, check the connection's api_url (a proxy may answer in MDE's place)"


def json_object(
    payload: Any,
    what: str,
    *,
    status: int | None = None,
    path: str | None = None,
    method: str | None = None,
    action_id: str | None = None,
    machine_id: str | None = None,
) -> dict[str, Any]:
    """``payload`` if it is a JSON object, else a clear error naming the call."""
    if not isinstance(payload, dict):
        raise LiveResponseApiError(
            f"{what}: MDE answered with JSON that is not an object (a {type(payload).__name__}); {_RERUN}",
            status=status,
            path=path,
            method=method,
            action_id=action_id,
            machine_id=machine_id,
        )
    return payload


def items(payload: dict[str, Any], what: str) -> list[Any]:
    """The ``value`` list of a list answer (empty when absent)."""
    value = payload.get("value", [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise LiveResponseApiError(
            f"{what}: MDE's answer has a 'value' that is not a list (a {type(value).__name__}); {_RERUN}"
        )
    return value


def next_link(payload: dict[str, Any], what: str) -> str | None:
    """The ``@odata.nextLink`` of a list answer, if any."""
    link = payload.get("@odata.nextLink")
    if link is None or link == "":
        return None
    if not isinstance(link, str):
        raise LiveResponseApiError(
            f"{what}: MDE's answer has an '@odata.nextLink' that is not a URL (a {type(link).__name__}); {_RERUN}"
        )
    return link


def entity(model: type[M], data: Any, what: str, *, action_id: str | None = None, machine_id: str | None = None) -> M:
    """``data`` validated as ``model``; a mismatch names the call, the field and what to do."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(part) for part in errors[0]["loc"]) if errors else ""
        problem = errors[0]["msg"] if errors else str(exc)
        raise LiveResponseApiError(
            f"{what}: MDE's answer is not a valid {model.__name__} ({where or 'the answer'}: {problem}); {_RERUN}",
            action_id=action_id,
            machine_id=machine_id,
        ) from None


def already_ended(refusal: LiveResponseApiError, current: MachineAction) -> MachineAction:
    """``current`` when MDE refused to cancel it because it had already ended; else the refusal is raised."""
    if not current.is_terminal:
        raise refusal
    log.info("Action %s had already ended (%s); nothing to cancel", current.id, current.status)
    return current
