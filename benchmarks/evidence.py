"""Fault campaign 2, no lost or corrupt evidence: transfers cut at random byte offsets and links expired at
random moments, then rerun.

Each transfer is a new GetFile action whose collected file has a random size (1 to 12 MiB of the simulator's
evidence content, so blobs of about 0.2 to 2.5 MiB) copied to ``file://`` by ``LiveResponseToObjectStorageOperator``
(its ``execute``; the hook's backoff between resumes scaled down to at most 50 ms). Each gets one of:

- ``cut once``: the blob host cuts the download at a random byte offset, once (the reader resumes);
- ``cut always``: every download reaching that offset is cut (resumes never get past it: the try fails);
- ``expire``: the simulated clock jumps 31 minutes (past the link's 30) after a random number of blob bytes;
- ``expire, then cut``: both, the cut after the jump (the resume needs a new link: 403, then a new one).

After every try, and while each transfer runs (at every block the operator reads), the destination is scanned:
every object under a final name must hold the source's bytes (SHA-256 of the collected file, from the simulator)
and every manifest must list only such files. Then the same transfer is run again with the faults cleared (an
idempotent rerun when the first try succeeded): the final object's SHA-256 must equal the source's and no
temporary object may be left.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.testing.simulated_connection import running_simulator
from benchmarks.core import Result, benchmark
from benchmarks.secrets_audit import add_place, add_simulator, captured_logs
from benchmarks.support import CONN_ID
from benchmarks.transfer import collected_file_action

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_liveresponse.simulator.server import Simulator

MIB = 1024 * 1024
SCENARIOS = ("cut once", "cut always", "expire", "expire, then cut")
#: Simulated seconds the clock jumps: past the link's 30-minute life.
EXPIRY_JUMP = 31 * 60


class _Scanner:
    """Checks every object under a final name against the source's digests."""

    def __init__(self, sim: Simulator, root: Path) -> None:
        self.sim = sim
        self.root = root
        self.checked: dict[tuple[Path, float, int], bool] = {}
        self.violations: list[str] = []
        self.scans = 0

    def scan(self, when: str) -> None:
        self.scans += 1
        for path in self.root.rglob("*"):
            if not path.is_file() or path.name.endswith(".partial"):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            key = (path, stat.st_mtime, stat.st_size)
            if key in self.checked:
                continue
            problem = self._problem(path)
            self.checked[key] = problem is None
            if problem is not None:
                self.violations.append(f"{when}: {path.relative_to(self.root)}: {problem}")

    def _problem(self, path: Path) -> str | None:
        action_id = path.parent.name
        data = path.read_bytes()
        if path.name == "manifest.json":
            try:
                files = json.loads(data)["files"]
            except (ValueError, KeyError):
                return "a manifest that is not complete JSON"
            for entry in files:
                source = self.sim.state.result_digest(action_id, entry["command"]["index"])["raw"]["sha256"]
                if entry["sha256"] != source or not (path.parent / entry["path"]).is_file():
                    return f"the manifest lists {entry['path']} with another SHA-256 or missing"
            return None
        index = int(path.name.split("_", 1)[0])
        if hashlib.sha256(data).hexdigest() != self.sim.state.result_digest(action_id, index)["raw"]["sha256"]:
            return f"{len(data)} bytes whose SHA-256 is not the source's"
        return None


def _operator_class() -> Any:
    """The operator, with the hook's backoff between resumes scaled down and a scan at every block read."""
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
        LiveResponseToObjectStorageOperator,
    )

    class CampaignOperator(LiveResponseToObjectStorageOperator):
        on_block: Any = None

        def _hook(self) -> LiveResponseHook:
            return LiveResponseHook(
                self.mde_conn_id, max_retry_wait=self.max_retry_wait, sleep=lambda s: time.sleep(min(s, 0.05))
            )

        def _stream(self, reader: Any, temp: Any, described: str, *, keep_transcript: bool) -> Any:
            readinto = reader.readinto

            def watched(buffer: Any) -> int:
                count = int(readinto(buffer))
                if self.on_block is not None:
                    self.on_block(reader.bytes_read)
                return count

            reader.readinto = watched
            return super()._stream(reader, temp, described, keep_transcript=keep_transcript)

    return CampaignOperator


