"""Command line: start the simulator, print one line of JSON with how to connect, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from airflow_provider_liveresponse.simulator.limits import PROFILES


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until interrupted; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_liveresponse.simulator",
        description="A local Microsoft Defender for Endpoint Live Response API (HTTPS, OAuth, limits, faults).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to serve on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port of the API and login host (0: a free port)")
    parser.add_argument("--blob-port", type=int, default=0, help="port of the blob host (0: a free port)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (1)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="seeds", help="limits profile (seeds)")
    parser.add_argument("--state-dir", default=None, help="folder for TLS files and blobs (a temporary folder)")
    parser.add_argument("--token-lifetime", type=float, default=3600, help="token lifetime, simulated seconds (3600)")
    parser.add_argument("--seed", type=int, default=0, help="seed of contents, ids and random faults (0)")
    args = parser.parse_args(argv)

    from airflow_provider_liveresponse.simulator.server import Simulator

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    simulator = Simulator(
        speed=args.speed,
        state_dir=args.state_dir,
        profile=args.profile,
        seed=args.seed,
        token_lifetime=args.token_lifetime,
        host=args.host,
        port=args.port,
        blob_port=args.blob_port,
    )
    simulator.start()
    try:
        sys.stdout.write(json.dumps(simulator.summary()) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            if not simulator.running:
                return 1
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
