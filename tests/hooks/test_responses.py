"""Turning MDE's answers into models: any other shape is a LiveResponseApiError naming the call."""

from __future__ import annotations

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseApiError
from airflow_provider_liveresponse.hooks.responses import already_ended, entity, items, json_object, next_link
from airflow_provider_liveresponse.models import MachineAction

ACTION = {"id": "7c1d4ea0-5b0e-4a34-9d3f-6b0a3c1e2f10", "type": "LiveResponse", "status": "Pending"}


def test_a_json_object_passes_and_anything_else_names_the_call() -> None:
    assert json_object({"a": 1}, "Reading") == {"a": 1}
    with pytest.raises(LiveResponseApiError, match="Reading: MDE answered with JSON that is not an object"):
        json_object([1], "Reading", status=200, method="GET", path="/api/x")


def test_items_are_the_value_list() -> None:
    assert items({"value": [1]}, "Listing") == [1]
    assert items({}, "Listing") == []
    assert items({"value": None}, "Listing") == []
    with pytest.raises(LiveResponseApiError, match="'value' that is not a list"):
        items({"value": {"a": 1}}, "Listing")


def test_next_link_is_a_string_or_absent() -> None:
    assert next_link({"@odata.nextLink": "https://x/api?$skip=1"}, "Listing") == "https://x/api?$skip=1"
    assert next_link({"@odata.nextLink": ""}, "Listing") is None
    with pytest.raises(LiveResponseApiError, match="not a URL"):
        next_link({"@odata.nextLink": 5}, "Listing")


def test_an_entity_that_does_not_fit_its_model_names_the_field() -> None:
    assert entity(MachineAction, ACTION, "Reading").id == ACTION["id"]
    with pytest.raises(LiveResponseApiError) as info:
        entity(MachineAction, {"id": 5}, "Reading", machine_id="3d4cc40f66a1574170f0e84299da28c3dac00b2f")
    assert "is not a valid MachineAction" in str(info.value)
    assert info.value.machine_id == "3d4cc40f66a1574170f0e84299da28c3dac00b2f"


def test_a_refused_cancel_of_an_ended_action_returns_the_action() -> None:
    refusal = LiveResponseApiError("Cancelling failed", status=400)
    ended = MachineAction.model_validate({**ACTION, "status": "Succeeded"})
    assert already_ended(refusal, ended) is ended
    with pytest.raises(LiveResponseApiError) as info:
        already_ended(refusal, MachineAction.model_validate(ACTION))
    assert info.value is refusal
