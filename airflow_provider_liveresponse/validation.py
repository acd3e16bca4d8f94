"""Parameter checks shared by every public class and hook method: one place, one style of message.

Each check returns the normalised value or raises :class:`~airflow_provider_liveresponse.exceptions.
LiveResponseConfigError` naming the field, what was given and the fix, before any API call. A value of the wrong
type raises :class:`~airflow_provider_liveresponse.exceptions.LiveResponseParameterTypeError`, which is both a
``LiveResponseConfigError`` and a ``TypeError``. NaN, infinities, negatives, booleans, text and None where a number
belongs all fail here: a NaN budget would make every ``waited > budget`` comparison false and wait forever.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError, LiveResponseParameterTypeError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

T = TypeVar("T")

_MACHINE_ID = re.compile(r"^[0-9a-fA-F]{40}$")
_ACTION_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z\-]{7,127}$")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def duration(
    value: Any,
    field: str,
    *,
    zero_allowed: bool = False,
    maximum: float | None = None,
) -> float:
    """Seconds, from a number or a :class:`datetime.timedelta`: finite, positive (or 0 with ``zero_allowed``),
    at most ``maximum``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif _is_number(value):
        seconds = float(value)
    else:
        raise LiveResponseParameterTypeError(
            f"{field} must be a number of seconds or a timedelta, got {value!r} ({type(value).__name__})"
        )
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero_allowed):
        least = "0 or more" if zero_allowed else "more than 0"
        raise LiveResponseConfigError(f"{field} must be a finite number of seconds, {least}; got {value!r}")
    if maximum is not None and seconds > maximum:
        raise LiveResponseConfigError(f"{field} must be at most {maximum:g} seconds; got {value!r}")
    return seconds


