"""Benchmark 3 (fleet sweeps): ``example_liveresponse_fleet`` (one FleetLiveResponseOperator task) on a real
Airflow (API server, scheduler, triggerer, DAG processor; the system test's harness,
:mod:`airflow_provider_liveresponse.testing.airflow_system`), against the MDE simulator at MDE's limits (10
submissions a minute, 25 sessions, 100 reads a minute and 1,500 an hour per read API), run fast.

``fleet-scale``: a tag of N devices (5,000), 10% offline: half ``Inactive`` (silent for 10 days), half Active but
offline (silent for an hour, so they read Active with an older lastSeen). ``fleet``: N (200) online workstations
by host name. The simulator runs ``speed`` times faster than real time; the sweep's rates, read budgets, pickup
timeout and poll interval are passed to the DAG (run config and ``MDE_POLL_INTERVAL``) divided by the same
factor, so on the simulator's clock they are MDE's limits, a 15-minute pickup timeout and a 30-second poll.
Every figure is in simulated time.

Figures: the sweep's simulated wall time (the task instance's start to its end; the trigger-to-end time, which adds
Airflow's queueing of a few real seconds multiplied by the speed, beside it) over the lower bound: online devices
at 10 a minute plus one session; and over the bound of every device that must be submitted (online plus Active
but offline: a device that reads Active is only found offline by submitting to it). 429s per submission; actions
per device; sessions held past pickup_timeout (the simulator's session records); the destination verified by
``python -m airflow_provider_liveresponse verify``; read calls per API in any sliding simulated hour; the peak RSS
(VmHWM) of the task process that drives the sweep (``airflow worker -- <task instance id>``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.core import Result, benchmark
from benchmarks.real_airflow import ROOT, _deployment, _task_instances, _trigger, _wait_parsed, _wait_run
from benchmarks.secrets_audit import add_simulator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_liveresponse.simulator.server import Simulator

DAG_ID = "example_liveresponse_fleet"
#: Simulated seconds of one triage session: pickup, triage.ps1, and the GetFile of its 1.5 MiB zip.
SESSION_SECONDS = 5 + 20 + 3 + 1.5 / 20
PICKUP_TIMEOUT = 900.0
POLL_INTERVAL = 30.0
RATIO_TARGET = 1.05
THROTTLE_TARGET = 0.02
READS_PER_HOUR = 1500
#: Simulator speeds. Both runs store evidence, and storing a device's result costs real time on this machine
#: whatever the speed, so the speed is what the worker keeps up with: the sweep must store speed / 6 devices a
#: real second to hold MDE's 10 submissions a simulated minute.
FLEET_SPEED = 4.0
SCALE_SPEED = float(os.environ.get("BENCH_FLEET_SCALE_SPEED", "20"))
#: ``BENCH_FLEET_SCALE_SKIP_STALE=1``: the sweep runs with ``skip_stale`` (stale devices reported, not submitted).
SKIP_STALE = os.environ.get("BENCH_FLEET_SCALE_SKIP_STALE", "") == "1"
TASK_PROCESS = re.compile(r"^airflow worker -- [0-9a-f-]{36}$")


class _PeakRss:
    """Samples the VmHWM of every task runner process (``airflow worker -- <ti id>``) while the run goes."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    self._sample(proc)

    def _sample(self, proc: Path) -> None:
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            if not TASK_PROCESS.match(title):
                return
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kib = max(self.peak_kib, int(line.split()[1]))
        except OSError:
            return


def _sim_time(sim: Simulator, iso: str | None) -> float:
    """The simulated time of a real wall-clock moment (an Airflow date)."""
    if not iso:
        return sim.clock.time()
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    return sim.clock.time() - (time.time() - moment) * sim.clock.speed


def _conf(speed: float, evidence: Path | None, target: dict[str, Any]) -> dict[str, Any]:
    """The run's config: the target and MDE's limits scaled to the worker's (real) clock."""
    return {
        **target,
        "case": "IR-BENCH",
        "destination": evidence.as_uri() if evidence is not None else "",
        "pickup_timeout": PICKUP_TIMEOUT / speed,
        "offline_retries": 0,
        "skip_stale": SKIP_STALE and "machine_tag" in target,
        "submissions_per_minute": 10 * speed,
        "max_concurrent_sessions": 25,
        "read_calls_per_minute": int(100 * speed),
        "read_calls_per_hour": int(READS_PER_HOUR * speed),
    }


