"""FleetLiveResponseOperator end to end: a tag of 200 devices through dag.test() against a fast simulator (600
simulated seconds a second; the sweep's rates and timeouts are given scaled by the same factor, so they mean MDE's
limits on the simulator's clock): one action per online device, Inactive devices not submitted, devices that never
pick up cancelled within pickup_timeout and reported, a retry that redoes only undone devices, few 429s."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.simulator.fleet import device_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_liveresponse.simulator import Simulator

SPEED = 600.0
DEVICES = 200
PRELUDE = "from airflow_provider_liveresponse.operators.fleet import FleetLiveResponseOperator\n"
SWEEP = f"""
FleetLiveResponseOperator(
    task_id="sweep",
    machine_tag="sweep",
    commands=[RunScript("triage.ps1")],
    comment="IR-1: fleet triage",
    submissions_per_minute={10 * SPEED},
    max_concurrent_sessions=25,
    read_calls_per_minute={100 * int(SPEED)},
    read_calls_per_hour={1500 * int(SPEED)},
    pickup_timeout={3600 / SPEED},
    poll_interval=0.05,
    retries=1,
    retry_delay=dt.timedelta(0),
)
"""


@pytest.fixture
def fleet(simulator_factory: Callable[..., Simulator], monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """A fast simulator with 200 devices tagged sweep: 10 Inactive, 10 Active but offline; the default connection."""
    from airflow_provider_liveresponse.auth import reset_token_providers

    sim = simulator_factory(speed=SPEED, fleet={"devices": DEVICES, "offline_fraction": 0.1})
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", sim.connection_json())
    reset_token_providers()
    return sim


def hosts(sim: Simulator, kind: str) -> set[str]:
    return {device_id(host) for host in sim.fleets[0][kind]}


def actions_per_device(sim: Simulator) -> Counter[str]:
    return Counter(action.machine_id for action in sim.state.actions.values())


def test_a_tag_sweep_collects_every_online_device_once(fleet: Simulator, dags: Any) -> None:
    run = dags.run(SWEEP, prelude=PRELUDE)

    assert dags.states(run) == {("sweep", -1): "success"}
    summary = dags.xcom(run, "sweep")
    assert summary["counts"]["collected"] == DEVICES - 20
    assert summary["counts"]["offline"] == 20
    assert summary["counts"]["failed"] == 0
    per_device = actions_per_device(fleet)
    inactive, silent = hosts(fleet, "inactiveHosts"), hosts(fleet, "activeOfflineHosts")
    assert not inactive & set(per_device)
    assert {per_device[d] for d in set(per_device) - silent} == {1}
    assert len(set(per_device) - silent) == DEVICES - 20


def test_inactive_devices_are_reported_and_never_submitted(fleet: Simulator, dags: Any) -> None:
    summary = dags.xcom(dags.run(SWEEP, prelude=PRELUDE), "sweep")

    inactive = hosts(fleet, "inactiveHosts")
    rows = {row["machine_id"]: row for row in summary["devices"] if row.get("machine_id") in inactive}
    assert len(rows) == len(inactive) == 10
    assert all(row["outcome"] == "offline" and row["reason"].startswith("inactive since") for row in rows.values())


def test_devices_that_never_pick_up_are_cancelled_within_pickup_timeout(fleet: Simulator, dags: Any) -> None:
    summary = dags.xcom(dags.run(SWEEP, prelude=PRELUDE), "sweep")

    silent = hosts(fleet, "activeOfflineHosts")
    mine = [a for a in fleet.state.actions.values() if a.machine_id in silent]
    assert len(mine) == 2 * len(silent)  # the first wave and one later wave (offline_retries=1)
    assert {a.status for a in mine} == {"Cancelled"}
    assert all("no pickup within" in (a.cancellation_comment or "") for a in mine)
    held = [a.cancellation_time - a.created for a in mine if a.cancellation_time is not None]
    # pickup_timeout plus slack for a loaded machine's loop at 600x (1 real second); that the cancel comes at the last
    # poll before pickup_timeout, never after, is tested on a handed clock in tests/fleet/test_sweep.py
    assert max(held) <= 3600 + 600
    rows = [row for row in summary["devices"] if row.get("machine_id") in silent]
    assert {row["reason"] for row in rows} == {"not collected (no pickup within 6s)"}  # 1 h on the simulator clock


def test_submissions_meet_few_429s(fleet: Simulator, dags: Any) -> None:
    dags.run(SWEEP, prelude=PRELUDE)

    submissions = len(fleet.state.actions)
    throttled = fleet.state.counters["throttled:runliveresponse"]
    assert throttled <= 0.02 * submissions


def test_a_retry_redoes_only_the_devices_not_done(fleet: Simulator, dags: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_liveresponse.fleet.sweep import Sweep

    poll = Sweep.poll
    tries: list[int] = []

    def poll_then_die(self: Sweep) -> None:
        poll(self)
        if not tries and self.submitted >= 60:
            tries.append(self.submitted)
            raise RuntimeError("the worker died mid-sweep")

    monkeypatch.setattr(Sweep, "poll", poll_then_die)
    run = dags.run(SWEEP, prelude=PRELUDE)

    assert dags.states(run) == {("sweep", -1): "success"}
    assert tries
    assert tries[0] >= 60
    summary = dags.xcom(run, "sweep")
    assert summary["counts"]["collected"] == DEVICES - 20
    per_device = actions_per_device(fleet)
    silent = hosts(fleet, "activeOfflineHosts")
    assert {per_device[d] for d in set(per_device) - silent} == {1}


def test_skip_stale_submits_nothing_to_stale_devices_and_a_retry_reattaches_to_one_it_submitted(
    fleet: Simulator, dags: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With skip_stale the 10 devices silent for an hour get no action and are reported with their lastSeen. The
    worker dies after 60 submissions and the first device it collected goes silent: on the retry that device is
    stale too, but the sweep had submitted to it, so it is reattached (collected, one action), not skipped."""
    from airflow_provider_liveresponse.fleet.sweep import Sweep

    poll = Sweep.poll
    gone: list[str] = []

    def poll_then_die(self: Sweep) -> None:
        poll(self)
        if not gone and self.submitted >= 60:
            first = min(fleet.state.actions.values(), key=lambda action: action.created)
            device = fleet.state.set_device_online(first.machine_id, False)
            with fleet.state.lock:
                device.last_seen -= 3600  # silent for an hour, like the Active-offline ones: stale at the retry
            gone.append(first.machine_id)
            raise RuntimeError("the worker died mid-sweep")

    monkeypatch.setattr(Sweep, "poll", poll_then_die)
    # stale_after is on MDE's clock (lastSeen): half an hour behind the freshest, whatever the machine's speed.
    sweep = SWEEP.replace(
        'comment="IR-1: fleet triage",', 'comment="IR-1: fleet triage", stale_after=1800, skip_stale=True,'
    )
    run = dags.run(sweep, prelude=PRELUDE)

    assert dags.states(run) == {("sweep", -1): "success"}
    summary = dags.xcom(run, "sweep")
    assert summary["counts"]["collected"] == DEVICES - 20
    assert summary["counts"]["offline"] == 20
    per_device = actions_per_device(fleet)
    silent, inactive = hosts(fleet, "activeOfflineHosts"), hosts(fleet, "inactiveHosts")
    assert not (silent | inactive) & set(per_device)
    assert set(per_device.values()) == {1}
    rows = {row["machine_id"]: row for row in summary["devices"] if row.get("machine_id")}
    assert {rows[d]["outcome"] for d in silent} == {"offline"}
    assert all(rows[d]["reason"].startswith("not submitted: last seen ") for d in silent)
    assert all("min behind the fleet (stale_after 1800 s, skip_stale)" in rows[d]["reason"] for d in silent)
    assert rows[gone[0]]["outcome"] == "collected"


