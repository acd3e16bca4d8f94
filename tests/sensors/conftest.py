"""The sensor's tests run DAGs against the simulator as the operator's do: the same fixtures."""

from __future__ import annotations

from tests.operators.conftest import dags, sim_conn, task_output

__all__ = ["dags", "sim_conn", "task_output"]
