"""A local Microsoft Defender for Endpoint simulator: Entra ID tokens, the Live Response API and blob storage.

``python -m airflow_provider_liveresponse.simulator`` for people; :class:`Simulator` (a context manager) and
the ``simulator`` pytest fixture (:mod:`.pytest_plugin`) for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator

__all__ = ["Simulator"]


def __getattr__(name: str) -> Any:
    if name == "Simulator":
        from airflow_provider_liveresponse.simulator.server import Simulator

        return Simulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