@benchmark(
    "evidence",
    "Fault campaign 2, no lost or corrupt evidence: cut downloads and expired links, then reruns",
    sizes=(100,),
    quick_sizes=(10,),
    sizes_mean="transfers",
)
def evidence(sizes: Sequence[int], quick: bool) -> Result:
    from airflow_provider_liveresponse.exceptions import LiveResponseError

    result = Result()
    count = sizes[0]
    rng = random.Random(20250107)
    operator_class = _operator_class()
    outcomes: dict[str, Counter[str]] = {scenario: Counter() for scenario in SCENARIOS}
    problems: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-evidence-") as scratch_text:
        scratch = Path(scratch_text)
        destination = scratch / "evidence"
        destination.mkdir()
        with (
            running_simulator(CONN_ID, speed=1.0, state_dir=scratch / "simulator") as sim,
            captured_logs("evidence campaign"),
        ):
            sim.state.set_limits(run_calls_per_minute=10**6, read_calls_per_minute=10**6, read_calls_per_hour=10**6)
            scanner = _Scanner(sim, destination)
            for number in range(count):
                scenario = SCENARIOS[number % len(SCENARIOS)]
                size = rng.randint(1 * MIB, 12 * MIB)
                host = f"ws-{number % 250 + 1:04d}.contoso.local"
                action_id = collected_file_action(sim, size, f"C:\\Evidence\\case-{number}.bin", host)
                expected = sim.state.result_digest(action_id, 0)
                blob_size = expected["compressed"]["size"]
                cut = rng.randrange(1, blob_size)
                expire_at = rng.randrange(0, cut if "then cut" in scenario else blob_size)
                counts = outcomes[scenario]
                counts["transfers"] += 1
                if scenario.startswith("cut") or "then cut" in scenario:
                    mode = "always" if "always" in scenario else "once"
                    sim.state.faults.set("blob", cut_after_bytes=cut, cut_mode=mode)
                expired = [False]

                def on_block(
                    done: int,
                    expire_at: int = expire_at,
                    expired: list[bool] = expired,
                    expires: bool = scenario.startswith("expire"),
                    label: str = f"transfer {number} during its first try",
                ) -> None:
                    if expires and not expired[0] and done >= expire_at:
                        sim.state.advance_clock(EXPIRY_JUMP)
                        expired[0] = True
                    scanner.scan(label)

                operator = operator_class(
                    task_id="store", action_id=action_id, destination=f"file://{destination}", mde_conn_id=CONN_ID
                )
                operator.on_block = on_block
                try:
                    operator.execute({})
                    counts["first try stored"] += 1
                except LiveResponseError as error:
                    counts["first try failed cleanly"] += 1
                    add_place("exception", f"evidence transfer {number}", str(error))
                except Exception as error:  # any other type escaping is a finding
                    problems.append(f"transfer {number} ({scenario}): {type(error).__name__}: {error}")
                    add_place("exception", f"evidence transfer {number}", repr(error))
                sim.state.faults.clear("blob")
                scanner.scan(f"transfer {number} after its first try")
                rerun = operator_class(
                    task_id="store", action_id=action_id, destination=f"file://{destination}", mde_conn_id=CONN_ID
                )
                rerun.on_block = lambda done, number=number: scanner.scan(f"transfer {number} during the rerun")
                try:
                    manifest = rerun.execute({})
                except Exception as error:
                    failure = f"{type(error).__name__}: {error}"
                    problems.append(f"transfer {number} ({scenario}): the rerun failed: {failure}")
                    add_place("exception", f"evidence rerun {number}", str(error))
                    continue
                add_place("XCom (return value)", f"evidence transfer {number}", json.dumps(manifest))
                scanner.scan(f"transfer {number} after the rerun")
                (entry,) = manifest["files"]
                stored = destination / manifest["action"]["machine_id"] / action_id / entry["path"]
                if hashlib.sha256(stored.read_bytes()).hexdigest() == expected["raw"]["sha256"]:
                    counts["final SHA-256 = source"] += 1
                else:
                    problems.append(f"transfer {number} ({scenario}): the final object differs from the source")
                counts[f"rerun {entry['outcome']}"] += 1
                counts["links"] += entry["transfer"]["links_requested"]
                counts["resumes"] += entry["transfer"]["resumes"]
            leftovers = [str(p) for p in destination.rglob("*.partial")]
            add_simulator(sim, "evidence")
    elapsed = time.monotonic() - started
    table = result.table(
        f"{count} transfers: what the first try did, and the rerun",
        [
            "scenario",
            "transfers",
            "1st try stored",
            "1st try failed cleanly",
            "rerun stored",
            "rerun: already present",
            "final = source",
            "links (rerun)",
        ],
    )
    for scenario, counts in outcomes.items():
        table.add(
            scenario,
            counts["transfers"],
            counts["first try stored"],
            counts["first try failed cleanly"],
            counts["rerun stored"],
            counts["rerun already_present"],
            counts["final SHA-256 = source"],
            counts["links"],
        )
    good = sum(c["final SHA-256 = source"] for c in outcomes.values())
    result.check("final objects whose SHA-256 equals the source's", f"{good} / {count}", "every one", good == count)
    result.check(
        f"objects under a final name with other content, seen in {scanner.scans} scans",
        str(len(scanner.violations)),
        "0, ever",
        not scanner.violations,
    )
    result.check(
        "temporary objects left after the reruns; other failures",
        f"{len(leftovers)}; {len(problems)}",
        "0; 0",
        not leftovers and not problems,
    )
    for line in (scanner.violations + problems)[:20]:
        result.notes.append(line)
    result.notes.append(f"{count} transfers and reruns in {elapsed:.0f} s")
    return result
