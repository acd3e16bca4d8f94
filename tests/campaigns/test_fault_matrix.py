"""Fault campaign 3 as tests: each fault the simulator can throw ends in a success after retrying, or in a clear
LiveResponseError that names the action or call and what to do (the cases live in
airflow_provider_liveresponse/testing/fault_matrix.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.testing.fault_matrix import CASES, Case, campaign_simulator, run_case

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_liveresponse.simulator.server import Simulator

CONN_ID = "mde_faults"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with campaign_simulator(CONN_ID) as simulator:
        yield simulator


@pytest.mark.parametrize("case", CASES, ids=[f"{case.fault} on {case.call}".replace(" ", "_") for case in CASES])
def test_the_call_ends_correctly(case: Case, sim: Simulator) -> None:
    run_case(case, sim, CONN_ID)
