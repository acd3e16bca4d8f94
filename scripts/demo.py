"""The README's demo: a forensic collection end to end against the bundled MDE simulator.

Starts the simulator (HTTPS, OAuth, MDE's limits, on a fast clock), points an Airflow connection at it,
and through LiveResponseHook: looks a device up by host name, runs a triage script and collects the file it
wrote, waits with progress, streams each result into the evidence folder (temporary name, then renamed),
and checks every digest against the simulator's own record of the blob.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

HOST = "ws-0001.contoso.local"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("evidence", nargs="?", default="evidence", help="folder for the evidence (./evidence)")
    parser.add_argument("--speed", type=float, default=120.0, help="simulated seconds per real second")
    parser.add_argument("--host", default=HOST, help="the simulated device to collect from")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    log = logging.getLogger("demo")

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import GetFile, RunScript
    from airflow_provider_liveresponse.simulator import Simulator

    evidence = Path(args.evidence).resolve()
    with Simulator(speed=args.speed, token_lifetime=3600 * args.speed) as sim:
        os.environ["AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT"] = sim.connection_json()
        log.info("MDE simulator up: API %s, blob host %s, speed x%g", sim.api_url, sim.blob_url, args.speed)
        hook = LiveResponseHook()
        ok, message = hook.test_connection()
        log.info("Connection test: %s", message)
        if not ok:
            return 1

        (machine,) = hook.find_machines(computer_dns_name=args.host)
        log.info("Device %s is %s (%s, %s)", args.host, machine.id, machine.os_platform, machine.health_status)
        action = hook.run_live_response(
            machine.id,
            [RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\triage.zip")],
            comment="Demo: triage collection",
        )
        log.info("Submitted action %s; waiting for it to end", action.id)
        started = time.monotonic()
        while not action.is_terminal:
            time.sleep(1.0)
            action = hook.get_machine_action(action.id)
            states = ", ".join(f"{c.index}:{c.type}={c.command_status}" for c in action.commands)
            log.info("Action %s is %s after %.0f s [%s]", action.id, action.status, time.monotonic() - started, states)
        if str(action.status) != "Succeeded":
            log.error("Action %s ended %s: %s", action.id, action.status, action.summary())
            return 1

        folder = evidence / machine.id / action.id
        folder.mkdir(parents=True, exist_ok=True)
        rows: list[dict[str, Any]] = []
        for command in action.commands:
            if not command.has_result:
                continue
            reader = hook.open_result(action.id, command.index)
            name = (reader.file_name or f"result-{command.index}").removesuffix(".gz")
            is_script = command.type == "RunScript"
            final = folder / (
                f"{command.index}_{command.command.target}.transcript.json" if is_script else f"{command.index}_{name}"
            )
            partial = final.with_name(final.name + ".partial")
            raw_sha = hashlib.sha256()
            with reader, open(partial, "wb") as out:
                stream: Any = reader if is_script else gzip.GzipFile(fileobj=reader)
                while chunk := stream.read(1024 * 1024):
                    raw_sha.update(chunk)
                    out.write(chunk)
            expected = sim.state.result_digest(action.id, command.index)
            assert reader.sha256 == expected["compressed"]["sha256"], "blob digest differs from the simulator's"
            partial.replace(final)
            rows.append(
                {
                    "index": command.index,
                    "type": command.type,
                    "file": str(final.relative_to(evidence)),
                    "bytes": final.stat().st_size,
                    "sha256": raw_sha.hexdigest(),
                }
            )
        transcript = hook.get_script_transcript(action.id, 0)
        log.info("triage.ps1 exited %s", transcript.exit_code)

    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"action": action.summary(), "files": rows}, indent=2))
    print(f"\nEvidence written to {folder}")
    print(f"{'idx':>3}  {'type':<10} {'bytes':>10}  sha256")
    for row in rows:
        print(f"{row['index']:>3}  {row['type']:<10} {row['bytes']:>10}  {row['sha256']}  {row['file']}")
    print(f"Manifest: {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
