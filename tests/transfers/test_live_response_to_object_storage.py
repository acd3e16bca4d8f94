"""LiveResponseToObjectStorageOperator to file:// against the simulator: bytes, faults, kills, names, manifest."""

from __future__ import annotations

import gzip
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.exceptions import LiveResponseApiError, LiveResponseConfigError, LiveResponseError
from airflow_provider_liveresponse.models import GetFile, RunScript
from tests.transfers.transfer_helpers import WS1, FakeClock, md5_of, sha256_of

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.simulator import Simulator
    from tests.transfers.transfer_helpers import Actions, Transfer

MIB = 1024 * 1024
ACTION_ID = "7c1d4ea0-5b0e-4a34-9d2e-000000000000"


def sized(size: int) -> Any:
    return GetFile(rf"C:\Evidence\sim-size-{size}.bin")


def folder_of(root: Path, action_id: str) -> Path:
    return root / WS1 / action_id


def api_calls(sim: Simulator) -> int:
    return sum(v for k, v in sim.state.counters.items() if k.startswith("calls:"))


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial")) if folder.exists() else []


# -- bytes ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, MIB, 30 * MIB])
def test_the_stored_file_is_the_collected_file(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path, size: int
) -> None:
    action_id = actions.finish([sized(size)])
    expected = simulator.state.result_digest(action_id, 0)
    manifest = transfer.run(action_id=action_id, destination=tmp_path.as_uri())

    stored = folder_of(tmp_path, action_id) / f"0_sim-size-{size}.bin"
    assert stored.stat().st_size == size
    assert sha256_of(stored) == expected["raw"]["sha256"]
    (entry,) = manifest["files"]
    assert entry["path"] == stored.name
    assert (entry["size"], entry["sha256"], entry["md5"]) == (size, expected["raw"]["sha256"], expected["raw"]["md5"])
    assert entry["content"] == {"size": size, "sha256": expected["raw"]["sha256"], "md5": expected["raw"]["md5"]}
    blob = expected["compressed"]
    assert (entry["blob"]["size"], entry["blob"]["sha256"], entry["blob"]["md5"]) == (
        blob["size"],
        blob["sha256"],
        blob["md5"],
    )
    assert entry["blob"]["compression"] == "gzip"
    assert entry["blob"]["file_name"] == f"sim-size-{size}.bin.gz"
    assert entry["stored_form"] == "collected_file"
    assert sorted(p.name for p in stored.parent.iterdir()) == sorted(["manifest.json", stored.name])


