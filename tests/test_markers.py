"""Submission markers: the one format, each try's suffix, family matching, one marker per task and map index."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
from airflow_provider_liveresponse.markers import (
    carries_marker,
    carries_marker_family,
    check_marker,
    marked_comment,
    marker_for_context,
    marker_tag,
    task_marker,
    try_marker,
)

MARKER = "af-0123456789abcdef0123456789abcdef"


def test_the_tag_is_airflow_and_the_marker_in_brackets() -> None:
    assert marker_tag(MARKER) == f"[airflow:{MARKER}]"


def test_a_task_marker_is_af_and_32_hex_characters() -> None:
    assert re.fullmatch(r"af-[0-9a-f]{32}", task_marker("dag", "run", "task", None))
    assert check_marker(task_marker("dag", "run", "task", 3)) == task_marker("dag", "run", "task", 3)


def test_each_try_submits_with_its_number_as_a_suffix() -> None:
    assert try_marker(MARKER, 3) == f"{MARKER}.3"
    assert check_marker(try_marker(MARKER, 3)) == f"{MARKER}.3"


def test_the_marker_is_the_same_on_every_try_of_a_task() -> None:
    first = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1)
    second = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=2)
    assert marker_for_context({"ti": first}) == marker_for_context({"ti": second})


def test_an_unmapped_task_and_map_index_minus_one_share_a_marker() -> None:
    assert task_marker("d", "r", "t", None) == task_marker("d", "r", "t", -1)


def test_each_map_index_has_its_own_marker() -> None:
    markers = {task_marker("d", "r", "t", index) for index in (-1, 0, 1, 2, 10)}
    assert len(markers) == 5


@pytest.mark.parametrize(
    "other", [("d2", "r", "t"), ("d", "r2", "t"), ("d", "r", "t2"), ("d|r", "", "t"), ("d", "r|t", "")]
)
def test_another_dag_run_or_task_has_another_marker(other: tuple[str, str, str]) -> None:
    assert task_marker(*other, 0) != task_marker("d", "r", "t", 0)


def test_the_marker_is_appended_to_the_comment_once() -> None:
    once = marked_comment("collect prefetch ", MARKER)
    assert once == f"collect prefetch [airflow:{MARKER}]"
    assert marked_comment(once, MARKER) == once


def test_exact_matching_finds_only_that_marker() -> None:
    comment = marked_comment("c", try_marker(MARKER, 2))
    assert carries_marker(comment, try_marker(MARKER, 2))
    assert not carries_marker(comment, MARKER)
    assert not carries_marker(comment, try_marker(MARKER, 1))
    assert not carries_marker(None, MARKER)


def test_family_matching_finds_the_marker_and_every_try_of_it() -> None:
    assert carries_marker_family(marked_comment("c", MARKER), MARKER)
    assert carries_marker_family(marked_comment("c", try_marker(MARKER, 1)), MARKER)
    assert carries_marker_family(marked_comment("c", try_marker(MARKER, 12)), MARKER)
    assert not carries_marker_family(None, MARKER)
    assert not carries_marker_family("no marker here", MARKER)


@pytest.mark.parametrize("suffix", ["0", "f", "-x", "_1", ":1"])
def test_family_matching_does_not_match_a_marker_sharing_a_prefix(suffix: str) -> None:
    assert not carries_marker_family(marked_comment("c", MARKER + suffix), MARKER)
    assert not carries_marker_family(marked_comment("c", try_marker(MARKER + suffix, 1)), MARKER)


@pytest.mark.parametrize(
    "bad", ["short", "x" * 129, "has space here", "brack]ets-1234", "", None, 12345678, b"af-12345678"]
)
def test_a_marker_a_comment_cannot_carry_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(LiveResponseConfigError, match="marker"):
        check_marker(bad)  # type: ignore[arg-type]
