"""Fault campaign 3, the fault matrix: every fault MDE, Entra ID or the blob host can throw, and how a call ends.

The cases live in :mod:`airflow_provider_liveresponse.testing.fault_matrix` (``tests/campaigns/test_fault_matrix.py``
runs them as tests); this campaign runs the whole matrix and tabulates how each call ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_liveresponse.testing.fault_matrix import CASES, campaign_simulator, run_case
from benchmarks.core import Result, benchmark
from benchmarks.support import CONN_ID

if TYPE_CHECKING:
    from collections.abc import Sequence


@benchmark(
    "faults",
    "Fault campaign 3: the fault matrix (429, 5xx, resets, slow answers, 401, 403 links, malformed JSON, ...)",
    sizes=(1,),
    sizes_mean="rounds of the whole matrix",
)
def fault_matrix(sizes: Sequence[int], quick: bool) -> Result:
    result = Result()
    table = result.table(
        "Each fault, the call it hits, and how the call ended", ["fault", "call", "expected", "result", "what happened"]
    )
    passed = total = 0
    for _ in range(max(sizes)):
        with campaign_simulator(CONN_ID) as sim:
            for case in CASES:
                total += 1
                try:
                    detail = run_case(case, sim, CONN_ID)
                    passed += 1
                    verdict = "PASS"
                except Exception as exc:
                    detail = f"{type(exc).__name__}: {exc}"[:160]
                    verdict = "FAIL"
                table.add(case.fault, case.call, case.expected, verdict, detail)
    result.check("fault cases that ended correctly", f"{passed}/{total}", f"{total}/{total}", passed == total)
    return result
