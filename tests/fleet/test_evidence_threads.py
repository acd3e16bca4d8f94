"""The evidence threads: each finished action stored once by a thread of its own store, outcomes handed back to
the sweep's loop, a store that raises reported as a short reason, and ``full`` holding the sweep's submissions."""

from __future__ import annotations

import threading
from typing import Any

from airflow_provider_liveresponse.fleet.evidence import BackgroundStores
from airflow_provider_liveresponse.models import Machine, MachineAction


class FakeStore:
    """Records what it stored, on which thread; raises for one action, refuses another."""

    def __init__(self, log: list[tuple[str, str]], gate: threading.Event) -> None:
        self.log = log
        self.gate = gate

    def store(self, machine: Machine, action: MachineAction) -> str | None:
        self.gate.wait(10)
        self.log.append((action.id, threading.current_thread().name))
        if action.id.endswith("-boom"):
            raise OSError("disk full at /secret/path")
        return "evidence not stored: refused" if action.id.endswith("-no") else None


def machine(n: int) -> Machine:
    return Machine.model_validate({"id": f"{n:040x}", "computerDnsName": f"ws-{n}.contoso.local"})


def action(name: str) -> MachineAction:
    return MachineAction.model_validate({"id": name, "type": "LiveResponse", "status": "Succeeded"})


def test_each_action_is_stored_once_off_the_loop_and_handed_back() -> None:
    log: list[tuple[str, str]] = []
    gate = threading.Event()
    made: list[str] = []

    def make() -> Any:
        made.append(threading.current_thread().name)
        return FakeStore(log, gate)

    stores = BackgroundStores(make, workers=2, backlog=3)
    names = ["a-ok", "b-no", "c-boom", "d-ok"]
    for n, name in enumerate(names):
        stores.put(machine(n), action(name))
    assert stores.pending == 4
    assert stores.full  # 3 or more wait: the sweep submits no more
    assert made == [threading.current_thread().name] * 2  # the stores (and their hooks) are made on the caller's thread
    gate.set()
    stores.close()

    done = {a.id: problem for _, a, problem in stores.done()}
    assert done == {
        "a-ok": None,
        "b-no": "evidence not stored: refused",
        "c-boom": "evidence not stored: OSError",  # the type only: an error's text may name paths or links
        "d-ok": None,
    }
    assert sorted(a for a, _ in log) == sorted(names)
    assert {thread for _, thread in log} <= {"fleet-evidence-0", "fleet-evidence-1"}
    assert (stores.pending, stores.stored, stores.full) == (0, 2, False)