def rendered_number(text: str) -> Any:
    """A rendered template's number (``"900"``, ``"12.5"``; ``"None"``, ``"null"`` or empty: None), for a DAG
    that renders templates as text; other text is returned unchanged for the field's check to refuse by name."""
    stripped = text.strip()
    if stripped in ("", "None", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(stripped)
        except ValueError:
            continue
    return text


def optional_duration(
    value: Any,
    field: str,
    *,
    zero_allowed: bool = False,
    maximum: float | None = None,
) -> float | None:
    """:func:`duration`, or None when ``value`` is None (the feature is off)."""
    return None if value is None else duration(value, field, zero_allowed=zero_allowed, maximum=maximum)


def count(value: Any, field: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number from ``minimum`` to ``maximum`` (booleans and floats are refused)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise LiveResponseParameterTypeError(f"{field} must be a whole number, got {value!r} ({type(value).__name__})")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        raise LiveResponseConfigError(f"{field} must be a whole number {bounds}; got {value!r}")
    return value


def optional_count(value: Any, field: str, *, minimum: int = 1, maximum: int | None = None) -> int | None:
    """None, or a whole number from ``minimum`` to ``maximum`` (see :func:`count`)."""
    return None if value is None else count(value, field, minimum=minimum, maximum=maximum)


def flag(value: Any, field: str) -> bool:
    """True or False (not 1, "yes" or None: a template that rendered to text is a mistake worth naming)."""
    if not isinstance(value, bool):
        raise LiveResponseParameterTypeError(f"{field} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def text(value: Any, field: str, *, empty_allowed: bool = False, hint: str = "") -> str:
    """Text (stripped); empty only with ``empty_allowed``. ``hint`` says what the field should hold."""
    what = f" ({hint})" if hint else ""
    if not isinstance(value, str):
        raise LiveResponseParameterTypeError(f"{field} must be text{what}, got {value!r} ({type(value).__name__})")
    stripped = value.strip()
    if not stripped and not empty_allowed:
        raise LiveResponseConfigError(f"{field} is empty: give {hint or 'a value'}")
    return stripped


def optional_text(value: Any, field: str, *, empty_allowed: bool = False, hint: str = "") -> str | None:
    """:func:`text`, or None when ``value`` is None."""
    return None if value is None else text(value, field, empty_allowed=empty_allowed, hint=hint)


def choice(value: Any, field: str, choices: Collection[T]) -> T:
    """One of ``choices``."""
    if value not in choices:
        known = ", ".join(repr(c) for c in choices)
        raise LiveResponseConfigError(f"{field} must be one of {known}; got {value!r}")
    result: T = value
    return result


def machine_id(value: Any, field: str = "machine_id") -> str:
    """A 40-hex-character MDE device id, lower-cased."""
    if not isinstance(value, str) or not _MACHINE_ID.match(value.strip()):
        raise LiveResponseConfigError(
            f"{field} {value!r} is not an MDE device id (40 hexadecimal characters, as in the device "
            "page's URL); to start from a host name, look it up with find_machines(computer_dns_name=...)"
        )
    return value.strip().lower()


def action_id(value: Any, field: str = "action_id") -> str:
    """A machine action id (a GUID)."""
    if not isinstance(value, str) or not _ACTION_ID.match(value.strip()):
        raise LiveResponseConfigError(
            f"{field} {value!r} is not an MDE machine action id (a GUID such as "
            "'7c1d4ea0-...'); pass the id returned by LiveResponseOperator (XCom key 'action_id')"
        )
    return value.strip()


def conn_id(value: Any, field: str = "mde_conn_id") -> str:
    """An Airflow connection id."""
    return text(value, field, hint="the id of an Airflow connection of type mde_live_response")


def optional_flag(value: Any, field: str) -> bool | None:
    """:func:`flag`, or None when ``value`` is None (the default is decided elsewhere)."""
    return None if value is None else flag(value, field)


def timestamp(value: Any, field: str) -> float:
    """A point in time as UNIX seconds (a finite number; a deadline, say)."""
    if not _is_number(value):
        raise LiveResponseParameterTypeError(
            f"{field} must be a UNIX timestamp in seconds (a number), got {value!r} ({type(value).__name__})"
        )
    if not math.isfinite(value):
        raise LiveResponseConfigError(f"{field} must be a finite UNIX timestamp in seconds; got {value!r}")
    return float(value)


def optional_timestamp(value: Any, field: str) -> float | None:
    """:func:`timestamp`, or None when ``value`` is None (no deadline)."""
    return None if value is None else timestamp(value, field)


def text_list(value: Any, field: str, item: Callable[[Any, str], str] | None = None) -> list[str]:
    """A non-empty list (or tuple) of texts, each checked by ``item`` (default :func:`text`) as ``field[i]``,
    repeats dropped (the first kept); a lone string is refused (it is not a list of one)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise LiveResponseParameterTypeError(
            f"{field} must be a list of texts, got {value!r:.80} ({type(value).__name__}); wrap one value in [...]"
        )
    if not value:
        raise LiveResponseConfigError(f"{field} is empty: give at least one value")
    check = item or text
    return list(dict.fromkeys(check(entry, f"{field}[{index}]") for index, entry in enumerate(value)))


def optional_datetime(value: Any, field: str) -> datetime | None:
    """A :class:`datetime.datetime` (naive is taken as UTC where it is used), or None when ``value`` is None;
    text and numbers are refused, as a template that rendered a date to text is a mistake worth naming."""
    if value is not None and not isinstance(value, datetime):
        raise LiveResponseParameterTypeError(
            f"{field} must be a datetime (for example datetime.now(UTC) - timedelta(hours=1)), "
            f"got {value!r:.80} ({type(value).__name__})"
        )
    return value


def fraction(value: Any, field: str) -> float:
    """A share of a whole: a finite number more than 0 and at most 1 (booleans, text and None are refused)."""
    if not _is_number(value):
        raise LiveResponseParameterTypeError(
            f"{field} must be a number more than 0 and at most 1, got {value!r:.80} ({type(value).__name__})"
        )
    if not math.isfinite(value) or not 0 < value <= 1:
        raise LiveResponseConfigError(f"{field} must be a number more than 0 and at most 1; got {value!r}")
    return float(value)


__all__ = [
    "action_id",
    "choice",
    "conn_id",
    "count",
    "duration",
    "flag",
    "fraction",
    "machine_id",
    "optional_datetime",
    "optional_duration",
    "optional_flag",
    "optional_text",
    "optional_timestamp",
    "text",
    "text_list",
    "timestamp",
]