def test_keep_compressed_stores_the_blob_as_served_and_records_both_forms(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish([GetFile(r"C:\Windows\System32\winevt\Logs\System.evtx")])
    expected = simulator.state.result_digest(action_id, 0)
    manifest = transfer.run(action_id=action_id, destination=str(tmp_path), keep_compressed=True)

    stored = folder_of(tmp_path, action_id) / "0_System.evtx.gz"
    assert sha256_of(stored) == expected["compressed"]["sha256"]
    assert len(gzip.decompress(stored.read_bytes())) == MIB
    (entry,) = manifest["files"]
    assert entry["stored_form"] == "compressed"
    assert entry["sha256"] == entry["blob"]["sha256"] == expected["compressed"]["sha256"]
    assert entry["content"]["sha256"] == expected["raw"]["sha256"]
    assert entry["content"]["size"] == MIB
    assert manifest["keep_compressed"] is True


def test_keep_compressed_without_content_digests_stores_the_blob_verified_and_records_its_digests(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish([RunScript("triage.ps1"), sized(3 * MIB + 5)])
    expected = simulator.state.result_digest(action_id, 1)
    manifest = transfer.run(
        action_id=action_id,
        destination=tmp_path.as_uri(),
        keep_compressed=True,
        content_digests=False,
        chunk_size=65536,
    )

    stored = folder_of(tmp_path, action_id) / f"1_sim-size-{3 * MIB + 5}.bin.gz"
    assert sha256_of(stored) == expected["compressed"]["sha256"]
    assert md5_of(stored) == expected["compressed"]["md5"]
    transcript, entry = manifest["files"]
    assert entry["stored_form"] == "compressed"
    assert entry["blob"]["compression"] == "gzip"
    assert (entry["size"], entry["sha256"], entry["md5"]) == (
        expected["compressed"]["size"],
        expected["compressed"]["sha256"],
        expected["compressed"]["md5"],
    )
    assert entry["content"] is None
    # A transcript is still read (its exit code is the point of it), whatever content_digests says.
    assert transcript["stored_form"] == "transcript"
    assert transcript["content"]["sha256"] == transcript["sha256"]
    assert transfer.ti.xcom["transcripts"][0]["exit_code"] == 0


def test_the_manifest_digests_match_the_stored_bytes(actions: Actions, transfer: Transfer, tmp_path: Path) -> None:
    action_id = actions.finish(
        [RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\triage.zip"), GetFile(r"C:\Windows\Temp\empty.txt")]
    )
    returned = transfer.run(action_id=action_id, destination=tmp_path.as_uri())
    folder = folder_of(tmp_path, action_id)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == returned
    assert [f["path"] for f in manifest["files"]] == [
        "0_triage.ps1.transcript.json",
        "1_triage.zip",
        "2_empty.txt",
    ]
    for entry in manifest["files"]:
        stored = folder / entry["path"]
        assert entry["uri"].endswith(f"/{WS1}/{action_id}/{entry['path']}")
        assert (stored.stat().st_size, sha256_of(stored), md5_of(stored)) == (
            entry["size"],
            entry["sha256"],
            entry["md5"],
        )
    action = manifest["action"]
    assert action["id"] == action_id
    assert action["machine_id"] == WS1
    assert action["computer_dns_name"] == "ws-0001.contoso.local"
    assert action["status"] == "Succeeded"
    assert action["requestor_comment"].startswith("transfer test")
    assert action["requestor"]
    assert action["creation_date_time_utc"]
    assert action["last_update_date_time_utc"]
    assert manifest["generator"]["package"] == "airflow-provider-liveresponse"
    assert manifest["generator"]["version"]
    assert manifest["files"][0]["command"]["script_name"] == "triage.ps1"
    assert manifest["files"][1]["command"]["device_path"] == r"C:\Windows\Temp\triage.zip"
    assert manifest["files"][1]["command"]["end_time"]
    assert manifest["files"][1]["retrieved_at"]
    assert "http" not in json.dumps(manifest)  # no download link anywhere


def test_command_indexes_pick_the_results(actions: Actions, transfer: Transfer, tmp_path: Path) -> None:
    action_id = actions.finish([GetFile(r"C:\Windows\Temp\empty.txt"), sized(10)])
    manifest = transfer.run(action_id=action_id, destination=tmp_path.as_uri(), command_indexes=[1])
    assert [f["path"] for f in manifest["files"]] == ["1_sim-size-10.bin"]
    assert not (folder_of(tmp_path, action_id) / "0_empty.txt").exists()


# -- transcripts ---------------------------------------------------------------------------------------------


def test_a_transcript_is_stored_as_returned_and_surfaced_masked(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_liveresponse.secrets import mask

    action_id = actions.finish([RunScript("minidump.ps1", args="OfficeClickToRun")])
    mask("Sysinternals")  # as if the output held a secret Airflow knows
    manifest = transfer.run(action_id=action_id, destination=tmp_path.as_uri())

    stored = folder_of(tmp_path, action_id) / "0_minidump.ps1.transcript.json"
    assert sha256_of(stored) == simulator.state.result_digest(action_id, 0)["raw"]["sha256"]
    assert "\x00" in json.loads(stored.read_text())["script_output"]  # as returned, NUL and all
    (summary,) = transfer.ti.xcom["transcripts"]
    assert summary["exit_code"] == 0
    assert summary["script_name"] == "minidump.ps1"
    assert summary["stdout_head"][0].startswith("ProcDump v11.0 - *** process dump utility")
    assert "\x00" not in summary["stdout_head"][0]
    assert summary["stdout_head"][1] == r"Dump 1 written: C:\Windows\TEMP\OfficeClickToRun.dmp.zip"
    assert summary["stderr_head"] == []
    assert manifest["files"][0]["exit_code"] == 0
    logged = capsys.readouterr().out
    assert "Script minidump.ps1 (command 0) exited with code 0" in logged
    assert "stdout | ProcDump v11.0 - *** process dump utility" in logged
    assert "Sysinternals" not in logged


# -- faults ---------------------------------------------------------------------------------------------------


def test_a_cut_connection_resumes_mid_stream(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish([sized(3 * MIB)])
    simulator.state.faults.set("blob", cut_after_bytes=300_000, cut_mode="once")
    manifest = transfer.run(action_id=action_id, destination=tmp_path.as_uri(), chunk_size=64 * 1024)
    (entry,) = manifest["files"]
    assert entry["transfer"] == {"links_requested": 1, "resumes": 1}
    assert entry["sha256"] == simulator.state.result_digest(action_id, 0)["raw"]["sha256"]


def test_an_expired_link_is_replaced_mid_stream(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish([sized(3 * MIB)])
    # The cut forces a new request; the resume's back-off advances the simulated clock, so by then the
    # 30-minute link has expired (403) and the reader asks MDE for a new one.
    simulator.state.faults.set("blob", cut_after_bytes=500_000, cut_mode="once")
    original = transfer.sim.clock.advance

    def slow_backoff(seconds: float) -> float:
        return original(max(seconds, 31 * 60))

    transfer.sim.clock.advance = slow_backoff  # type: ignore[method-assign]
    try:
        manifest = transfer.run(action_id=action_id, destination=tmp_path.as_uri(), chunk_size=64 * 1024)
    finally:
        transfer.sim.clock.advance = original  # type: ignore[method-assign]
    (entry,) = manifest["files"]
    assert entry["transfer"] == {"links_requested": 2, "resumes": 1}
    assert entry["sha256"] == simulator.state.result_digest(action_id, 0)["raw"]["sha256"]


def test_a_blob_cut_short_for_good_fails_clearly_and_keeps_nothing(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish([sized(MIB)])
    simulator.state.faults.set("blob", cut_after_bytes=1000, cut_mode="always")
    with pytest.raises(LiveResponseApiError) as info:
        transfer.run(action_id=action_id, destination=tmp_path.as_uri(), max_resumes=2)
    message = str(info.value)
    assert action_id in message
    assert "Rerun the task" in message
    assert "sig=" not in message
    folder = folder_of(tmp_path, action_id)
    assert list(folder.iterdir()) == []  # no final file, no partial, no manifest

    simulator.state.faults.clear("blob")
    manifest = transfer.run(action_id=action_id, destination=tmp_path.as_uri())
    assert manifest["files"][0]["sha256"] == simulator.state.result_digest(action_id, 0)["raw"]["sha256"]


def test_a_killed_transfer_leaves_no_final_file_and_a_rerun_completes_it(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    size = 24 * MIB
    action_id = actions.finish([sized(size)])
    folder = folder_of(tmp_path, action_id)
    # A worker that dies mid-stream: a separate process, slowed to about 6 s for the whole blob, SIGKILLed
    # once its temporary file holds 2 MiB.
    code = textwrap.dedent(
        f"""
        import time
        from airflow_provider_liveresponse.hooks.result_reader import ResultReader

        original = ResultReader.readinto

        def slow(self, buffer):
            time.sleep(0.01)
            return original(self, buffer)

        ResultReader.readinto = slow
        from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
            LiveResponseToObjectStorageOperator,
        )

        LiveResponseToObjectStorageOperator(
            task_id="copy", action_id={action_id!r}, destination={tmp_path.as_uri()!r}, chunk_size=64 * 1024
        ).execute({{}})
        print("FINISHED")
        """
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", code], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            grown = [p for p in partials(folder) if (folder / p).stat().st_size >= 2 * MIB]
            if grown or worker.poll() is not None:
                break
            time.sleep(0.02)
        assert worker.poll() is None, worker.communicate()[0].decode(errors="replace")[-3000:]
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(timeout=30)
        assert worker.stdout is not None
        worker.stdout.close()
    assert worker.returncode == -signal.SIGKILL
    final = folder / f"0_sim-size-{size}.bin"
    assert not final.exists()
    assert not (folder / "manifest.json").exists()
    assert len(partials(folder)) == 1  # the dead worker's temporary file, under a name no reader trusts

    manifest = transfer.run(action_id=action_id, destination=tmp_path.as_uri())
    assert partials(folder) == []
    assert sha256_of(final) == simulator.state.result_digest(action_id, 0)["raw"]["sha256"]
    assert manifest["files"][0]["outcome"] == "stored"
    assert sorted(p.name for p in folder.iterdir()) == ["0_sim-size-25165824.bin", "manifest.json"]


# -- idempotence and overwrite --------------------------------------------------------------------------------


def test_a_rerun_keeps_identical_files_and_the_first_retrieval_time(
    actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish([GetFile(r"C:\Windows\System32\drivers\etc\hosts")])
    first = transfer.run(action_id=action_id, destination=tmp_path.as_uri())
    stored = folder_of(tmp_path, action_id) / "0_hosts"
    inode = stored.stat().st_ino
    second = transfer.run(action_id=action_id, destination=tmp_path.as_uri())
    assert second["files"][0]["outcome"] == "already_present"
    assert stored.stat().st_ino == inode  # not rewritten
    assert second["files"][0]["retrieved_at"] == first["files"][0]["retrieved_at"]
    assert second["files"][0]["sha256"] == first["files"][0]["sha256"]


def test_a_different_existing_file_is_an_error_without_overwrite(
    actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish([GetFile(r"C:\Windows\System32\drivers\etc\hosts")])
    transfer.run(action_id=action_id, destination=tmp_path.as_uri())
    folder = folder_of(tmp_path, action_id)
    stored = folder / "0_hosts"
    stored.write_bytes(b"tampered")
    manifest_before = (folder / "manifest.json").read_bytes()

    with pytest.raises(LiveResponseError) as info:
        transfer.run(action_id=action_id, destination=tmp_path.as_uri())
    message = str(info.value)
    assert "already exists with SHA-256" in message
    assert action_id in message
    assert WS1 in message
    assert "overwrite=True" in message
    assert stored.read_bytes() == b"tampered"
    assert (folder / "manifest.json").read_bytes() == manifest_before
    assert partials(folder) == []

    manifest = transfer.run(action_id=action_id, destination=tmp_path.as_uri(), overwrite=True)
    assert manifest["files"][0]["outcome"] == "stored"
    assert sha256_of(stored) == manifest["files"][0]["sha256"]


# -- hostile names --------------------------------------------------------------------------------------------

HOSTILE = {
    "..\\..\\x": "x",
    "C:\\a\\..\\..\\b": "b",
    "CON": "_CON",
    "C:\\Temp\\...": "file",
    "C:\\Temp\\" + "long" * 400 + ".log": None,  # cut, with a hash
    "C:\\Users\\Zoë\\Доклад 📄.docx": "Доклад_.docx",
    "C:\\x\\invoice\u202egpj.exe": "invoice_gpj.exe",
    "/etc/../../root/.ssh/id_rsa": "id_rsa",
}


def test_hostile_device_paths_are_stored_safely_inside_the_action_folder(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    for path in HOSTILE:
        simulator.state.add_device_file(WS1, path, 100 + len(path))
    action_id = actions.finish_raw([{"type": "GetFile", "params": [{"key": "Path", "value": p}]} for p in HOSTILE])
    root = tmp_path / "evidence"
    manifest = transfer.run(action_id=action_id, destination=root.as_uri())

    folder = folder_of(root, action_id)
    everything = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert everything == sorted(f"{WS1}/{action_id}/{name}" for name in os.listdir(folder))
    assert len(manifest["files"]) == len(HOSTILE)
    for index, (entry, (device_path, expected)) in enumerate(zip(manifest["files"], HOSTILE.items(), strict=True)):
        assert entry["command"]["device_path"] == device_path
        if expected is None:
            assert entry["path"].startswith(f"{index}_long")
            assert entry["path"].endswith(".log")
            assert len(entry["path"].encode()) < 200
        else:
            assert entry["path"] == f"{index}_{expected}"
        stored = folder / entry["path"]
        assert stored.stat().st_size == 100 + len(device_path)
        assert sha256_of(stored) == simulator.state.result_digest(action_id, index)["raw"]["sha256"]


# -- bad input and unfinished actions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"action_id": "../etc"}, "not an MDE machine action id"),
        ({"destination": "evidence/relative"}, "neither a URL nor an absolute path"),
        ({"destination": "s3://bucket/x?X-Amz-Signature=abc"}, "holds '?' or '#'"),
        ({"destination": "nosuch://bucket/x"}, "no file system is registered for nosuch://"),
        ({"destination": ""}, "destination must be a URL"),
        ({"command_indexes": []}, "non-empty list"),
        ({"command_indexes": [0, 0]}, "names a command twice"),
        ({"command_indexes": [-1]}, "integer from 0"),
        ({"command_indexes": '[1, "a"]'}, "integer from 0"),
        ({"chunk_size": 10}, "chunk_size"),
        ({"max_resumes": -1}, "max_resumes"),
        ({"content_digests": False}, "content_digests=False applies only with keep_compressed=True"),
        ({"keep_compressed": "yes"}, "keep_compressed must be True or False"),
        ({"overwrite": 1}, "overwrite must be True or False"),
        ({"content_digests": None}, "content_digests must be True or False"),
        ({"chunk_size": 64 * 1024.0}, "chunk_size must be a whole number"),
        ({"max_resumes": True}, "max_resumes must be a whole number"),
        ({"transcript_lines": -1}, "transcript_lines"),
        ({"transcript_lines": True}, "transcript_lines must be a whole number"),
        ({"progress_interval": 0}, "progress_interval"),
        ({"progress_interval": math.inf}, "progress_interval"),
        ({"progress_interval": "30"}, "progress_interval must be a number of seconds"),
        ({"max_retry_wait": math.inf}, "max_retry_wait"),
        ({"max_retry_wait": None}, "max_retry_wait must be a number of seconds"),
        ({"mde_conn_id": ""}, "mde_conn_id is empty"),
        ({"mde_conn_id": None}, "mde_conn_id must be text"),
        ({"dest_conn_id": 5}, "dest_conn_id must be text"),
    ],
)
def test_bad_input_is_named_before_any_api_call(
    simulator: Simulator, transfer: Transfer, tmp_path: Path, kwargs: dict[str, Any], fragment: str
) -> None:
    arguments = {"action_id": ACTION_ID, "destination": tmp_path.as_uri(), **kwargs}
    with pytest.raises(LiveResponseConfigError) as info:
        transfer.run(**arguments)
    assert fragment in str(info.value)
    assert api_calls(simulator) == 0


def test_a_nan_progress_interval_is_refused_before_any_api_call(
    simulator: Simulator, transfer: Transfer, tmp_path: Path
) -> None:
    # NaN passed the old "progress_interval <= 0" check: every comparison with NaN is false.
    with pytest.raises(LiveResponseConfigError, match=r"Task copy_\w+: progress_interval must be a finite number"):
        transfer.run(action_id=ACTION_ID, destination=tmp_path.as_uri(), progress_interval=math.nan)
    assert api_calls(simulator) == 0


@pytest.mark.parametrize("bad", [math.nan, -5])
def test_a_nan_or_negative_max_retry_wait_is_refused_before_any_api_call(
    simulator: Simulator, transfer: Transfer, tmp_path: Path, bad: float
) -> None:
    # With NaN, "waited + delay > max_retry_wait" is never true: a throttled call would wait forever.
    with pytest.raises(LiveResponseConfigError, match="max_retry_wait must be a finite number of seconds"):
        transfer.run(action_id=ACTION_ID, destination=tmp_path.as_uri(), max_retry_wait=bad)
    assert api_calls(simulator) == 0


def test_durations_may_be_timedeltas_and_reach_the_hook_as_seconds(tmp_path: Path) -> None:
    from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
        LiveResponseToObjectStorageOperator,
    )

    operator = LiveResponseToObjectStorageOperator(
        task_id="copy",
        action_id=ACTION_ID,
        destination=tmp_path.as_uri(),
        max_retry_wait=timedelta(minutes=5),
        progress_interval=timedelta(seconds=45),
    )
    assert operator._hook().retry_policy.max_retry_wait == 300.0


def test_an_action_still_running_is_refused(actions: Actions, transfer: Transfer, tmp_path: Path) -> None:
    action = actions.hook.run_live_response(WS1, [RunScript("sleep.ps1", args="300")], comment="running")
    with pytest.raises(LiveResponseError) as info:
        transfer.run(action_id=action.id, destination=tmp_path.as_uri())
    assert "not final" in str(info.value)
    assert "MachineActionSensor" in str(info.value)
    assert not tmp_path.joinpath(WS1).exists()


def test_a_command_without_a_result_is_named(actions: Actions, transfer: Transfer, tmp_path: Path) -> None:
    action_id = actions.finish([RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\missing.txt")])
    with pytest.raises(LiveResponseError) as info:
        transfer.run(action_id=action_id, destination=tmp_path.as_uri(), command_indexes=[1])
    assert "command 1 (GetFile C:\\Windows\\Temp\\missing.txt)" in str(info.value)
    assert "no result (status Failed; errors: The system cannot find the file specified" in str(info.value)
    # Without command_indexes, what the failed action did produce is still evidence worth keeping.
    manifest = transfer.run(action_id=action_id, destination=tmp_path.as_uri())
    assert manifest["action"]["status"] == "Failed"
    assert [f["path"] for f in manifest["files"]] == ["0_triage.ps1.transcript.json"]
    assert transfer.ti.xcom["transcripts"][0]["exit_code"] == 0
    assert transfer.ti.xcom["transcripts"][0]["stdout_head"] == [
        "Collecting triage...",
        r"Wrote C:\Windows\Temp\triage.zip",
    ]


def test_progress_is_logged_calmly(
    simulator: Simulator,
    actions: Actions,
    transfer: Transfer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The blob moves at exactly 256 KiB per second of the fake clock, in whole 64 KiB reads, whatever this
    # machine's speed: the progress lines are known to the byte.
    from airflow_provider_liveresponse.hooks.result_reader import ResultReader

    clock = FakeClock()
    original = ResultReader.readinto

    def read_fully_at_256_kib_per_second(reader: ResultReader, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = 0
        while count < len(view) and (got := original(reader, view[count:])):
            count += got
        clock.now += count / (256 * 1024)
        return count

    monkeypatch.setattr(ResultReader, "readinto", read_fully_at_256_kib_per_second)
    action_id = actions.finish([sized(8 * MIB)])
    total = simulator.state.result_digest(action_id, 0)["compressed"]["size"]
    assert 1.5 * MIB < total < 2 * MIB  # the progress counts the blob as served: 8 MiB of content compress to this
    operator = transfer.operator(
        action_id=action_id, destination=tmp_path.as_uri(), chunk_size=64 * 1024, progress_interval=2.0
    )
    operator.clock = clock
    capsys.readouterr()
    operator.execute({"ti": transfer.ti})  # type: ignore[arg-type]

    described = (
        f"command 0 (GetFile C:\\Evidence\\sim-size-{8 * MIB}.bin) of action {action_id} on machine {WS1} "
        "(ws-0001.contoso.local)"
    )
    logged = [
        line[line.index("Download") :].split(" [airflow.")[0].rstrip()  # the event, without the logger's name
        for line in capsys.readouterr().out.splitlines()
        if described in line
    ]
    shown = f"{total / MIB:.1f} MiB"
    expected = [f"Downloading {described}: {shown}"]
    # One line per 2 s interval (every 512 KiB at this rate), not one per 64 KiB read; then the final line.
    for done, human in ((MIB // 2, "512.0 KiB"), (MIB, "1.0 MiB"), (3 * MIB // 2, "1.5 MiB")):
        expected.append(
            f"Downloading {described}: {human} of {shown} ({100 * done / total:.0f}%), 256.0 KiB/s, "
            f"about 0m{int((total - done) / (256 * 1024)):02d}s left"
        )
    expected.append(f"Downloaded {described}: {shown} in {total / (256 * 1024):.1f} s (256.0 KiB/s)")
    assert logged == expected


def test_connection_resets_before_the_first_byte_are_retried(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish([sized(MIB)])
    simulator.state.faults.set("blob", reset_next=2)
    manifest = transfer.run(action_id=action_id, destination=tmp_path.as_uri())
    assert manifest["files"][0]["sha256"] == simulator.state.result_digest(action_id, 0)["raw"]["sha256"]
    assert manifest["files"][0]["transfer"]["resumes"] == 2


def test_a_blob_host_that_never_answers_fails_clearly_without_the_link(
    simulator: Simulator, actions: Actions, transfer: Transfer, tmp_path: Path
) -> None:
    action_id = actions.finish([sized(MIB)])
    simulator.state.faults.set("blob", reset_rate=1.0)
    with pytest.raises(LiveResponseApiError) as info:
        transfer.run(action_id=action_id, destination=tmp_path.as_uri(), max_resumes=2)
    message = str(info.value)
    assert action_id in message
    assert "sig=" not in message
    assert "se=" not in message
    assert list(folder_of(tmp_path, action_id).iterdir()) == []
