"""Benchmark 5, DAG parse cost: what importing the package's operators adds to a DAG file's import time.

Each measurement is a fresh interpreter that times, inside itself, ``import airflow.sdk`` alone and then
every module of ``airflow_provider_liveresponse.{operators, sensors, transfers, triggers}``; the figure is the
median over the interpreters of (airflow.sdk + package) / (airflow.sdk alone). Both parts run in the same
process one after the other, so the load of a shared machine weighs on both alike. The modules the package
adds beyond airflow.sdk's are listed; importing msal, an HTTP client stack that airflow.sdk does not already
load, or the simulator fails the benchmark: a DAG file must not pay for what only a running task needs.
"""

from __future__ import annotations

import json
import os
import pkgutil
import statistics
import subprocess
import sys
import textwrap
from importlib import import_module
from typing import TYPE_CHECKING, Any

from benchmarks.core import Result, benchmark

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The subpackages whose modules a DAG file imports.
OPERATOR_PACKAGES = ("operators", "sensors", "transfers", "triggers")
#: Modules (and their submodules) a DAG file must not import when airflow.sdk has not already.
FORBIDDEN = (
    "msal",
    "airflow_provider_liveresponse.simulator",
    "starlette",
    "uvicorn",
    "requests",
    "urllib3",
    "aiohttp",
    "airflow.providers.http",
)
TARGET_RATIO = 1.1

_PROBE = textwrap.dedent(
    """
    import importlib, json, sys, time
    modules = json.loads(sys.argv[1])
    start = time.perf_counter()
    import airflow.sdk
    sdk_done = time.perf_counter()
    sdk_modules = set(sys.modules)
    for name in modules:
        importlib.import_module(name)
    end = time.perf_counter()
    print(json.dumps({
        "total": end - start,
        "sdk": sdk_done - start,
        "sdk_modules": sorted(sdk_modules),
        "added": sorted(set(sys.modules) - sdk_modules),
    }))
    """
)


def package_modules() -> list[str]:
    """Every module of the operator, sensor, transfer and trigger subpackages (found by walking them)."""
    found: list[str] = []
    for sub in OPERATOR_PACKAGES:
        name = f"airflow_provider_liveresponse.{sub}"
        try:
            package = import_module(name)
        except ModuleNotFoundError:
            continue
        found.append(name)
        found.extend(info.name for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."))
    return found


def _probe(modules: Sequence[str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(modules))],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the import probe failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _spread(times: Sequence[float]) -> tuple[str, str, str]:
    return tuple(f"{value:.3f} s" for value in (statistics.median(times), min(times), max(times)))  # type: ignore[return-value]


def _forbidden(added: Sequence[str]) -> list[str]:
    return sorted(
        name for name in added if any(name == prefix or name.startswith(prefix + ".") for prefix in FORBIDDEN)
    )


@benchmark(
    "parse",
    "DAG parse cost (5): import airflow.sdk + every operator module, as a ratio of airflow.sdk alone",
    sizes=(9,),
    quick_sizes=(3,),
    sizes_mean="fresh interpreters; the median is taken",
)
def parse_cost(sizes: Sequence[int], quick: bool) -> Result:
    result = Result()
    modules = package_modules()
    repetitions = max(sizes)
    _probe(modules)  # a warm-up (bytecode caches, airflow.cfg in a new AIRFLOW_HOME), not counted
    sdk_times: list[float] = []
    totals: list[float] = []
    ratios: list[float] = []
    added: list[str] = []
    for _ in range(repetitions):
        run = _probe(modules)
        sdk_times.append(run["sdk"])
        totals.append(run["total"])
        ratios.append(run["total"] / run["sdk"])
        added = run["added"]
    ratio = statistics.median(ratios)

    table = result.table(
        f"Import time, measured inside each of {repetitions} fresh interpreters (medians)",
        ["import", "median", "min", "max", "ratio"],
    )
    table.add("airflow.sdk", *_spread(sdk_times), "1.000x")
    table.add(f"airflow.sdk + {len(modules)} package modules", *_spread(totals), f"{ratio:.3f}x")

    modules_table = result.table(
        f"Modules the package adds beyond airflow.sdk's: {len(added)}", ["package", "modules", "examples"]
    )
    by_package: dict[str, list[str]] = {}
    for name in added:
        parts = name.split(".")
        by_package.setdefault(".".join(parts[:2]) if parts[0] == "airflow" else parts[0], []).append(name)
    for package, names in sorted(by_package.items()):
        modules_table.add(package, len(names), ", ".join(names[:3]) + (", ..." if len(names) > 3 else ""))

    result.notes.append("package modules timed: " + ", ".join(modules))
    result.check("import ratio", f"{ratio:.3f}x", f"<= {TARGET_RATIO}x", ratio <= TARGET_RATIO)
    forbidden = _forbidden(added)
    result.check(
        "heavy modules pulled in (msal, HTTP clients, simulator)",
        str(len(forbidden)) + (f" ({', '.join(forbidden[:5])})" if forbidden else ""),
        "0",
        not forbidden,
    )
    return result
