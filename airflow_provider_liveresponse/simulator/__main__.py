"""Command line: start the simulator, print one line of JSON with how to connect, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import fields
from typing import Any

from airflow_provider_liveresponse.simulator import SimulatorExtraMissing, simulator_class
from airflow_provider_liveresponse.simulator.estate import FleetSpec
from airflow_provider_liveresponse.simulator.limits import PROFILES, Limits


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_liveresponse.simulator",
        description="A local Microsoft Defender for Endpoint Live Response API (HTTPS, OAuth, limits, faults).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to serve on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port of the API and login host (0: a free port)")
    parser.add_argument("--blob-host", default=None, help="address of the blob host (default: --host)")
    parser.add_argument("--blob-port", type=int, default=0, help="port of the blob host (0: a free port)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (1)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="seeds", help="limits profile (seeds)")
    parser.add_argument("--state-dir", default=None, help="folder for TLS files and blobs (a temporary folder)")
    parser.add_argument("--token-lifetime", type=float, default=3600, help="token lifetime, simulated seconds (3600)")
    parser.add_argument("--seed", type=int, default=0, help="seed of contents, ids and random faults (0)")
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one limit, e.g. --limit run_calls_per_minute=20 (repeatable; names: "
        + ", ".join(field.name for field in fields(Limits))
        + ")",
    )
    parser.add_argument("--page-size", type=int, default=None, help="entities per page of every listing (100)")
    parser.add_argument(
        "--last-seen-lag",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how old an online device's lastSeen reads (120; MDE's daily full report: 86400)",
    )
    fleet = parser.add_argument_group("large fleet", "seed N more devices for sweeps (see simulator/estate.py)")
    fleet.add_argument("--devices", type=int, default=None, metavar="N", help="how many fleet devices to seed")
    fleet.add_argument("--offline-fraction", type=float, default=0.0, help="share offline, half Inactive (0)")
    fleet.add_argument("--fleet-tag", default="sweep", help="the fleet's machine tag (sweep)")
    fleet.add_argument("--fleet-group", default="Sweep", help="the fleet's device group (Sweep, rbacGroupId 105)")
    fleet.add_argument("--fleet-prefix", default="fleet", help="host names PREFIX-00001.contoso.local (fleet)")
    fleet.add_argument("--fleet-only", action="store_true", help="drop the seeded devices: only the fleet")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until interrupted; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    limits = _limits(parser, args)
    fleet_spec = _fleet(parser, args)

    try:
        simulator_type = simulator_class()
    except SimulatorExtraMissing as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    simulator = simulator_type(
        speed=args.speed,
        state_dir=args.state_dir,
        profile=args.profile,
        seed=args.seed,
        token_lifetime=args.token_lifetime,
        host=args.host,
        port=args.port,
        blob_host=args.blob_host,
        blob_port=args.blob_port,
        limits=limits,
        fleet=fleet_spec,
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


def _limits(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The limit overrides of ``--limit NAME=VALUE``, ``--page-size`` and ``--last-seen-lag``."""
    names = {field.name for field in fields(Limits)}
    limits: dict[str, Any] = {}
    for item in args.limit:
        name, separator, value = item.partition("=")
        if not separator or name not in names:
            parser.error(f"--limit {item!r}: expected NAME=VALUE with a known limit name")
        limits[name] = float(value) if "." in value else int(value)
    if args.page_size is not None:
        if args.page_size < 1:
            parser.error("--page-size must be at least 1")
        limits["page_size"] = args.page_size
    if args.last_seen_lag is not None:
        if args.last_seen_lag < 0:
            parser.error("--last-seen-lag must not be negative")
        limits["last_seen_lag_seconds"] = args.last_seen_lag
    return limits


def _fleet(parser: argparse.ArgumentParser, args: argparse.Namespace) -> FleetSpec | None:
    """The large fleet of ``--devices N`` and its options, or None."""
    if args.devices is None:
        return None
    try:
        return FleetSpec(
            devices=args.devices,
            offline_fraction=args.offline_fraction,
            tag=args.fleet_tag,
            group=args.fleet_group,
            prefix=args.fleet_prefix,
            seed=args.seed,
            replace=args.fleet_only,
        )
    except ValueError as error:
        parser.error(f"--devices: {error}")


if __name__ == "__main__":
    sys.exit(main())
