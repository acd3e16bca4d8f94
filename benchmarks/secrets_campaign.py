"""Fault campaign 5, secrets: after the other campaigns and the real-Airflow benchmarks of this run, zero
occurrences of the client secret, any access token or any result link's signature in what they collected.

The places are gathered by :mod:`benchmarks.secrets_audit` as the others run: every log line of the in-process
campaigns (stdlib logging and structlog, at DEBUG), the forked workers' task logs, the manifests returned as
XComs, every exception text, and from the Airflow metadata databases (``dag.test()``'s and the real
deployments'): XComs, rendered template fields, trigger rows (as stored, and decrypted) and the database file
itself, plus every log file a real deployment wrote. The secrets are those each simulator recorded handing out.
Run alone (``--only secrets``), it first runs the evidence and exactly-once campaigns at their quick sizes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmarks.core import Result, benchmark
from benchmarks.secrets_audit import COLLECTED, leaks

if TYPE_CHECKING:
    from collections.abc import Sequence


@benchmark(
    "secrets",
    "Fault campaign 5, secrets: no secret in logs, XComs, rendered fields, triggers or exceptions",
    sizes=(1,),
    sizes_mean="no size: it checks what the campaigns before it collected",
)
def secrets(sizes: Sequence[int], quick: bool) -> Result:
    result = Result()
    if not COLLECTED.places:
        from benchmarks.evidence import evidence
        from benchmarks.exactly_once import exactly_once

        result.notes.append("nothing collected yet in this run: ran the evidence and exactly-once campaigns (quick)")
        evidence((10,), True)
        exactly_once((2,), True)
    table = result.table("What was searched", ["kind of place", "places", "bytes"])
    sizes_by_kind: dict[str, int] = {}
    for where, data in COLLECTED.places:
        kind = where.split(":", 1)[0]
        sizes_by_kind[kind] = sizes_by_kind.get(kind, 0) + len(data)
    for kind, places in sorted(COLLECTED.sources.items()):
        table.add(kind, places, f"{sizes_by_kind.get(kind, 0):,}")
    found = leaks()
    result.check(
        f"secrets found ({len(COLLECTED.secrets)} secret forms searched in {len(COLLECTED.places)} places)",
        str(len(found)),
        "0",
        not found and bool(COLLECTED.secrets),
    )
    result.notes.extend(found[:20])
    return result
