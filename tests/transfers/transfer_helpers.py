"""Helpers of the transfer tests: finished simulator actions, the operator run directly, DAG runs, digests, a fake
clock and a logger that keeps its lines."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

import requests

from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
from airflow_provider_liveresponse.simulator.fleet import device_id
from airflow_provider_liveresponse.transfers.live_response_to_object_storage import (
    LiveResponseToObjectStorageOperator,
)

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_liveresponse.models import Command
    from airflow_provider_liveresponse.simulator import Simulator
    from tests.dag_runner import DagRunner

WS1 = device_id("ws-0001.contoso.local")
SCOPE = "https://api.securitycenter.microsoft.com/.default"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def sim_sleep(sim: Simulator) -> Any:
    """A sleep that advances the simulated clock instead of waiting for real."""

    def sleep(seconds: float) -> None:
        sim.clock.advance(seconds * sim.clock.speed)

    return sleep


class FakeClock:
    """A monotonic clock that moves only when the test moves it (``clock.now += seconds``)."""

    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class LogLines:
    """A logger that keeps the lines it is given (``info`` and ``warning``), formatted."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)

    warning = info


class Actions:
    """Runs live-response actions on the simulator to their end."""

    def __init__(self, sim: Simulator, conn_id: str) -> None:
        self.sim = sim
        self.hook = LiveResponseHook(conn_id, sleep=sim_sleep(sim))

    def finish(self, commands: list[Command], machine_id: str = WS1) -> str:
        """Submit ``commands`` through the hook and advance the simulated clock until the action ends."""
        action = self.hook.run_live_response(machine_id, commands, comment="transfer test")
        return self.wait(action.id)

    def finish_raw(self, commands: list[dict[str, Any]], machine_id: str = WS1) -> str:
        """Submit wire commands straight to the API, bypassing the client's validation (as a portal user or
        another tool could), then wait for the action to end."""
        token = requests.post(
            f"{self.sim.authority_url}/{self.sim.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.sim.client_id,
                "client_secret": self.sim.client_secret,
                "scope": SCOPE,
            },
            verify=str(self.sim.ca_file),
            timeout=30,
        ).json()["access_token"]
        response = requests.post(
            f"{self.sim.api_url}/api/machines/{machine_id}/runliveresponse",
            json={"Commands": commands, "Comment": "raw transfer test"},
            headers={"Authorization": f"Bearer {token}"},
            verify=str(self.sim.ca_file),
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return self.wait(response.json()["id"])

    def wait(self, action_id: str) -> str:
        action = self.hook.get_machine_action(action_id)
        for _ in range(5000):
            if action.is_terminal:
                return action_id
            self.sim.clock.advance(60)
            action = self.hook.get_machine_action(action_id)
        raise AssertionError(f"action {action_id} never ended")


class RecordingTaskInstance:
    """Takes the operator's XCom pushes when it runs outside a DAG run."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class Transfer:
    """Runs LiveResponseToObjectStorageOperator.execute directly (the DAG tests run it in real DAG runs)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.ti = RecordingTaskInstance()

    def operator(self, **kwargs: Any) -> LiveResponseToObjectStorageOperator:
        kwargs.setdefault("task_id", f"copy_{uuid.uuid4().hex[:8]}")
        return LiveResponseToObjectStorageOperator(**kwargs)

    def run(self, **kwargs: Any) -> dict[str, Any]:
        self.ti = RecordingTaskInstance()
        return self.operator(**kwargs).execute({"ti": self.ti})  # type: ignore[arg-type]


def collect_and_store(dags: DagRunner, evidence: Path, asset: tuple[str, str] | None = None) -> Any:
    """A real DAG run (dag.test): ``collect`` triages ws-0001 (RunScript triage.ps1, GetFile the zip it wrote) and
    ``store`` stores its results under ``evidence``, with ``Asset(name, uri)`` as its outlet when ``asset`` is
    given. Both tasks must succeed; returns the run."""
    outlets = f"outlets=[Asset(name={asset[0]!r}, uri={asset[1]!r})]," if asset else ""
    run = dags.run(
        f"""
        collect = LiveResponseOperator(
            task_id="collect",
            computer_dns_name="ws-0001.contoso.local",
            commands=[RunScript("triage.ps1"), GetFile(r"C:\\Windows\\Temp\\triage.zip")],
            poll_interval=0.2,
            deferrable=False,
        )
        store = LiveResponseToObjectStorageOperator(
            task_id="store",
            action_id="{{{{ ti.xcom_pull(task_ids='collect', key='action_id') }}}}",
            destination={evidence.as_uri()!r},
            {outlets}
        )
        collect >> store
        """,
        prelude="from airflow.sdk import Asset\n",
    )
    assert dags.states(run) == {("collect", -1): "success", ("store", -1): "success"}
    return run
