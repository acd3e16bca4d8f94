"""The benchmark runner: ``python -m benchmarks [--only NAME] [--size NAME=N,N] [--quick] [--list]``.

Runs the registered benchmarks and campaigns in order, prints each one's tables and targets, then a summary
table of every target; exits 1 when a target is missed (or a benchmark crashed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from typing import TYPE_CHECKING

from benchmarks.core import REGISTRY, Result, Target, format_table
from benchmarks.support import prepare_environment, quiet_logs

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The modules that register benchmarks, in the order they run (the issue's numbering). Add new ones here.
BENCHMARK_MODULES = (
    "benchmarks.transfer",
    "benchmarks.polling",
    "benchmarks.fleet_scale",
    "benchmarks.distributed",
    "benchmarks.real_airflow",
    "benchmarks.parse_cost",
    "benchmarks.tokens",
    "benchmarks.fault_matrix",
    "benchmarks.hostile_input",
    "benchmarks.exactly_once",
    "benchmarks.evidence",
    "benchmarks.log_redaction",
    "benchmarks.secrets_campaign",
)


def load() -> None:
    """Import every benchmark module, which registers its benchmarks."""
    for module in BENCHMARK_MODULES:
        importlib.import_module(module)


def _parse_sizes(values: Sequence[str]) -> dict[str, tuple[int, ...]]:
    sizes: dict[str, tuple[int, ...]] = {}
    for value in values:
        name, sep, numbers = value.partition("=")
        if not sep or name not in REGISTRY:
            raise SystemExit(f"--size {value!r}: use NAME=N[,N...] with NAME one of {', '.join(REGISTRY)}")
        try:
            sizes[name] = tuple(int(n) for n in numbers.split(",") if n.strip())
        except ValueError:
            raise SystemExit(f"--size {value!r}: sizes are whole numbers separated by commas") from None
        if not sizes[name] or min(sizes[name]) <= 0:
            raise SystemExit(f"--size {value!r}: give at least one positive size")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    prepare_environment()
    load()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks and fault campaigns of airflow-provider-liveresponse against its MDE simulator.",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only this benchmark (repeatable); one of: {', '.join(REGISTRY)}",
    )
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="NAME=N[,N...]",
        help="the sizes of one benchmark, e.g. --size polling=10,100,500 (see --list for what they mean)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not the published figures")
    parser.add_argument("--list", action="store_true", help="list the benchmarks, their sizes and exit")
    parser.add_argument("--verbose", action="store_true", help="keep the provider's logs (retries, throttling)")
    args = parser.parse_args(argv)

    if args.list:
        for bench in REGISTRY.values():
            print(f"{bench.name:10}  {bench.title}")
            print(
                f"{'':10}  sizes: {','.join(map(str, bench.sizes))} ({bench.sizes_mean}); --quick: "
                f"{','.join(map(str, bench.quick_sizes))}"
            )
        return 0
    unknown = [name for name in args.only if name not in REGISTRY]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(REGISTRY)}")
    sizes = _parse_sizes(args.size)
    quiet_logs(args.verbose)

    selected = [bench for bench in REGISTRY.values() if not args.only or bench.name in args.only]
    summary: list[tuple[str, Target]] = []
    crashed: list[str] = []
    for bench in selected:
        chosen = sizes.get(bench.name) or (bench.quick_sizes if args.quick else bench.sizes)
        print(
            f"\n== {bench.name}: {bench.title} (sizes {','.join(map(str, chosen))}: {bench.sizes_mean}) ==", flush=True
        )
        started = time.monotonic()
        try:
            result = bench.function(chosen, args.quick)
        except Exception:
            traceback.print_exc()
            crashed.append(bench.name)
            summary.append((bench.name, Target("ran to the end", "crashed", "no exception", False)))
            continue
        _print_result(result)
        print(f"({time.monotonic() - started:.0f} s)", flush=True)
        summary.extend((bench.name, target) for target in result.targets)

    print("\n== summary ==")
    rows = [
        [name, target.figure, target.measured, target.target, "PASS" if target.passed else "FAIL"]
        for name, target in summary
    ]
    print(format_table(["benchmark", "figure", "measured", "target", "result"], rows))
    missed = sum(1 for _, target in summary if not target.passed)
    print(
        f"\n{len(summary) - missed} of {len(summary)} targets met"
        + (f"; crashed: {', '.join(crashed)}" if crashed else "")
    )
    return 1 if missed else 0


def _print_result(result: Result) -> None:
    for table in result.tables:
        print(f"\n{table.title}")
        print(format_table(table.columns, table.rows))
    if result.targets:
        print("\ntargets:")
        for target in result.targets:
            verdict = "PASS" if target.passed else "FAIL"
            print(f"  {verdict}  {target.figure}: {target.measured} (target {target.target})")
    for note in result.notes:
        print(f"note: {note}")


if __name__ == "__main__":
    sys.exit(main())
