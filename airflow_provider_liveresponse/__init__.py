"""Apache Airflow provider for the Microsoft Defender for Endpoint Live Response API."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
