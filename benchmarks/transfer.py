"""Benchmark 1, transfer: one large GetFile result from the simulator to ``file://`` through
``LiveResponseToObjectStorageOperator``, against a plain streamed copy of the same blob URL with ``requests``.

The simulator (in this process) holds one GetFile action whose collected file is N MiB of its semi-compressible
evidence content (about a fifth of it survives gzip); the blob is compressed once, before anything is timed.
Every row then runs in a fresh Python process (so that its memory figure is its own and the simulator's thread
does not share its interpreter lock), in turns, twice each at the published size:

- ``requests`` streamed copy: ``iter_content(1 MiB)`` of the blob URL into a file, as served (gzip), then
  ``fsync`` (the operator makes its objects durable before it renames them, so the copy does too);
- the same with a streaming ``zlib`` gunzip: what the operator stores by default, the collected file;
- the operator with ``keep_compressed=True, content_digests=False`` (stores the blob as served, checks its
  length and Content-MD5, records its digests: the like-for-like of the first row);
- the operator with ``keep_compressed=True`` and the collected file's digests too (it inflates the whole blob
  to hash it: more work than either copy, shown against the first row for information, no target);
- the operator as configured by default (stores the collected file: the like-for-like of the second row);
- the baseline: an HttpToS3-style transfer of a 200 MiB collected file, ``response.content`` (the whole body
  in memory), decompressed in memory, then written.

The operator runs through its ``execute`` with a minimal context (no task instance: the ``transcripts`` XCom is
not pushed; everything else is the task's own code path: the action read, the link, the streaming reader, the
decoder, the digests, the temporary name, the checks and the rename, the manifest). Before its clock starts,
its process does what the copies' processes do before theirs (imports the hook, gets a token and a link) and
imports the task runner, which a worker has loaded before any task runs: the time is the transfer's, not
one-off imports. Throughput is the bytes
of the blob per real second; the ratio is the operator's over its like-for-like plain copy's, medians over the
turns. Memory is the growth of the process's peak resident set (``VmHWM``) over its resident set just before
the transfer (the peak is reset there through ``/proc/self/clear_refs``). The link in each copy is fetched
before the clock starts; the operator's own calls to MDE (an action read, a link) are inside its time.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.testing.simulated_connection import running_simulator
from benchmarks.core import Result, benchmark
from benchmarks.support import CONN_ID

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from airflow_provider_liveresponse.simulator.server import Simulator

MIB = 1024 * 1024
#: The baseline row's collected file, in MiB.
BASELINE_MIB = 200
#: Targets: throughput ratio at least this, peak memory growth at most this many MiB.
RATIO_TARGET = 0.9
MEMORY_TARGET_MIB = 64
#: The device and path the benchmark collects from.
HOST = "ws-0001.contoso.local"
ROOT = Path(__file__).resolve().parents[1]


def collected_file_action(sim: Simulator, size: int, path: str, host: str = HOST) -> str:
    """A finished GetFile action on ``host`` whose collected file is ``size`` bytes at ``path``, its blob made."""
    from airflow_provider_liveresponse.simulator.fleet import device_id
    from airflow_provider_liveresponse.simulator.lifecycle import GET_FILE_BYTES_PER_SECOND, Command

    machine = device_id(host)
    sim.state.add_device_file(machine, path, size)
    command = Command(index=0, type="GetFile", params=[{"key": "Path", "value": path}])
    action = sim.state.create_action(machine, [command], f"benchmark: collect {size} bytes", sim.client_id)
    sim.state.advance_clock(size / GET_FILE_BYTES_PER_SECOND + 120)
    finished = sim.state.action(action.id)
    if finished.status != "Succeeded":
        raise RuntimeError(f"the GetFile action ended {finished.status}")
    sim.state.result_digest(action.id, 0)  # compress the blob now, not while a row is timed
    return action.id


@dataclass(frozen=True)
class Measured:
    """One row's turn: seconds, blob bytes read, bytes stored, peak memory growth, the stored SHA-256, and the
    CPU seconds of the row's process and of the simulator's (the benchmark's) process meanwhile."""

    seconds: float
    blob_bytes: int
    stored_bytes: int
    peak_growth: int
    sha256: str
    cpu: float = 0.0
    simulator_cpu: float = 0.0


def _status(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> int:
    """Reset the peak resident set to the current one; returns the current resident set in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _measured() -> Iterator[dict[str, Any]]:
    """Measure the block: its real and CPU seconds and this process's peak memory growth, put in the dict."""
    figures: dict[str, Any] = {}
    base = _reset_peak()
    cpu = time.process_time()
    started = time.perf_counter()
    yield figures
    figures["seconds"] = time.perf_counter() - started
    figures["cpu"] = time.process_time() - cpu
    figures["peak_growth"] = _status("VmHWM") - base


def _child(mode: str, action_id: str, out_dir: str) -> dict[str, Any]:
    """Run one transfer in this (fresh) process; returns what :class:`Measured` holds."""
    from benchmarks.support import quiet_logs

    quiet_logs(False)
    out = Path(out_dir)
    if mode.startswith("operator"):
        from airflow.sdk.execution_time import task_runner  # noqa: F401 - loaded in every worker

        from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
        from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
            LiveResponseToObjectStorageOperator,
        )

        LiveResponseHook(CONN_ID).get_result_download_link(action_id, 0)  # as the copies do before their clock
        operator = LiveResponseToObjectStorageOperator(
            task_id="store",
            action_id=action_id,
            destination=f"file://{out}",
            mde_conn_id=CONN_ID,
            keep_compressed=mode.startswith("operator-compressed"),
            content_digests=mode != "operator-compressed",
        )
        with _measured() as figures:
            manifest = operator.execute({})  # type: ignore[arg-type]
        (entry,) = manifest["files"]
        stored = out / manifest["action"]["machine_id"] / manifest["action"]["id"] / entry["path"]
        return {
            **figures,
            "blob_bytes": entry["blob"]["size"],
            "stored_bytes": stored.stat().st_size,
            "sha256": entry["sha256"],
        }

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

    hook = LiveResponseHook(CONN_ID)
    url = hook.get_result_download_link(action_id, 0)
    verify = hook.settings.verify
    target = out / "copy.bin"
    with _measured() as figures:
        blob_bytes = _copy(mode, url, verify, target)
    return {**figures, "blob_bytes": blob_bytes, "stored_bytes": target.stat().st_size, "sha256": _sha256_file(target)}


def _copy(mode: str, url: str, verify: str | bool, target: Path) -> int:
    """One of the plain copies of ``url`` into ``target``; returns the blob bytes read (``requests`` is already
    imported by the hook, before the clock)."""
    import zlib

    import requests

    blob_bytes = 0
    if mode == "buffered":
        # HttpToS3Operator's way: the whole body in memory, then one write (here, decompressed first).
        response = requests.get(url, verify=verify, timeout=(10, 300))
        response.raise_for_status()
        body = response.content
        blob_bytes = len(body)
        data = zlib.decompress(body, wbits=31)
        with target.open("wb") as sink:
            sink.write(data)
            sink.flush()
            os.fsync(sink.fileno())
        del body, data
    else:
        inflater = zlib.decompressobj(wbits=31) if mode == "requests-gunzip" else None
        with requests.get(url, stream=True, verify=verify, timeout=(10, 300)) as response:
            response.raise_for_status()
            with target.open("wb") as sink:
                for chunk in response.iter_content(chunk_size=MIB):
                    blob_bytes += len(chunk)
                    sink.write(inflater.decompress(chunk) if inflater is not None else chunk)
                if inflater is not None:
                    sink.write(inflater.flush())
                sink.flush()
                os.fsync(sink.fileno())
    return blob_bytes


def child_main() -> None:
    """Entry point of a row's process: ``python -c 'import benchmarks.transfer as t; t.child_main()' ARGS``."""
    mode, action_id, out_dir = sys.argv[1:4]
    print("RESULT " + json.dumps(_child(mode, action_id, out_dir)), flush=True)


def _run_row(mode: str, action_id: str, scratch: Path) -> Measured:
    out = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=scratch))
    try:
        simulator_cpu = time.process_time()  # this process only serves the simulator while the row runs
        process = subprocess.run(
            [sys.executable, "-c", "import benchmarks.transfer as t; t.child_main()", mode, action_id, str(out)],
            cwd=ROOT,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
        if process.returncode != 0 or not lines:
            raise RuntimeError(f"row {mode} exited {process.returncode}:\n{process.stderr[-4000:]}")
        simulator_cpu = time.process_time() - simulator_cpu
        return Measured(**json.loads(lines[-1][len("RESULT ") :]), simulator_cpu=simulator_cpu)
    finally:
        import shutil

        shutil.rmtree(out, ignore_errors=True)


ROWS = {
    "requests-compressed": "requests streamed copy, as served (gzip)",
    "operator-compressed": "operator, keep_compressed=True, content_digests=False",
    "operator-compressed-digests": "operator, keep_compressed=True (+ the collected file's digests)",
    "requests-gunzip": "requests streamed copy + streaming gunzip",
    "operator": "operator (default: the collected file)",
}
#: The target: the operator as configured by default against the copy that stores the same bytes.
LIKE_FOR_LIKE = {"operator": "requests-gunzip"}
#: Rows shown as a ratio to a copy that does less than they do (no Content-MD5 check, no SHA-256, no inflating):
#: information, not a target.
FOR_INFORMATION = {"operator-compressed": "requests-compressed", "operator-compressed-digests": "requests-compressed"}


@benchmark(
    "transfer",
    "Transfer (1): a large GetFile result to file:// through the operator vs a plain requests copy",
    sizes=(1024,),
    quick_sizes=(256,),
    sizes_mean="MiB of the collected file (its gzip blob is about a fifth)",
)
def transfer(sizes: Sequence[int], quick: bool) -> Result:
    result = Result()
    turns = 1 if quick else 2
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as scratch_text:
        scratch = Path(scratch_text)
        with running_simulator(CONN_ID, state_dir=scratch / "simulator") as sim:
            for size_mib in sizes:
                _transfer_size(result, sim, size_mib, turns, scratch)
            baseline_id = collected_file_action(sim, BASELINE_MIB * MIB, "C:\\Windows\\Temp\\baseline.dmp")
            expected = sim.state.result_digest(baseline_id, 0)
            baseline = _run_row("buffered", baseline_id, scratch)
            streamed = _run_row("operator", baseline_id, scratch)
    table = result.table(
        f"Baseline: a {BASELINE_MIB} MiB collected file (blob {expected['compressed']['size'] / MIB:.0f} MiB)",
        ["transfer", "blob MiB/s", "peak memory growth", "stored MiB", "SHA-256 matches"],
    )
    for name, row in (("HttpToS3-style: body in memory, gunzip, write", baseline), ("operator (default)", streamed)):
        table.add(
            name,
            f"{row.blob_bytes / MIB / row.seconds:.0f}",
            f"{row.peak_growth / MIB:.0f} MiB",
            f"{row.stored_bytes / MIB:.0f}",
            "yes" if row.sha256 == expected["raw"]["sha256"] else "NO",
        )
    result.check(
        f"operator peak memory growth, {BASELINE_MIB} MiB file (HttpToS3-style: {baseline.peak_growth / MIB:.0f} MiB)",
        f"{streamed.peak_growth / MIB:.0f} MiB",
        f"<= {MEMORY_TARGET_MIB} MiB",
        streamed.peak_growth <= MEMORY_TARGET_MIB * MIB and streamed.sha256 == expected["raw"]["sha256"],
    )
    result.notes.append(
        "throughput counts the blob's bytes (what crosses the network); each row is a fresh process; the copies "
        "fsync their file as the operator does; the operator's time includes its MDE calls (action, link); "
        "the keep_compressed rows are shown against the plain copy as served for information, with no target: "
        "they verify the blob's Content-MD5 and compute its SHA-256 (and, with content_digests, inflate and hash "
        "the collected file), work the copy does not do; the CPU column shows what that costs on this machine, "
        "whose other core serves the blob"
    )
    return result


def _transfer_size(result: Result, sim: Simulator, size_mib: int, turns: int, scratch: Path) -> None:
    action_id = collected_file_action(sim, size_mib * MIB, f"C:\\Windows\\Temp\\memory-{size_mib}.dmp")
    expected = sim.state.result_digest(action_id, 0)
    blob_mib = expected["compressed"]["size"] / MIB
    measured: dict[str, list[Measured]] = {mode: [] for mode in ROWS}
    for _ in range(turns):
        for mode in ROWS:
            measured[mode].append(_run_row(mode, action_id, scratch))
    table = result.table(
        f"{size_mib} MiB collected file, {blob_mib:.0f} MiB gzip blob ({turns} turn(s) each, medians)",
        [
            "transfer",
            "seconds",
            "blob MiB/s",
            "ratio to its plain copy",
            "CPU s (row / simulator)",
            "peak memory growth",
            "stored",
            "SHA-256",
        ],
    )
    medians = {mode: statistics.median(m.seconds for m in rows) for mode, rows in measured.items()}
    for mode, title in ROWS.items():
        rows = measured[mode]
        compressed = "compressed" in mode
        digest = expected["compressed" if compressed else "raw"]
        ok = all(m.sha256 == digest["sha256"] and m.stored_bytes == digest["size"] for m in rows)
        reference = LIKE_FOR_LIKE.get(mode) or FOR_INFORMATION.get(mode)
        ratio = medians[reference] / medians[mode] if reference else 1.0
        table.add(
            title,
            f"{medians[mode]:.1f}",
            f"{blob_mib / medians[mode]:.0f}",
            f"{ratio:.2f}",
            f"{statistics.median(m.cpu for m in rows):.1f} / {statistics.median(m.simulator_cpu for m in rows):.1f}",
            f"{max(m.peak_growth for m in rows) / MIB:.0f} MiB",
            f"{rows[0].stored_bytes / MIB:.0f} MiB",
            "matches" if ok else "WRONG",
        )
        if mode in LIKE_FOR_LIKE:
            result.check(
                f"{title}: throughput / {ROWS[LIKE_FOR_LIKE[mode]]} ({size_mib} MiB)",
                f"{ratio:.2f}",
                f">= {RATIO_TARGET}",
                ratio >= RATIO_TARGET and ok,
            )
        if mode.startswith("operator"):
            peak = max(m.peak_growth for m in rows)
            result.check(
                f"{title}: peak memory growth ({size_mib} MiB)",
                f"{peak / MIB:.0f} MiB",
                f"<= {MEMORY_TARGET_MIB} MiB",
                peak <= MEMORY_TARGET_MIB * MIB,
            )
