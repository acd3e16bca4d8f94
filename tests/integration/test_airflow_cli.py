"""The connection type as Airflow's own CLI sees it: add, get, list, and the Test button against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.simulator import Simulator


def airflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_airflow_connections_store_and_test_an_mde_connection(airflow_db: Path, simulator: Simulator) -> None:
    conn = simulator.connection_dict()
    added = airflow("connections", "add", "mde_cli", "--conn-json", json.dumps(conn))
    assert added.returncode == 0, added.stderr
    try:
        listed = airflow("connections", "list", "-o", "json")
        (row,) = [c for c in json.loads(listed.stdout) if c["conn_id"] == "mde_cli"]
        assert row["conn_type"] == "mde_live_response"
        tested = airflow("connections", "test", "mde_cli", env={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"})
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert "Connection success!" in tested.stdout
        # The button really went to MDE (here the simulator): a token, then a machine-actions read.
        assert simulator.state.counters["token_requests"] == 1
        assert simulator.state.counters["calls:list_actions"] == 1
        assert simulator.client_secret not in tested.stdout + tested.stderr
    finally:
        airflow("connections", "delete", "mde_cli")


def test_the_test_button_reports_a_wrong_secret(airflow_db: Path, simulator: Simulator) -> None:
    conn: dict[str, Any] = {**simulator.connection_dict(), "password": "wrong-secret-value"}
    env = {"AIRFLOW_CONN_MDE_BAD": json.dumps(conn), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    tested = airflow("connections", "test", "mde_bad", env=env)
    assert "Connection failed!" in tested.stdout
    assert "AADSTS7000215" in tested.stdout
