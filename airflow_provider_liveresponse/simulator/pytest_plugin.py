"""pytest fixture ``simulator``: a running MDE simulator per test (speed 60, state in ``tmp_path``).

Enable with ``pytest_plugins = ["airflow_provider_liveresponse.simulator.pytest_plugin"]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_provider_liveresponse.simulator.server import Simulator

#: Simulated seconds per real second in the fixture.
FIXTURE_SPEED = 60.0


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    """A started simulator on free loopback ports, stopped after the test."""
    from airflow_provider_liveresponse.simulator.server import Simulator

    with Simulator(speed=FIXTURE_SPEED, state_dir=tmp_path / "mde-simulator") as sim:
        yield sim
