"""Fixtures for the simulator tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.simulator.sim_helpers import SimClient

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_liveresponse.simulator.server import Simulator

#: Simulated seconds per real second of ``still``: the clock moves only when a test advances it.
STILL_SPEED = 1e-6


@pytest.fixture
def mde(simulator: Simulator) -> SimClient:
    """A client of the running ``simulator``."""
    return SimClient(simulator)


@pytest.fixture
def still(simulator_factory: Callable[..., Simulator]) -> Simulator:
    """A simulator whose clock stands still (a microsecond a real second) unless the test advances it."""
    return simulator_factory(speed=STILL_SPEED, token_lifetime=10**12)


@pytest.fixture
def still_mde(still: Simulator) -> SimClient:
    """A client of ``still``."""
    return SimClient(still)
