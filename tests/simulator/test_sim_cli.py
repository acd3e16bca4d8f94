"""The command line: one line of JSON on stdout, then serving until SIGTERM / SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.simulator.sim_helpers import SCOPE

if TYPE_CHECKING:
    from pathlib import Path


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_liveresponse.simulator", "--state-dir", str(tmp_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline() if process.stdout else ""))
    reader.start()
    reader.join(timeout=30)
    if not lines or not lines[0]:
        process.kill()
        _, stderr = process.communicate(timeout=10)
        pytest.fail(f"the simulator printed nothing: {stderr}")
    return process, json.loads(lines[0])


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_cli_prints_how_to_connect_and_stops_on_a_signal(tmp_path: Path, stop_signal: signal.Signals) -> None:
    process, info = _start(
        tmp_path, "--speed", "60", "--profile", "current", "--seed", "3", "--limit", "run_calls_per_minute=20"
    )
    try:
        assert set(info) >= {
            "airflow_conn_env",
            "connection_uri",
            "ca_file",
            "api_url",
            "authority_url",
            "blob_url",
            "control_url",
            "tenant_id",
            "client_id",
            "speed",
            "profile",
        }
        assert info["speed"] == 60
        assert info["profile"] == "current"
        connection = json.loads(info["airflow_conn_env"]["AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT"])
        assert connection["conn_type"] == "mde_live_response"
        assert info["connection_uri"].startswith("mde-live-response://")

        token = requests.post(
            f"{info['authority_url']}/{info['tenant_id']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": connection["login"],
                "client_secret": connection["password"],
                "scope": SCOPE,
            },
            verify=info["ca_file"],
            timeout=10,
        ).json()["access_token"]
        machines = requests.get(
            f"{info['api_url']}/api/machines",
            headers={"Authorization": f"Bearer {token}"},
            verify=info["ca_file"],
            timeout=10,
        )
        assert machines.status_code == 200
        limits = requests.get(f"{info['control_url']}/limits", verify=info["ca_file"], timeout=10).json()
        assert limits["run_calls_per_minute"] == 20
        assert limits["concurrent_sessions"] == 50
    finally:
        process.send_signal(stop_signal)
        try:
            returncode = process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)

    assert returncode == 0


def test_the_cli_seeds_a_large_fleet_and_sets_paging_and_the_report_lag(tmp_path: Path) -> None:
    process, info = _start(
        tmp_path,
        *("--devices", "300", "--offline-fraction", "0.1", "--fleet-tag", "wave", "--fleet-only"),
        *("--page-size", "50", "--last-seen-lag", "86400"),
    )
    try:
        control = info["control_url"]
        counts = requests.get(f"{control}/fleet", params={"tag": "wave"}, verify=info["ca_file"], timeout=10).json()
        limits = requests.get(f"{control}/limits", verify=info["ca_file"], timeout=10).json()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)

    assert info["page_size"] == 50
    (fleet,) = info["fleets"]
    assert (fleet["devices"], fleet["online"], fleet["activeOffline"], fleet["inactive"]) == (300, 270, 15, 15)
    assert counts == {"devices": 300, "online": 270, "activeOffline": 15, "inactive": 15}
    assert (limits["page_size"], limits["last_seen_lag_seconds"]) == (50, 86400)


@pytest.mark.parametrize(
    "args",
    [("--devices", "0"), ("--devices", "10", "--offline-fraction", "2"), ("--page-size", "0")],
    ids=["no-devices", "fraction-above-1", "page-size-0"],
)
def test_the_cli_refuses_a_bad_fleet_or_page_size(args: tuple[str, ...]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_liveresponse.simulator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "error:" in result.stderr
