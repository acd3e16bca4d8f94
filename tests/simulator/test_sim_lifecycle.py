"""The life cycle of live-response actions on the simulated clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.simulator import Simulator
from airflow_provider_liveresponse.simulator.clock import parse_datetime
from airflow_provider_liveresponse.simulator.fleet import OFFLINE_HOSTS, device_id
from tests.simulator.sim_helpers import TRIAGE_ZIP, SimClient, get_file, put_file, run_script

if TYPE_CHECKING:
    from pathlib import Path

WS1 = device_id("ws-0001.contoso.local")
LAPTOP = device_id(OFFLINE_HOSTS[0])
DAY = 24 * 3600


def _statuses(action: dict[str, Any]) -> list[str]:
    return [command["commandStatus"] for command in action["commands"]]


def test_a_session_runs_to_success(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(WS1, run_script("triage.ps1"), get_file(TRIAGE_ZIP))

    simulator.state.advance_clock(120)
    action = mde.action(action_id)

    assert action["status"] == "Succeeded"
    assert _statuses(action) == ["Completed", "Completed"]
    run, get = action["commands"]
    assert parse_datetime(run["startTime"]) < parse_datetime(run["endTime"]) <= parse_datetime(get["startTime"])
    assert parse_datetime(action["lastUpdateDateTimeUtc"]) == parse_datetime(get["endTime"])


def test_progress_is_visible_per_command(tmp_path: Path) -> None:
    with Simulator(speed=0.001, state_dir=tmp_path) as sim:
        mde = SimClient(sim)
        action_id = mde.start(WS1, run_script("sleep.ps1", "100"), get_file("C:\\Windows\\Temp\\memory.dmp"))
        assert mde.action(action_id)["status"] == "Pending"

        sim.state.advance_clock(10)
        action = mde.action(action_id)
        assert action["status"] == "InProgress"
        assert _statuses(action) == ["InProgress", "Created"]

        sim.state.advance_clock(98)  # the script ends at 105 s, collecting 32 MiB takes 4.6 s more
        action = mde.action(action_id)
        assert _statuses(action) == ["Completed", "InProgress"]

        sim.state.advance_clock(10)
        assert mde.action(action_id)["status"] == "Succeeded"


def test_commands_run_putfile_then_runscript_then_getfile_keeping_their_indexes(
    simulator: Simulator, mde: SimClient
) -> None:
    action_id = mde.start(WS1, get_file(TRIAGE_ZIP), run_script("triage.ps1"), put_file("procdump64.exe"))

    simulator.state.advance_clock(120)
    action = mde.action(action_id)

    assert action["status"] == "Succeeded"
    assert [command["index"] for command in action["commands"]] == [0, 1, 2]
    starts = {command["command"]["type"]: parse_datetime(command["startTime"]) for command in action["commands"]}
    assert starts["PutFile"] < starts["RunScript"] < starts["GetFile"]


def test_a_failed_command_stops_the_later_ones(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(WS1, run_script("fail.ps1"), get_file(TRIAGE_ZIP))

    simulator.state.advance_clock(120)
    action = mde.action(action_id)

    assert action["status"] == "Failed"
    assert _statuses(action) == ["Failed", "Created"]
    assert action["commands"][0]["errors"]
    assert action["commands"][1]["startTime"] is None


def test_files_not_in_the_library_fail_the_command(simulator: Simulator, mde: SimClient) -> None:
    put = mde.start(WS1, put_file("nope.exe"))
    run = mde.start(device_id("ws-0002.contoso.local"), run_script("nope.ps1"))

    simulator.state.advance_clock(60)

    for action_id in (put, run):
        action = mde.action(action_id)
        assert action["status"] == "Failed"
        assert "not found in the live response library" in action["commands"][0]["errors"][0]


def test_getfile_of_a_missing_path_fails(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(WS1, get_file("C:\\Windows\\Temp\\no-such-file.txt"))

    simulator.state.advance_clock(60)
    action = mde.action(action_id)

    assert action["status"] == "Failed"
    assert "cannot find the file" in action["commands"][0]["errors"][0]


def test_a_runscript_times_out_after_ten_minutes(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(WS1, run_script("slow.ps1"), get_file(TRIAGE_ZIP))

    simulator.state.advance_clock(9 * 60)
    assert mde.action(action_id)["status"] == "InProgress"
    simulator.state.advance_clock(2 * 60)
    action = mde.action(action_id)

    assert action["status"] == "TimeOut"
    assert _statuses(action) == ["Failed", "Created"]
    run = action["commands"][0]
    assert parse_datetime(run["endTime"]) - parse_datetime(run["startTime"]) == 600


def test_sleep_script_runs_for_its_argument(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(WS1, run_script("sleep.ps1", "300"))

    simulator.state.advance_clock(400)
    run = mde.action(action_id)["commands"][0]

    assert run["commandStatus"] == "Completed"
    assert parse_datetime(run["endTime"]) - parse_datetime(run["startTime"]) == 300


def test_an_offline_device_keeps_the_session_pending_for_three_days(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(LAPTOP, get_file(TRIAGE_ZIP))

    simulator.state.advance_clock(3 * DAY - 60)
    assert mde.action(action_id)["status"] == "Pending"
    blocked = mde.run(LAPTOP, get_file(TRIAGE_ZIP))
    assert blocked.json()["error"]["code"] == "ActiveRequestAlreadyExists"

    simulator.state.advance_clock(120)
    action = mde.action(action_id)
    assert action["status"] == "TimeOut"
    assert _statuses(action) == ["Created"]
    assert mde.run(LAPTOP, get_file(TRIAGE_ZIP)).status_code == 201


def test_the_current_profile_times_out_offline_sessions_after_two_hours(tmp_path: Path) -> None:
    with Simulator(speed=60, state_dir=tmp_path, profile="current") as sim:
        mde = SimClient(sim)
        action_id = mde.start(LAPTOP, get_file(TRIAGE_ZIP))

        sim.state.advance_clock(2 * 3600 - 60)
        assert mde.action(action_id)["status"] == "Pending"
        sim.state.advance_clock(120)
        assert mde.action(action_id)["status"] == "TimeOut"


def test_a_device_coming_online_picks_up_its_pending_session(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(LAPTOP, run_script("triage.ps1"), get_file(TRIAGE_ZIP))
    simulator.state.advance_clock(DAY)
    assert mde.action(action_id)["status"] == "Pending"

    response = mde.control("PATCH", f"/devices/{LAPTOP}", json={"online": True})
    assert response.status_code == 200
    simulator.state.advance_clock(120)

    assert mde.action(action_id)["status"] == "Succeeded"


def test_cancelling_a_running_action_ends_it(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(WS1, run_script("slow.ps1"))
    simulator.state.advance_clock(60)

    mde.post(f"/api/machineactions/{action_id}/cancel", json={"Comment": "stop"})
    simulator.state.advance_clock(3600)
    action = mde.action(action_id)

    assert action["status"] == "Cancelled"
    assert action["commands"][0]["commandStatus"] == "Failed"
    assert mde.run(WS1, get_file(TRIAGE_ZIP)).status_code == 201


def test_minidump_writes_the_dump_it_is_asked_for(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(
        WS1,
        run_script("minidump.ps1", "OfficeClickToRun"),
        get_file("C:\\windows\\TEMP\\OfficeClickToRun.dmp.zip"),
    )

    simulator.state.advance_clock(120)

    assert mde.action(action_id)["status"] == "Succeeded"


def test_a_file_added_through_control_can_be_collected(simulator: Simulator, mde: SimClient) -> None:
    path = "D:\\evidence\\disk.img"
    response = mde.control("POST", f"/devices/{WS1}/files", json={"path": path, "size": 12345})
    assert response.status_code == 201
    action_id = mde.start(WS1, get_file(path))

    simulator.state.advance_clock(60)

    assert mde.action(action_id)["status"] == "Succeeded"
    assert simulator.state.result_digest(action_id, 0)["raw"]["size"] == 12345


def test_a_linux_device_runs_its_script_and_gives_its_files(simulator: Simulator, mde: SimClient) -> None:
    linux = device_id("lnx-0001.contoso.local")
    action_id = mde.start(linux, run_script("collect.sh"), get_file("/tmp/collect.tar.gz"), get_file("/var/log/syslog"))

    simulator.state.advance_clock(120)

    assert mde.action(action_id)["status"] == "Succeeded"
    assert simulator.state.result_digest(action_id, 2)["raw"]["size"] == 512 * 1024


def test_putfile_puts_the_library_file_in_the_downloads_folder(simulator: Simulator, mde: SimClient) -> None:
    downloads = "C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\Downloads"
    action_id = mde.start(WS1, put_file("procdump64.exe"), get_file(f"{downloads}\\procdump64.exe"))

    simulator.state.advance_clock(60)

    assert mde.action(action_id)["status"] == "Succeeded"
    assert simulator.state.result_digest(action_id, 1)["file_name"] == "procdump64.exe.gz"