def _verify(evidence: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_liveresponse", "verify", evidence.as_uri(), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    report: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    report["exit"] = done.returncode
    return report


def _sweep(scratch: Path, sim: Simulator, target: dict[str, Any], speed: float, store: bool) -> dict[str, Any]:
    """Run the fleet DAG once; what the figures need."""
    source = (ROOT / "example_dags" / f"{DAG_ID}.py").read_text()
    evidence = scratch / "evidence" if store else None
    with _deployment(scratch, sim, POLL_INTERVAL / speed, {f"{DAG_ID}.py": source}) as server:
        _wait_parsed(server, DAG_ID)
        with _PeakRss() as rss:
            triggered = sim.clock.time()
            run_id = _trigger(server, DAG_ID, _conf(speed, evidence, target))
            state = _wait_run(server, DAG_ID, run_id, 4 * 3600)
            ended = sim.clock.time()
        (ti,) = _task_instances(server, DAG_ID, run_id)
        from urllib.parse import quote

        path = f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/sweep/xcomEntries/return_value"
        try:
            outcome = server.api("GET", path)["value"]
        except Exception:
            outcome = {}
    return {
        "state": state,
        "triggered": triggered,
        "ended": ended,
        "task_start": _sim_time(sim, ti.get("start_date")),
        "task_end": _sim_time(sim, ti.get("end_date")),
        "tries": ti.get("try_number"),
        "outcome": outcome if isinstance(outcome, dict) else json.loads(outcome),
        "rss_kib": rss.peak_kib,
        "verify": _verify(evidence) if evidence is not None else None,
    }


def _measure(
    sim: Simulator, run: dict[str, Any], online: set[str], silent: set[str], inactive: set[str]
) -> dict[str, Any]:
    from airflow_provider_liveresponse.simulator.fleet import device_id
    from airflow_provider_liveresponse.simulator.usage import sessions_report

    now = sim.clock.time()
    usage = sim.state.usage.report(now, since=run["triggered"])["apis"]
    sessions = sessions_report(sim.state.actions.values(), now, sim.state.counters["max_concurrent_sessions"])
    per_device = Counter(action.machine_id for action in sim.state.actions.values())
    online_ids = {device_id(h) for h in online}
    never = [s for s in sessions["value"] if s["pickedUp"] is None]
    submissions = len(sim.state.actions)
    return {
        "submissions": submissions,
        "throttled": usage["runliveresponse"]["throttled"],
        "online_once": sum(1 for d in online_ids if per_device[d] == 1),
        "online_other": sorted(per_device[d] for d in online_ids if per_device[d] != 1),
        "inactive_submitted": sum(per_device[device_id(h)] for h in inactive),
        "silent_actions": sum(per_device[device_id(h)] for h in silent),
        "max_never_picked": max((s["pendingSeconds"] for s in never), default=0.0),
        "held_past": sum(1 for s in never if s["pendingSeconds"] > PICKUP_TIMEOUT),
        "peak_sessions": sessions["max_concurrent_sessions"],
        "reads": {api: usage[api]["peak_per_hour"] for api in ("machineactions", "link", "machines")},
        "read_calls": {api: usage[api]["calls"] for api in ("machineactions", "link", "machines")},
    }


def _report(
    result: Result, title: str, speed: float, run: dict[str, Any], m: dict[str, Any], n: dict[str, int]
) -> None:
    online, silent = n["online"], n["silent"]
    sweep_time = run["task_end"] - run["task_start"]
    wall_time = run["ended"] - run["triggered"]
    bound = online / 10 * 60 + SESSION_SECONDS
    must = (online + silent) / 10 * 60 + SESSION_SECONDS
    counts = run["outcome"].get("counts", {})
    report = run["verify"]
    verified = f"exit {report['exit']}, {len(report.get('manifests', []))} manifests" if report else "not stored"
    table = result.table(
        f"{title}: simulator at {speed:g}x, MDE's limits, pickup_timeout {PICKUP_TIMEOUT:g} s, "
        f"poll {POLL_INTERVAL:g} s",
        ["figure", "measured"],
    )
    rows = [
        ("run state; tries", f"{run['state']}; {run['tries']}"),
        ("outcome counts (XCom)", ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"),
        ("sweep time (task start to end)", f"{sweep_time / 60:.1f} min"),
        ("trigger to run end", f"{wall_time / 60:.1f} min"),
        ("bound: online / 10 a minute + one session", f"{bound / 60:.1f} min"),
        ("bound: online + Active-offline / 10 a minute + one session", f"{must / 60:.1f} min"),
        ("submissions; 429s", f"{m['submissions']}; {m['throttled']}"),
        ("online devices with exactly one action", f"{m['online_once']} of {online}"),
        ("actions on Inactive devices; on Active-offline", f"{m['inactive_submitted']}; {m['silent_actions']}"),
        ("peak concurrent sessions", m["peak_sessions"]),
        ("longest wait of a never-picked-up session", f"{m['max_never_picked']:.0f} s"),
        ("read calls (peak in any hour)", ", ".join(f"{a} {m['read_calls'][a]} ({v})" for a, v in m["reads"].items())),
        ("evidence: verify", verified),
        ("peak RSS of the sweep's task process", f"{run['rss_kib'] / 1024:.0f} MiB"),
    ]
    for row in rows:
        table.add(*row)
    ratio, ratio_must = sweep_time / bound, sweep_time / must
    ok = run["state"] == "success"
    passed = ok and ratio <= RATIO_TARGET
    result.check(f"{title}: sweep time / online bound", f"{ratio:.3f}", f"<= {RATIO_TARGET}", passed)
    if silent and SKIP_STALE:
        reported = sum(1 for row in run["outcome"].get("devices", []) if "skip_stale" in row.get("reason", ""))
        result.check(
            f"{title}: Active-offline devices submitted; reported stale, not submitted",
            f"{m['silent_actions']}; {reported}",
            f"0; {silent}",
            m["silent_actions"] == 0 and reported == silent,
        )
    elif silent:
        result.check(
            f"{title}: sweep time / (online + Active-offline) bound",
            f"{ratio_must:.3f}",
            f"<= {RATIO_TARGET}",
            ok and ratio_must <= RATIO_TARGET,
        )
    share = m["throttled"] / max(1, m["submissions"])
    result.check(f"{title}: 429s per submission", f"{share:.2%}", f"<= {THROTTLE_TARGET:.0%}", share <= THROTTLE_TARGET)
    result.check(
        f"{title}: online devices with exactly one action; Inactive submitted",
        f"{m['online_once']}/{online}; {m['inactive_submitted']}",
        f"{online}/{online}; 0",
        m["online_once"] == online and not m["inactive_submitted"],
    )
    held = m["held_past"]
    result.check(f"{title}: sessions held past pickup_timeout", str(held), "0", not held)
    if report is not None:
        manifests = len(report.get("manifests", []))
        result.check(
            f"{title}: collected devices' evidence verified",
            f"{manifests} manifests, exit {report['exit']}; collected {counts.get('collected')}",
            "every collected device, exit 0",
            report["exit"] == 0 and manifests == counts.get("collected") == online,
        )
    worst = max(m["reads"].values())
    limit = READS_PER_HOUR
    result.check(f"{title}: read calls per API in any hour", str(worst), f"<= {limit}", worst <= limit)
    result.notes.append(
        f"{title}: peak RSS of the task process {run['rss_kib'] / 1024:.0f} MiB; trigger-to-end "
        f"{wall_time / bound:.3f} of the online bound (Airflow's queueing, a few real seconds, costs {speed:g}x that "
        "in simulated time)"
    )


def _run(devices: int, offline_fraction: float, speed: float, by_host: bool, store: bool = True) -> Result:
    from airflow_provider_liveresponse.simulator.estate import FleetSpec
    from airflow_provider_liveresponse.simulator.server import Simulator

    result = Result()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as scratch_text:
        scratch = Path(scratch_text)
        fleet = None if by_host else FleetSpec(devices=devices, offline_fraction=offline_fraction)
        sim = Simulator(speed=speed, state_dir=scratch / "simulator", fleet=fleet).start()
        try:
            if by_host:
                online = {f"ws-{k:04d}.contoso.local" for k in range(1, devices + 1)}
                silent: set[str] = set()
                inactive: set[str] = set()
                target: dict[str, Any] = {"hosts": sorted(online)}
            else:
                seeded = sim.fleets[0]
                silent, inactive = set(seeded["activeOfflineHosts"]), set(seeded["inactiveHosts"])
                spec = FleetSpec(devices=devices)
                online = {spec.host_name(k) for k in range(1, devices + 1)} - silent - inactive
                target = {"machine_tag": "sweep"}
            run = _sweep(scratch, sim, target, speed, store)
            measured = _measure(sim, run, online, silent, inactive)
            add_simulator(sim, "fleet")
        finally:
            sim.stop()
    title = f"{devices} devices" + (f", {offline_fraction:.0%} offline" if offline_fraction else " by host name")
    title += ", skip_stale" if SKIP_STALE and not by_host else ""
    _report(result, title, speed, run, measured, {"online": len(online), "silent": len(silent)})
    return result


@benchmark(
    "fleet",
    "Fleet sweep (3), small: N online workstations by host name through example_liveresponse_fleet",
    sizes=(200,),
    quick_sizes=(30,),
    sizes_mean="devices",
)
def fleet(sizes: Sequence[int], quick: bool) -> Result:
    return _run(sizes[0], 0.0, 30.0 if quick else FLEET_SPEED, by_host=True)


@benchmark(
    "fleet-scale",
    "Fleet sweep (3) at scale: a tag of N devices, 10% offline, through example_liveresponse_fleet",
    sizes=(5000,),
    quick_sizes=(200,),
    sizes_mean="devices",
)
def fleet_scale(sizes: Sequence[int], quick: bool) -> Result:
    return _run(sizes[0], 0.1, SCALE_SPEED, by_host=False, store=True)
