"""The README's demo: the example DAGs, run for real by Airflow (``dag.test``) against the bundled MDE simulator.

Starts the simulator (HTTPS, OAuth, MDE's limits, on a fast clock), points the ``mde_live_response_default``
connection at it, creates the ``mde_live_response`` pool, then runs ``example_liveresponse_collect`` (one
device by host name: triage script, collect its zip, store results and manifest) and
``example_liveresponse_fleet`` over a handful of devices. Ends with where the evidence and manifests are, a
table of what ran, and a check of every stored digest against the simulator's own record of the bytes. The
simulator stops with the demo; a second run works the same (earlier evidence is kept, identical files skipped).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLEET = [f"ws-{n:04d}.contoso.local" for n in range(2, 7)]


def _say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _load(folder: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def _xcom(run: Any, task_id: str, map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.settings import Session

    query = XComModel.get_many(
        run_id=run.run_id, key="return_value", task_ids=task_id, dag_ids=run.dag_id, map_indexes=map_index
    )
    with Session() as session:
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)


def _manifest_folders(evidence: Path, action_ids: set[str]) -> list[Path]:
    """The folders of this run's actions: ``<machine id>/<action id>/`` (the transfer operator's layout) and
    ``<host>_<machine id>/<action id>/`` (the fleet sweep's), each holding a manifest.json."""
    found = [m.parent for m in evidence.glob("*/*/manifest.json") if m.parent.name in action_ids]
    return sorted(found, key=lambda folder: (folder.parent.name, folder.name))


def _verify(sim: Any, folder: Path) -> list[dict[str, Any]]:
    """Each stored file against its manifest entry and the simulator's record; one table row per file."""
    on_disk = json.loads((folder / "manifest.json").read_text())
    action = on_disk["action"]
    rows = []
    for entry in on_disk["files"]:
        path = folder / entry["path"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        expected = sim.state.result_digest(action["id"], entry["command"]["index"])["raw"]["sha256"]
        rows.append(
            {
                "host": action.get("computer_dns_name") or action["machine_id"],
                "action": action["id"],
                "file": entry["path"],
                "bytes": path.stat().st_size,
                "sha256": digest,
                "verified": digest == entry["sha256"] == expected,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("evidence", nargs="?", default="evidence", help="folder for the evidence (./evidence)")
    parser.add_argument("--speed", type=float, default=120.0, help="simulated seconds per real second")
    args = parser.parse_args()
    evidence = Path(args.evidence).resolve()
    evidence.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    home = Path(os.environ["AIRFLOW_HOME"])
    dags = home / "dags"
    shutil.copytree(ROOT / "example_dags", dags, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    os.environ["MDE_POLL_INTERVAL"] = "1"

    _say(f"Preparing Airflow's metadata database in {home}")
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    subprocess.run(  # noqa: S603
        [*airflow, "pools", "set", "mde_live_response", "25", "MDE live response sessions", "--include-deferred"],
        check=True,
        stdout=subprocess.DEVNULL,
    )

    from airflow_provider_liveresponse.simulator import Simulator

    with Simulator(speed=args.speed, token_lifetime=3600 * args.speed) as sim:
        os.environ["AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT"] = sim.connection_json()
        _say(f"MDE simulator up: API {sim.api_url}, blob host {sim.blob_url}, clock x{args.speed:g}")

        destination = f"file://{evidence}"
        _say("Running example_liveresponse_collect: triage of ws-0001.contoso.local")
        collect = _load(dags, "example_liveresponse_collect").test(
            run_conf={"host": "ws-0001.contoso.local", "case": "DEMO-1", "destination": destination}
        )
        _say(f"Running example_liveresponse_fleet over {len(FLEET)} devices")
        fleet = _load(dags, "example_liveresponse_fleet").test(
            run_conf={"hosts": FLEET, "case": "DEMO-2", "destination": destination}
        )

        stored = _xcom(collect, "store") or {}
        action_ids = {stored.get("action", {}).get("id", "")}
        sweep = _xcom(fleet, "sweep") or {}
        action_ids |= {row["action_id"] for row in sweep.get("devices", []) if row.get("outcome") == "collected"}
        folders = _manifest_folders(evidence, action_ids)
        rows = [row for folder in folders for row in _verify(sim, folder)]
        states = {"example_liveresponse_collect": str(collect.state), "example_liveresponse_fleet": str(fleet.state)}

    _say(f"Done in {time.monotonic() - started:.0f} s; the simulator is stopped")
    for dag_id, state in states.items():
        print(f"  {dag_id}: {state}")
    print(f"\nEvidence: {evidence}  (one folder per device and action, each with its manifest.json)")
    host_w = max([len(r["host"]) for r in rows] + [4])
    file_w = max([len(r["file"]) for r in rows] + [4])
    print(f"\n{'device':<{host_w}}  {'action':<8}  {'file':<{file_w}}  {'bytes':>9}  {'sha256':<16}  verified")
    for r in rows:
        print(
            f"{r['host']:<{host_w}}  {r['action'][:8]}  {r['file']:<{file_w}}  {r['bytes']:>9}  "
            f"{r['sha256'][:16]}  {'yes' if r['verified'] else 'NO'}"
        )
    actions = len(folders)
    print(f"\n{len(rows)} file(s) from {actions} action(s) verified against the simulator's record of the bytes.")
    ok = all(state == "success" for state in states.values()) and rows and all(r["verified"] for r in rows)
    ok = ok and actions == 1 + len(FLEET)
    if not ok:
        print("The demo did not finish cleanly: see the task logs above.", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
