"""Fixtures for the simulator tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sim_helpers import SimClient

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator


@pytest.fixture
def mde(simulator: Simulator) -> SimClient:
    """A client of the running ``simulator``."""
    return SimClient(simulator)
