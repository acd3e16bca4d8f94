"""pytest fixture ``simulator``: a running MDE simulator per test (speed 60, state in ``tmp_path``).

Its tokens live ``3600 x 60`` simulated seconds, so ``expires_in`` is 3600 real seconds as in production: msal
treats a token that expires within five real minutes as expired, so at speed 60 a one-hour simulated lifetime
would make every call fetch a new token. Tests of expiry advance the clock by ``sim.identity.token_lifetime``.

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
#: Simulated token lifetime in the fixture: one real hour.
FIXTURE_TOKEN_LIFETIME = 3600 * FIXTURE_SPEED


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    """A started simulator on free loopback ports, stopped after the test."""
    from airflow_provider_liveresponse.simulator.server import Simulator

    with Simulator(
        speed=FIXTURE_SPEED, state_dir=tmp_path / "mde-simulator", token_lifetime=FIXTURE_TOKEN_LIFETIME
    ) as sim:
        yield sim
