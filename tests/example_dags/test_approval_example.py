"""example_liveresponse_approval: a person's answer, given for real through Airflow's REST API (the HITL endpoint,
served in-process by Airflow's own FastAPI app with a JWT of its auth manager) while ``dag.test()`` waits for it
(Airflow 3.3: ``awaiting_input``; 3.1: deferred to the HITL trigger, run inline). Approved: the sweep runs on the
simulator's devices shown in the approval; rejected: the sweep is skipped and MDE gets no action at all."""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_liveresponse.auth import reset_token_providers

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator import Simulator

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
DAG_ID = "example_liveresponse_approval"
HOSTS = ["ws-0031.contoso.local", "ws-0032.contoso.local", "no-such-host.contoso.local"]
#: Real seconds the responder waits for the approval to be asked before it gives up (the test then fails).
ASK_TIMEOUT = 120.0


@pytest.fixture
def sim_env(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", simulator.connection_json())
    monkeypatch.setenv("MDE_POLL_INTERVAL", "0.2")
    reset_token_providers()
    return simulator


def _load() -> Any:
    """Copy the examples into the DAG folder (dag.test runs DAGs Airflow has parsed there) and import this one."""
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    shutil.copytree(EXAMPLES, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    spec = importlib.util.spec_from_file_location(DAG_ID, folder / f"{DAG_ID}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


class Responder(threading.Thread):
    """Answers the run's approval through the REST API once it is asked; keeps what the approver was shown."""

    def __init__(self, option: str) -> None:
        super().__init__(daemon=True)
        self.option = option
        self.asked: dict[str, Any] = {}
        self.answer: dict[str, Any] = {}
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self._respond()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _client(self) -> Any:
        from airflow.api_fastapi.app import create_app, get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from fastapi.testclient import TestClient

        app = create_app(apps="core")
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="approver", role="admin"))
        return TestClient(app, base_url="http://localhost/api/v2", headers={"Authorization": f"Bearer {token}"})

    def _respond(self) -> None:
        client = self._client()
        waited = 0.0
        while not self.done.wait(0.5):
            waited += 0.5
            assert waited < ASK_TIMEOUT, "the approval was never asked"
            listed = client.get(f"/dags/{DAG_ID}/dagRuns/~/hitlDetails")
            assert listed.status_code == 200, listed.text
            pending = [d for d in listed.json()["hitl_details"] if not d["response_received"]]
            if not pending:
                continue
            self.asked = pending[0]
            ti = self.asked["task_instance"]
            path = f"/dags/{DAG_ID}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/-1/hitlDetails"
            answered = client.patch(path, json={"chosen_options": [self.option], "params_input": {}})
            assert answered.status_code == 200, answered.text
            self.answer = answered.json()
            return


@pytest.fixture(autouse=True)
def hitl_trigger_in_dag_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.1 and 3.2 wait for the answer in the HITL trigger, which ``dag.test()`` runs in-process; their
    in-process supervisor does not answer the trigger's one question (``GetHITLDetailResponse``: has the person
    answered?), the triggerer's supervisor does. Teach it that question, answered as the triggerer answers it
    (from the metadata database, through the execution API). Airflow 3.3 waits without a trigger."""
    from airflow.sdk import exceptions
    from airflow.sdk.execution_time import comms, supervisor

    if hasattr(exceptions, "TaskAwaitingInput"):
        return
    from airflow.jobs.triggerer_job_runner import HITLDetailResponseResult

    handle = supervisor.InProcessTestSupervisor._handle_request

    def answer(self: Any, msg: Any, log: Any, req_id: int) -> None:
        if isinstance(msg, comms.GetHITLDetailResponse):
            response = HITLDetailResponseResult.from_api_response(self.client.hitl.get_detail_response(ti_id=msg.ti_id))
            self.send_msg(response, request_id=req_id, error=None)
            return
        handle(self, msg, log, req_id)

    monkeypatch.setattr(supervisor.InProcessTestSupervisor, "_handle_request", answer)


def _run_with_answer(sim: Simulator, option: str, tmp_path: Path) -> tuple[Any, Responder]:
    speed = sim.clock.speed
    conf = {
        "hosts": HOSTS,
        "script": "triage.ps1",
        "args": "-Case IR-77",
        "case": "IR-77",
        "destination": (tmp_path / "evidence").as_uri(),
        "submissions_per_minute": 10 * speed,
        "read_calls_per_minute": int(100 * speed),
        "read_calls_per_hour": int(1500 * speed),
        "pickup_timeout": 900 / speed,
    }
    responder = Responder(option)
    responder.start()
    try:
        run = _load().test(run_conf=conf)
    finally:
        responder.done.set()
        responder.join(timeout=30)
    assert responder.error is None, responder.error
    return run, responder


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_approved_the_sweep_runs_on_the_devices_shown(sim_env: Simulator, airflow_db: Path, tmp_path: Path) -> None:
    run, responder = _run_with_answer(sim_env, "Approve", tmp_path)

    assert _states(run) == {"plan": "success", "approve": "success", "sweep": "success"}
    asked = responder.asked
    assert asked["subject"] == "IR-77: run triage.ps1 on 2 device(s)?"
    assert "`triage.ps1` with arguments `-Case IR-77`" in asked["body"]
    assert "**Devices:** 2" in asked["body"]
    assert "ws-0031.contoso.local" in asked["body"]
    assert "ws-0032.contoso.local" in asked["body"]
    assert "no-such-host.contoso.local" in asked["body"].split("Not found")[1]
    assert responder.answer["chosen_options"] == ["Approve"]
    assert responder.answer["responded_by"]["name"] == "approver"
    actions = list(sim_env.state.actions.values())
    assert sorted(a.machine_id for a in actions) == sorted(_planned_machine_ids(run))
    assert all("IR-77: approved sweep" in a.comment for a in actions)
    assert len(list((tmp_path / "evidence").glob("*/*/manifest.json"))) == 2


def test_rejected_nothing_is_submitted(sim_env: Simulator, airflow_db: Path, tmp_path: Path) -> None:
    run, responder = _run_with_answer(sim_env, "Reject", tmp_path)

    assert _states(run) == {"plan": "success", "approve": "success", "sweep": "skipped"}
    assert responder.answer["chosen_options"] == ["Reject"]
    assert sim_env.state.counters["actions_created"] == 0
    assert sim_env.state.actions == {}
    assert not (tmp_path / "evidence").exists()


def _planned_machine_ids(run: Any) -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.settings import Session

    query = XComModel.get_many(run_id=run.run_id, key="return_value", task_ids="plan", dag_ids=run.dag_id)
    with Session() as session:
        row = session.scalars(query).first()
        assert row is not None
        machine_ids: list[str] = XComModel.deserialize_value(row)["machine_ids"]
    return machine_ids