def test_skip_stale_without_stale_after_fails_when_the_dag_is_parsed() -> None:
    from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
    from airflow_provider_liveresponse.models import RunScript
    from airflow_provider_liveresponse.operators.fleet import FleetLiveResponseOperator

    with pytest.raises(LiveResponseConfigError, match=r"skip_stale=True needs stale_after .* stale_after=3600"):
        FleetLiveResponseOperator(task_id="sweep", machine_tag="t", commands=[RunScript("triage.ps1")], skip_stale=True)
    with pytest.raises(LiveResponseConfigError, match="skip_stale must be True or False"):
        FleetLiveResponseOperator(
            task_id="sweep", machine_tag="t", commands=[RunScript("triage.ps1")], stale_after=60, skip_stale="yes"
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pickup_timeout", 4 * 24 * 3600),
        ("pickup_timeout", 0),
        ("offline_retries", -1),
        ("max_concurrent_sessions", 0),
        ("submissions_per_minute", float("nan")),
        ("read_calls_per_hour", "1500"),
        ("fail_on", ["broken"]),
        ("stale_after", -1),
    ],
)
def test_a_bad_parameter_fails_naming_it_when_the_dag_is_parsed(field: str, value: object) -> None:
    from airflow_provider_liveresponse.exceptions import LiveResponseConfigError
    from airflow_provider_liveresponse.models import RunScript
    from airflow_provider_liveresponse.operators.fleet import FleetLiveResponseOperator

    with pytest.raises(LiveResponseConfigError, match=field):
        FleetLiveResponseOperator(
            task_id="sweep", machine_tag="sweep", commands=[RunScript("triage.ps1")], **{field: value}
        )


