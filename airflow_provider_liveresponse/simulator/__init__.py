"""A local Microsoft Defender for Endpoint: Entra ID tokens, the Live Response API and blob storage, over HTTPS.

Two ways to use it:

- ``python -m airflow_provider_liveresponse.simulator [--port N] [--speed X] [--profile seeds|current] ...``
  prints one line of JSON (connection URI and ``AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT`` value, CA file, URLs)
  and serves until SIGINT / SIGTERM (:mod:`.__main__`).
- :class:`Simulator` (a context manager) and the ``simulator`` / ``simulator_factory`` pytest fixtures
  (:mod:`.pytest_plugin`) for tests.

The server needs the ``simulator`` extra (``pip install 'airflow-provider-liveresponse[simulator]'``); without
it, the command line fails in one line naming the extra and ``Simulator`` raises :class:`SimulatorExtraMissing`.

Where to read more: :mod:`.fleet` (seeded devices, files and the ``sim-size-<N>.bin`` convention),
:mod:`.library` (seeded scripts and what they do), :mod:`.lifecycle` (action life cycle), :mod:`.limits`
(limits and profiles), :mod:`.faults` (faults per endpoint group), :mod:`.control` (the ``/_sim/`` control
API), :mod:`.identity` (tokens), :mod:`.blobs` (the blob host), :mod:`.state` (counters and digests),
:mod:`.estate` (large fleets for sweeps), :mod:`.usage` (calls per API per hour, session times), :mod:`.views`
(how listings filter thousands of entities).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator

__all__ = ["INSTALL_HINT", "Simulator", "SimulatorExtraMissing", "simulator_class"]

#: How to install what the simulator needs (its packages are not dependencies of the provider).
INSTALL_HINT = "pip install 'airflow-provider-liveresponse[simulator]'"
#: The modules the simulator's server imports from the ``simulator`` extra, and the distribution of each.
EXTRA_MODULES = {"starlette": "starlette", "uvicorn": "uvicorn", "httptools": "httptools", "jwt": "PyJWT"}


class SimulatorExtraMissing(ModuleNotFoundError):
    """The ``simulator`` extra is not installed; the message names what is missing and how to install it."""


def simulator_class() -> type[Simulator]:
    """The :class:`Simulator` class; :class:`SimulatorExtraMissing` naming the extra when its packages are missing."""
    missing = []
    for module, distribution in EXTRA_MODULES.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
            missing.append(distribution)
    if missing:
        raise SimulatorExtraMissing(
            f"the MDE simulator needs {', '.join(missing)}, not installed here: {INSTALL_HINT}", name=missing[0]
        )
    from airflow_provider_liveresponse.simulator.server import Simulator

    return Simulator


def __getattr__(name: str) -> Any:
    # Importing the package stays cheap: the server (starlette, uvicorn) loads on first use.
    if name == "Simulator":
        return simulator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
