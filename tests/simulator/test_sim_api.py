"""The MDE API endpoints: bodies, status codes, error shapes, filters and paging."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.simulator.fleet import (
    DISCOVERED_HOSTS,
    NO_AUTOMATION_HOSTS,
    OFFLINE_HOSTS,
    UNSUPPORTED_OS_HOSTS,
    device_id,
)
from tests.simulator.sim_helpers import TRIAGE_ZIP, SimClient, get_file, put_file, run_script

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator

DATETIME_7 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$")
WS1 = device_id("ws-0001.contoso.local")


def _error_code(response: object) -> str:
    return str(response.json()["error"]["code"])  # type: ignore[attr-defined]


# -- machines ---------------------------------------------------------------------------------------------------
def test_a_machine_is_found_by_host_name_filter(mde: SimClient) -> None:
    response = mde.get("/api/machines", params={"$filter": "computerDnsName eq 'ws-0001.contoso.local'"})

    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith("/api/$metadata#Machines")
    (machine,) = body["value"]
    assert machine["id"] == WS1 == "3d4cc40f66a1574170f0e84299da28c3dac00b2f"
    assert machine["onboardingStatus"] == "Onboarded"
    assert machine["healthStatus"] == "Active"
    assert DATETIME_7.match(machine["lastSeen"])


def test_get_machine_by_id(mde: SimClient) -> None:
    response = mde.get(f"/api/machines/{WS1}")

    assert response.status_code == 200
    assert response.json()["computerDnsName"] == "ws-0001.contoso.local"


def test_an_unknown_machine_is_404_with_mdes_error_shape(mde: SimClient) -> None:
    response = mde.get(f"/api/machines/{'0' * 40}")

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "ResourceNotFound"
    assert error["message"]
    assert error["target"]


def test_machines_filter_on_tags_health_and_platform_with_and_or(mde: SimClient) -> None:
    finance = mde.get("/api/machines", params={"$filter": "machineTags/any(tag: tag eq 'finance')", "$top": "1000"})
    combined = mde.get(
        "/api/machines",
        params={"$filter": "(osPlatform eq 'Linux' or healthStatus eq 'Inactive') and onboardingStatus eq 'Onboarded'"},
    )

    assert len(finance.json()["value"]) == 28
    hosts = {machine["computerDnsName"] for machine in combined.json()["value"]}
    assert hosts == {f"lnx-000{n}.contoso.local" for n in (1, 2, 3)} | set(OFFLINE_HOSTS)


def test_machines_are_paged_with_a_next_link(mde: SimClient) -> None:
    seen: list[str] = []
    url = "/api/machines?$filter=" + "machineTags/any(t: t eq 'workstation')"
    pages = 0
    while url:
        body = mde.get(url).json()
        seen.extend(machine["id"] for machine in body["value"])
        url = body.get("@odata.nextLink", "")
        pages += 1

    assert pages == 3
    assert len(seen) == len(set(seen)) == 280


def test_an_empty_fleet_answers_404(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.devices.clear()

    assert mde.get("/api/machines").status_code == 404


def test_an_invalid_filter_is_an_odata_error(mde: SimClient) -> None:
    response = mde.get("/api/machines", params={"$filter": "nosuchfield eq 'x'"})

    assert response.status_code == 400
    assert _error_code(response) == "ODataError"


# -- run live response --------------------------------------------------------------------------------------------
def test_run_live_response_answers_201_with_a_pending_machine_action(mde: SimClient) -> None:
    response = mde.run(WS1, run_script("triage.ps1"), get_file(TRIAGE_ZIP), comment="collect")

    assert response.status_code == 201
    action = response.json()
    assert action["@odata.context"].endswith("#MachineActions/$entity")
    assert action["type"] == "LiveResponse"
    assert action["status"] == "Pending"
    assert action["machineId"] == WS1
    assert action["requestorComment"] == "collect"
    assert DATETIME_7.match(action["creationDateTimeUtc"])
    assert DATETIME_7.match(action["lastUpdateDateTimeUtc"])
    assert [command["commandStatus"] for command in action["commands"]] == ["Created", "Created"]
    assert action["commands"][1]["command"] == {"type": "GetFile", "params": [{"key": "Path", "value": TRIAGE_ZIP}]}
    # Fields a client does not know must be tolerated.
    assert {"troubleshootInfo", "relatedFileInfo", "actionRegion"} <= set(action)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"Commands": [{"type": "GetFile", "params": [{"key": "path", "value": "C:\\x"}]}]}, "InvalidRequestBody"),
        ({"Commands": [{"type": "GetFile", "params": []}]}, "MissingRequiredParameter"),
        ({"Commands": [{"type": "getfile", "params": [{"key": "Path", "value": "C:\\x"}]}]}, "InvalidRequestBody"),
        ({"Commands": [{"type": "RunScript", "params": [{"key": "Args", "value": "1"}]}]}, "MissingRequiredParameter"),
        ({"Commands": []}, "InvalidRequestBody"),
        ({"Comment": "no commands"}, "MissingRequiredParameter"),
    ],
    ids=["lower-case-key", "missing-path", "unknown-type", "missing-script-name", "no-commands", "missing-commands"],
)
def test_run_live_response_validates_the_body(mde: SimClient, body: dict[str, object], code: str) -> None:
    response = mde.post(f"/api/machines/{WS1}/runliveresponse", json=body)

    assert response.status_code == 400
    assert _error_code(response) == code


def test_run_live_response_refuses_invalid_json(mde: SimClient) -> None:
    response = mde.post(
        f"/api/machines/{WS1}/runliveresponse", data=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert _error_code(response) == "InvalidRequestBody"


@pytest.mark.parametrize(
    ("host", "status", "code"),
    [
        (DISCOVERED_HOSTS[0], 400, "ClientVersionNotSupported"),
        (NO_AUTOMATION_HOSTS[0], 403, "DisallowedOperation"),
        (UNSUPPORTED_OS_HOSTS[0], 400, "OsPlatformNotSupported"),
    ],
)
def test_devices_that_cannot_run_live_response_are_refused(mde: SimClient, host: str, status: int, code: str) -> None:
    response = mde.run(device_id(host), get_file(TRIAGE_ZIP))

    assert response.status_code == status
    assert _error_code(response) == code


def test_run_live_response_on_an_unknown_machine_is_404(mde: SimClient) -> None:
    assert mde.run("f" * 40, get_file(TRIAGE_ZIP)).status_code == 404


def test_a_second_session_on_a_busy_device_is_refused(mde: SimClient) -> None:
    mde.start(WS1, run_script("slow.ps1"))

    response = mde.run(WS1, get_file(TRIAGE_ZIP))

    assert response.status_code == 400
    assert _error_code(response) == "ActiveRequestAlreadyExists"


# -- machine actions ----------------------------------------------------------------------------------------------
def test_get_an_unknown_action_is_404(mde: SimClient) -> None:
    response = mde.get("/api/machineactions/0b3b2a55-3a3b-4c1e-9a1f-000000000000")

    assert response.status_code == 404
    assert _error_code(response) == "ResourceNotFound"


def test_the_list_spells_last_update_time_utc(mde: SimClient) -> None:
    mde.start(WS1, get_file(TRIAGE_ZIP))

    (action,) = mde.get("/api/machineactions").json()["value"]

    assert "lastUpdateTimeUtc" in action
    assert "lastUpdateDateTimeUtc" not in action


def test_actions_are_filtered_by_machine_status_type_and_id(mde: SimClient) -> None:
    laptop = device_id(OFFLINE_HOSTS[0])
    first = mde.start(laptop, get_file("C:\\nothing.txt"))
    second = mde.start(device_id("ws-0002.contoso.local"), run_script("slow.ps1"))
    third = mde.start(device_id("ws-0003.contoso.local"), run_script("slow.ps1"))

    def ids(text: str) -> set[str]:
        response = mde.get("/api/machineactions", params={"$filter": text})
        assert response.status_code == 200, response.text
        return {action["id"] for action in response.json()["value"]}

    assert ids(f"machineId eq '{laptop}' and type eq 'LiveResponse' and status eq 'Pending'") == {first}
    assert ids(f"id in ('{second}', '{third}')") == {second, third}
    assert ids(f"id eq '{first}' or id eq '{third}'") == {first, third}
    assert ids("requestor eq '0f4c6a1e-2b3d-4c5e-8f9a-1b2c3d4e5f60'") == {first, second, third}
    assert ids("creationDateTimeUtc gt 2000-01-01T00:00:00Z") == {first, second, third}
    assert ids("creationDateTimeUtc lt 2000-01-01T00:00:00Z") == set()


def test_actions_are_paged_ordered_and_skipped(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.set_limits(page_size=2, run_calls_per_minute=100)
    created = [mde.start(device_id(f"ws-{n:04d}.contoso.local"), run_script("slow.ps1")) for n in range(1, 6)]

    first = mde.get("/api/machineactions", params={"$orderby": "creationDateTimeUtc desc"}).json()
    assert [action["id"] for action in first["value"]] == created[::-1][:2]
    collected = [action["id"] for action in first["value"]]
    link = first["@odata.nextLink"]
    while link:
        page = mde.get(link).json()
        collected.extend(action["id"] for action in page["value"])
        link = page.get("@odata.nextLink")
    assert collected == created[::-1]

    top = mde.get("/api/machineactions", params={"$top": "3", "$skip": "1"}).json()
    assert [action["id"] for action in top["value"]] == created[1:3]
    assert "@odata.nextLink" in top  # 3 results, page size 2
    assert len(mde.get(top["@odata.nextLink"]).json()["value"]) == 1


def test_top_above_ten_thousand_is_refused(mde: SimClient) -> None:
    response = mde.get("/api/machineactions", params={"$top": "10001"})

    assert response.status_code == 400
    assert _error_code(response) == "ODataError"


def test_cancel_a_pending_action(mde: SimClient) -> None:
    action_id = mde.start(device_id(OFFLINE_HOSTS[0]), get_file(TRIAGE_ZIP))

    response = mde.post(f"/api/machineactions/{action_id}/cancel", json={"Comment": "not needed"})

    assert response.status_code == 200
    action = response.json()
    assert action["status"] == "Cancelled"
    assert action["cancellationComment"] == "not needed"
    assert DATETIME_7.match(action["cancellationDateTimeUtc"])
    assert mde.action(action_id)["status"] == "Cancelled"


def test_cancel_a_finished_action_is_refused(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(WS1, get_file("C:\\Windows\\Temp\\empty.txt"))
    simulator.state.advance_clock(60)

    response = mde.post(f"/api/machineactions/{action_id}/cancel", json={"Comment": "too late"})

    assert response.status_code == 400
    assert mde.action(action_id)["status"] == "Succeeded"


def test_cancel_needs_a_comment(mde: SimClient) -> None:
    action_id = mde.start(WS1, run_script("slow.ps1"))

    response = mde.post(f"/api/machineactions/{action_id}/cancel", json={})

    assert response.status_code == 400
    assert _error_code(response) == "MissingRequiredParameter"


def test_a_link_for_an_unfinished_or_resultless_command_is_refused(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(WS1, put_file("procdump64.exe"), get_file(TRIAGE_ZIP + ".missing"))

    assert mde.link(action_id, 1).status_code == 400  # not run yet
    simulator.state.advance_clock(60)
    assert mde.action(action_id)["status"] == "Failed"
    assert mde.link(action_id, 0).status_code == 400  # PutFile has no result
    assert mde.link(action_id, 1).status_code == 400  # failed GetFile has no result
    assert mde.link(action_id, 7).status_code == 404
    assert mde.link("0b3b2a55-3a3b-4c1e-9a1f-000000000000", 0).status_code == 404


def test_the_link_answer_is_an_odata_string(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(WS1, get_file(TRIAGE_ZIP.replace("triage.zip", "empty.txt")))
    simulator.state.advance_clock(60)

    body = mde.link(action_id, 0).json()

    assert body["@odata.context"].endswith("#Edm.String")
    assert body["value"].startswith(simulator.blob_url + "/")
    assert "sig=" in body["value"]
    assert "se=" in body["value"]


# -- library ------------------------------------------------------------------------------------------------------
def test_the_library_lists_the_seeded_scripts(mde: SimClient) -> None:
    body = mde.get("/api/libraryfiles").json()

    names = {item["fileName"] for item in body["value"]}
    assert {"triage.ps1", "minidump.ps1", "fail.ps1", "slow.ps1", "sleep.ps1"} <= names
    item = body["value"][0]
    assert {"sha256", "description", "hasParameters", "parametersDescription", "creationTime", "createdBy"} <= set(item)


def test_upload_override_and_delete_a_library_file(mde: SimClient) -> None:
    files = {"File": ("hello.ps1", b"Write-Output 'hello'\n", "application/octet-stream")}
    form = {"Description": "says hello", "HasParameters": "false"}

    created = mde.post("/api/libraryfiles", files=files, data=form)
    again = mde.post("/api/libraryfiles", files=files, data=form)
    replaced = mde.post("/api/libraryfiles", files=files, data={**form, "OverrideIfExists": "true"})
    deleted = mde.delete("/api/libraryfiles/hello.ps1")
    missing = mde.delete("/api/libraryfiles/hello.ps1")

    assert created.status_code == 200
    assert created.json()["fileName"] == "hello.ps1"
    assert created.json()["description"] == "says hello"
    assert len(created.json()["sha256"]) == 64
    assert again.status_code == 400
    assert replaced.status_code == 200
    assert deleted.status_code == 204
    assert missing.status_code == 404


def test_an_uploaded_script_can_run(simulator: Simulator, mde: SimClient) -> None:
    mde.post("/api/libraryfiles", files={"File": ("mine.ps1", b"exit 0\n")}, data={"Description": "x"})
    action_id = mde.start(WS1, run_script("mine.ps1"))
    simulator.state.advance_clock(60)

    assert mde.action(action_id)["status"] == "Succeeded"


def test_library_files_over_20_mb_are_refused(simulator: Simulator, mde: SimClient) -> None:
    simulator.state.set_limits(library_max_bytes=1000)

    response = mde.post("/api/libraryfiles", files={"File": ("big.bin", b"x" * 1001)}, data={"Description": "x"})

    assert response.status_code == 400
    assert "hello.ps1" not in {item["fileName"] for item in mde.get("/api/libraryfiles").json()["value"]}
