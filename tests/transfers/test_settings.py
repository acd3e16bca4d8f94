"""The transfer's parameters: checked through the shared validation module, normalised (durations in seconds,
command indexes sorted), the destination's connection kept."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseConfigError, LiveResponseParameterTypeError
from airflow_provider_liveresponse.transfers.settings import check_settings, command_indexes, conn_id_of, destination

if TYPE_CHECKING:
    from pathlib import Path


def params(tmp_path: Path, **changes: Any) -> Any:
    values = {
        "action_id": " 7c1d4ea0-5b0e-4a34-9d2e-000000000000 ",
        "destination": tmp_path.as_uri(),
        "dest_conn_id": None,
        "command_indexes": None,
        "overwrite": False,
        "keep_compressed": False,
        "content_digests": True,
        "mde_conn_id": "mde_live_response_default",
        "chunk_size": 4 * 1024 * 1024,
        "max_resumes": 8,
        "max_retry_wait": 600.0,
        "progress_interval": 30.0,
        "transcript_lines": 10,
    }
    return SimpleNamespace(**{**values, **changes})


def test_values_come_back_normalised(tmp_path: Path) -> None:
    settings = check_settings(
        params(tmp_path, max_retry_wait=timedelta(minutes=2), progress_interval=5, command_indexes="[2, 0]")
    )
    assert settings.action_id == "7c1d4ea0-5b0e-4a34-9d2e-000000000000"
    assert settings.max_retry_wait == 120.0
    assert settings.progress_interval == 5.0
    assert settings.command_indexes == [0, 2]
    assert str(settings.destination) == tmp_path.as_uri()


def test_max_retry_wait_may_be_zero_to_raise_at_the_first_throttle(tmp_path: Path) -> None:
    assert check_settings(params(tmp_path, max_retry_wait=0)).max_retry_wait == 0.0


def test_a_wrong_type_is_a_type_error_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(LiveResponseParameterTypeError, match="progress_interval") as caught:
        check_settings(params(tmp_path, progress_interval="30"))
    assert isinstance(caught.value, TypeError)


@pytest.mark.parametrize(("given", "expected"), [(None, None), (3, [3]), ([4, 1], [1, 4]), ("1", [1])])
def test_command_indexes_take_a_list_one_index_or_rendered_text(given: Any, expected: list[int] | None) -> None:
    assert command_indexes(given) == expected


def test_command_indexes_that_are_not_json_are_named() -> None:
    with pytest.raises(LiveResponseConfigError, match="command_indexes rendered to 'first'"):
        command_indexes("first")


def test_the_destinations_connection_comes_from_the_url_or_dest_conn_id() -> None:
    assert conn_id_of(destination("s3://evidence_conn@bucket/cases", None)) == "evidence_conn"
    assert conn_id_of(destination("s3://bucket/cases", "other_conn")) == "other_conn"
    assert conn_id_of(destination("s3://bucket/cases", "")) is None


def test_a_bucket_is_required_for_an_object_store() -> None:
    with pytest.raises(LiveResponseConfigError, match="names no bucket or container"):
        destination("s3:///", "evidence_conn")
