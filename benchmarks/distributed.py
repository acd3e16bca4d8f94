"""Issue 14's tenant-wide budgets: what a whole distributed deployment sends MDE during two 100-device sweeps.

Runs the distributed system test (``pytest -m distributed``, tests/distributed/test_celery_deployment.py: Airflow
3.3 on the CeleryExecutor with Redis and Postgres, two schedulers, two triggerers, two Celery workers, workers and
triggerers killed mid-sweep) and prints the figures it measured on the simulator's clock: submissions in any
sliding minute and 429s, the submission turns every worker took in the shared Postgres database, and calls per
read API in any sliding hour. The test itself asserts the run's correctness; the targets here are MDE's limits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.core import Result, benchmark

if TYPE_CHECKING:
    from collections.abc import Sequence

ROOT = Path(__file__).resolve().parents[1]
FIGURES_ENV = "LIVERESPONSE_DISTRIBUTED_FIGURES"


@benchmark(
    "distributed",
    "Tenant-wide budgets (issue 14): a Celery deployment's calls to MDE during two 100-device sweeps with chaos",
    sizes=(100,),
    quick_sizes=(100,),
    sizes_mean="devices per sweep (fixed by the test)",
)
def distributed(sizes: Sequence[int], quick: bool) -> Result:
    result = Result()
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as scratch:
        figures = Path(scratch) / "figures.json"
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/distributed", "-m", "distributed", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT,
            env={**os.environ, FIGURES_ENV: str(figures)},
            capture_output=True,
            text=True,
            check=False,
        )
        tail = (done.stdout.strip().splitlines() or ["no output"])[-1]
        result.check("distributed test (pytest -m distributed)", tail, "all passed", done.returncode == 0)
        if not figures.exists():
            result.notes.append("the test wrote no figures: " + (done.stdout + done.stderr)[-2000:])
            return result
        measured = json.loads(figures.read_text())
    apis, turns = measured["apis"], measured["turns"]
    table = result.table(
        "The whole deployment's calls, simulated time", ["API", "calls", "429s", "peak a minute", "peak an hour"]
    )
    for api, row in apis.items():
        table.add(api, row["calls"], row["throttled"], row["peak_per_minute"], row["peak_per_hour"])
    submissions = apis["runliveresponse"]
    result.check(
        "submissions in any simulated minute, whole deployment",
        str(submissions["peak_per_minute"]),
        "<= 10",
        submissions["peak_per_minute"] <= 10,
    )
    share = submissions["throttled"] / max(1, submissions["calls"])
    result.check("429s per submission", f"{share:.2%}", "<= 2%", share <= 0.02)
    result.check(
        "submission turns taken in Postgres / submissions sent",
        f"{turns['turns']} / {submissions['calls']}",
        ">= 1 turn per submission",
        turns["turns"] >= submissions["calls"],
    )
    worst = max(apis[api]["peak_per_hour"] for api in ("machineactions", "link", "machines"))
    result.check("read calls per read API in any simulated hour", str(worst), "<= 1500", worst <= 1500)
    return result
