"""Shared test configuration: the MDE simulator's ``simulator`` fixture."""

from __future__ import annotations

pytest_plugins = ["airflow_provider_liveresponse.simulator.pytest_plugin"]
