"""A fleet sweep that stores evidence fetches more result links than the provider registers with Airflow's secrets
masker: with urllib3's debug lines on (each names the blob's path and query), no signature reaches the task log,
and the masker stops growing at the budget (constant cost per link: no pattern added, no regex recompiled)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from airflow_provider_liveresponse.secrets import MASKED_LINKS_PER_PROCESS, masked_links

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import pytest

    from airflow_provider_liveresponse.simulator import Simulator

SPEED = 600.0
DEVICES = 60  # a triage transcript and a zip each: 120 links, past the masker's budget of 100
PRELUDE = (
    "import logging\n"
    "from airflow_provider_liveresponse.operators.fleet import FleetLiveResponseOperator\n"
    'logging.getLogger("urllib3").setLevel(logging.DEBUG)\n'
)
SWEEP = f"""
FleetLiveResponseOperator(
    task_id="sweep",
    machine_tag="sweep",
    commands=[RunScript("triage.ps1"), GetFile(r"C:\\Windows\\Temp\\triage.zip")],
    comment="IR-1: fleet triage",
    destination=DESTINATION,
    submissions_per_minute={10 * SPEED},
    max_concurrent_sessions=25,
    read_calls_per_minute={100 * int(SPEED)},
    read_calls_per_hour={1500 * int(SPEED)},
    pickup_timeout={3600 / SPEED},
    poll_interval=0.05,
)
"""


def test_a_sweep_past_the_masker_budget_keeps_every_signature_out_of_the_task_log(
    simulator_factory: Callable[..., Simulator],
    dags: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    task_output: Callable[[], str],
) -> None:
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    from airflow_provider_liveresponse.auth import reset_token_providers

    sim = simulator_factory(speed=SPEED, fleet={"devices": DEVICES, "offline_fraction": 0.0})
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", sim.connection_json())
    reset_token_providers()
    caplog.set_level(logging.DEBUG, logger="urllib3")
    evidence = tmp_path / "evidence"

    run = dags.run(SWEEP, prelude=PRELUDE + f"DESTINATION = {evidence.as_uri()!r}\n")

    assert dags.states(run) == {("sweep", -1): "success"}
    assert dags.xcom(run, "sweep")["counts"]["collected"] == DEVICES
    log = task_output()
    assert len(sim.state.issued_links) > MASKED_LINKS_PER_PROCESS
    assert log.count('"GET /mde-liveresponse/') >= len(sim.state.issued_links)  # urllib3 names every download
    for link in sim.state.issued_links:
        query = urlsplit(link).query
        signature = parse_qs(query)["sig"][0]
        assert signature not in log
        assert quote(signature, safe="") not in log
        assert query not in log
    assert not re.findall(r"sig=(?!\*\*\*)", log)
    # the masker stopped at the budget: each registered link is its URL and its signature decoded and as carried,
    # plus the connection's secret and the tokens; no pattern added (no regex recompiled) for the later links
    assert masked_links() == MASKED_LINKS_PER_PROCESS
    assert len(_secrets_masker().patterns) <= 3 * MASKED_LINKS_PER_PROCESS + 10
