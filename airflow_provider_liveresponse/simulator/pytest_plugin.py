"""pytest fixtures: ``simulator`` (a running MDE simulator per test), ``simulator_factory`` (custom ones) and
``fleet_simulator`` (one that also holds a large fleet: 5,000 devices tagged ``sweep``, 10% offline).

Enable with ``pytest_plugins = ["airflow_provider_liveresponse.simulator.pytest_plugin"]``.

``simulator`` runs at speed 60 with its state in ``tmp_path``. Its tokens live ``3600 x 60`` simulated
seconds, so ``expires_in`` is 3600 real seconds as in production: msal treats a token that expires within five
real minutes as expired, so at speed 60 a one-hour simulated lifetime would make every call fetch a new token.
Tests of expiry advance the clock by ``sim.identity.token_lifetime``.

Any simulator can hold a large fleet: ``simulator_factory(fleet={"devices": 5000, "offline_fraction": 0.1})``
or ``sim.add_fleet(devices=..., ...)`` (see :mod:`.estate`); what was seeded is in ``sim.fleets``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from airflow_provider_liveresponse.simulator.server import Simulator

#: Simulated seconds per real second in the fixture.
FIXTURE_SPEED = 60.0
#: Simulated token lifetime in the fixture: one real hour.
FIXTURE_TOKEN_LIFETIME = 3600 * FIXTURE_SPEED
#: The large fleet of ``fleet_simulator``: 5,000 devices tagged ``sweep`` in group ``Sweep``, 10% offline
#: (250 Inactive, 250 Active but offline), on top of the seeded devices.
FIXTURE_FLEET = {"devices": 5000, "offline_fraction": 0.1}


@pytest.fixture
def simulator_factory(tmp_path: Path) -> Iterator[Callable[..., Simulator]]:
    """Start simulators with any :class:`Simulator` arguments (fixture defaults otherwise); all stop after the test."""
    from airflow_provider_liveresponse.simulator.server import Simulator

    started: list[Simulator] = []

    def make(**kwargs: Any) -> Simulator:
        kwargs.setdefault("speed", FIXTURE_SPEED)
        kwargs.setdefault("token_lifetime", FIXTURE_TOKEN_LIFETIME * kwargs["speed"] / FIXTURE_SPEED)
        kwargs.setdefault("state_dir", tmp_path / f"mde-simulator-{len(started)}")
        sim = Simulator(**kwargs).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(simulator_factory: Callable[..., Simulator]) -> Simulator:
    """A started simulator on free loopback ports (speed 60), stopped after the test."""
    return simulator_factory()


@pytest.fixture
def fleet_simulator(simulator_factory: Callable[..., Simulator]) -> Simulator:
    """A started simulator (speed 60) that also holds the large fleet :data:`FIXTURE_FLEET`."""
    return simulator_factory(fleet=dict(FIXTURE_FLEET))
