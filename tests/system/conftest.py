"""Fixtures of the system test (see :mod:`system_scenario`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.system.system_scenario import SystemRun, run_the_examples

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def system_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemRun]:
    """The example DAGs, run once on a real Airflow against the simulator; Airflow is stopped when tests see it.
    Session-scoped: one Airflow serves every system test module."""
    with run_the_examples(tmp_path_factory.mktemp("system")) as run:
        print(f"system run, seconds since start: {run.elapsed}")  # shown with -s, or with a failure
        yield run
