"""A local Microsoft Defender for Endpoint: Entra ID tokens, the Live Response API and blob storage, over HTTPS.

Two ways to use it:

- ``python -m airflow_provider_liveresponse.simulator [--port N] [--speed X] [--profile seeds|current] ...``
  prints one line of JSON (connection URI and ``AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT`` value, CA file, URLs)
  and serves until SIGINT / SIGTERM (:mod:`.__main__`).
- :class:`Simulator` (a context manager) and the ``simulator`` / ``simulator_factory`` pytest fixtures
  (:mod:`.pytest_plugin`) for tests.

Where to read more: :mod:`.fleet` (seeded devices, files and the ``sim-size-<N>.bin`` convention),
:mod:`.library` (seeded scripts and what they do), :mod:`.lifecycle` (action life cycle), :mod:`.limits`
(limits and profiles), :mod:`.faults` (faults per endpoint group), :mod:`.control` (the ``/_sim/`` control
API), :mod:`.identity` (tokens), :mod:`.blobs` (the blob host), :mod:`.state` (counters and digests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator

__all__ = ["Simulator"]


def __getattr__(name: str) -> Any:
    # Importing the package stays cheap: the server (starlette, uvicorn) loads on first use.
    if name == "Simulator":
        from airflow_provider_liveresponse.simulator.server import Simulator

        return Simulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
