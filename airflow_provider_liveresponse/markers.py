"""Submission markers: how a live-response action is tied to the Airflow task (and try) that submitted it.

Every submission's comment ends with ``[airflow:<marker>]``. An operator's marker is unique to the DAG, run, task
and map index and stable across tries; each try submits as ``<marker>.<try>``. Before submitting, a retry (or a
worker that died after submitting) looks its marker up and reattaches instead of running the commands again.
This module is the one place that knows the format.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError

_MARKER = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")


def marker_tag(marker: str) -> str:
    """The text appended to a comment to mark a submission: ``[airflow:<marker>]``."""
    return f"[airflow:{marker}]"


def check_marker(marker: str) -> str:
    """``marker``, or a clear error when it cannot be carried in a comment."""
    if not isinstance(marker, str) or not _MARKER.match(marker):
        raise LiveResponseConfigError(f"marker {marker!r} must be 8 to 128 characters of letters, digits and . _ : -")
    return marker


def task_marker(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """The marker of one task of one DAG run (and map index): the same on every try."""
    key = f"{dag_id}|{run_id}|{task_id}|{map_index if map_index is not None else -1}"
    return "af-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def marker_for_context(context: Any) -> str:
    """The :func:`task_marker` of the task instance in an Airflow context."""
    ti = context["ti"]
    return task_marker(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))


def try_marker(marker: str, try_number: int) -> str:
    """The marker one try submits with: ``<marker>.<try>``."""
    return f"{marker}.{try_number}"


def marked_comment(comment: str, marker: str) -> str:
    """``comment`` with the marker's tag appended (once)."""
    tag = marker_tag(marker)
    return comment if tag in comment else f"{comment.strip()} {tag}"


def carries_marker(comment: str | None, marker: str) -> bool:
    """Whether ``comment`` carries exactly ``marker``."""
    return marker_tag(marker) in (comment or "")


def carries_marker_family(comment: str | None, marker: str) -> bool:
    """Whether ``comment`` carries ``marker`` or any try of it (``marker.<try>``)."""
    text = comment or ""
    return marker_tag(marker) in text or marker_tag(marker)[:-1] + "." in text


__all__ = [
    "carries_marker",
    "carries_marker_family",
    "check_marker",
    "marked_comment",
    "marker_for_context",
    "marker_tag",
    "task_marker",
    "try_marker",
]