def test_two_targets_fail_before_any_api_call(fleet: Simulator, dags: Any) -> None:
    run = dags.run(
        """
        FleetLiveResponseOperator(
            task_id="sweep", machine_tag="sweep", machine_filter="osPlatform eq 'Windows11'",
            commands=[RunScript("triage.ps1")],
        )
        """,
        prelude=PRELUDE,
    )

    assert dags.states(run) == {("sweep", -1): "failed"}
    assert fleet.state.counters["calls:machines"] == 0
    assert fleet.state.actions == {}


def test_each_collected_devices_evidence_is_stored_and_verifies(
    simulator_factory: Callable[..., Simulator], dags: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_liveresponse.auth import reset_token_providers
    from airflow_provider_liveresponse.verify import verify

    sim = simulator_factory(speed=SPEED, fleet={"devices": 30, "offline_fraction": 0.1})
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", sim.connection_json())
    reset_token_providers()
    evidence = tmp_path / "evidence"
    body = SWEEP.replace('comment="IR-1: fleet triage",', f'comment="IR-1", destination="{evidence.as_uri()}",')
    body = body.replace('commands=[RunScript("triage.ps1")]', 'commands=[RunScript("triage.ps1"), GetFile(ZIP)]')
    run = dags.run(body, prelude=PRELUDE + 'ZIP = r"C:\\Windows\\Temp\\triage.zip"\n')

    assert dags.states(run) == {("sweep", -1): "success"}
    manifests = sorted(evidence.glob("*/*/manifest.json"))
    assert len(manifests) == 30 - 3 == dags.xcom(run, "sweep")["counts"]["collected"]
    assert manifests[0].parent.parent.name.startswith("fleet-")
    report = verify(evidence.as_uri())
    assert report.ok, [p for p in report.problems if p.kind != "unsigned"]


def test_a_signing_connection_signs_every_devices_manifest_and_verify_checks_them(
    simulator_factory: Callable[..., Simulator], dags: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from airflow_provider_liveresponse.auth import reset_token_providers
    from airflow_provider_liveresponse.signing import signature_name
    from airflow_provider_liveresponse.verify import verify
    from tests.verify.cases import private_pem, signing_connection

    key = Ed25519PrivateKey.generate()
    monkeypatch.setenv("AIRFLOW_CONN_EVIDENCE_SIGNING", signing_connection(key))
    sim = simulator_factory(speed=SPEED, fleet={"devices": 6, "offline_fraction": 0.0})
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", sim.connection_json())
    reset_token_providers()
    evidence = tmp_path / "evidence"
    settings = f'comment="IR-1", destination="{evidence.as_uri()}", signing_conn_id="evidence_signing",'
    run = dags.run(SWEEP.replace('comment="IR-1: fleet triage",', settings), prelude=PRELUDE)

    assert dags.states(run) == {("sweep", -1): "success"}
    manifests = sorted(evidence.glob("*/*/manifest.json"))
    assert len(manifests) == 6 == dags.xcom(run, "sweep")["counts"]["collected"]
    assert all((m.parent / signature_name(m.name)).is_file() for m in manifests)
    assert json.loads(manifests[0].read_text())["generator"]["operator"] == "FleetLiveResponseOperator"
    report = verify(evidence.as_uri(), public_key=key.public_key())
    assert report.ok, report.problems
    assert not [p for p in report.problems if p.kind == "unsigned"]
    manifests[0].write_bytes(manifests[0].read_bytes().replace(b"{", b"{ ", 1))  # same JSON, other bytes
    assert not verify(evidence.as_uri(), public_key=key.public_key()).ok  # the signature covers the exact bytes
    secret_line = private_pem(key).splitlines()[1]
    assert secret_line not in str(dags.xcom(run, "sweep"))


def test_the_sweeps_read_budgets_are_the_connections_read_share_of_mdes(
    simulator_factory: Callable[..., Simulator],
    dags: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from airflow_provider_liveresponse.auth import reset_token_providers
    from airflow_provider_liveresponse.fleet import limiter

    sim = simulator_factory(speed=SPEED, fleet={"devices": 10, "offline_fraction": 0.0})
    conn = sim.connection_dict()
    conn["extra"]["read_share"] = 0.25  # two triggerers and two sweeps on the tenant
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", json.dumps(conn))
    reset_token_providers()
    budgets: list[tuple[int, int]] = []

    class RecordedBudget(limiter.ReadBudget):
        def __init__(self, api: str, per_minute: int, per_hour: int, clock: Callable[[], float]) -> None:
            budgets.append((per_minute, per_hour))
            super().__init__(api, per_minute, per_hour, clock)

    monkeypatch.setattr(limiter, "ReadBudget", RecordedBudget)
    run = dags.run(SWEEP, prelude=PRELUDE)

    assert dags.states(run) == {("sweep", -1): "success"}
    assert budgets == [(100 * int(SPEED) // 4, 1500 * int(SPEED) // 4)]
    assert dags.xcom(run, "sweep")["counts"]["collected"] == 10
    assert (
        "reads of machine actions at most 15000 a minute and 225000 an hour (read_share 0.25 of 60000 and 900000)"
        in capsys.readouterr().out
    )
