"""Each device's state rebuilt from the sweep's own actions: done, reattach, failed (never rerun), or submit again
after the sweep's own pickup cancel while waves remain; other sweeps' and tasks' actions are ignored."""

from __future__ import annotations

import pytest

from airflow_provider_liveresponse.fleet.ledger import Next, device_marker, marker_wave, rebuild
from airflow_provider_liveresponse.markers import marked_comment, task_marker
from airflow_provider_liveresponse.models import MachineAction

SWEEP = task_marker("fleet", "run-1", "sweep", None)
DEVICE = "a" * 40


def action(status: str, wave: int, *, machine_id: str = DEVICE, marker: str = SWEEP, n: int = 1) -> MachineAction:
    comment = marked_comment("triage", device_marker(marker, machine_id, wave))
    wire = {"id": f"act-{wave}-{n}-{status}", "status": status, "machineId": machine_id, "requestorComment": comment}
    return MachineAction.model_validate(wire)


def test_a_device_marker_names_the_sweep_the_device_and_the_wave() -> None:
    marker = device_marker(SWEEP, DEVICE.upper(), 2)

    assert marker == f"{SWEEP}.aaaaaaaaaaaa.2"
    assert marker_wave(marked_comment("x", marker), SWEEP) == 2
    assert marker_wave(marked_comment("x", marker), task_marker("fleet", "run-2", "sweep", None)) is None


@pytest.mark.parametrize(
    ("statuses", "verdict"),
    [
        (["Succeeded"], Next.DONE),
        (["Cancelled", "Succeeded"], Next.DONE),
        (["Pending"], Next.REATTACH),
        (["Cancelled", "InProgress"], Next.REATTACH),
        (["Failed"], Next.FAILED),
        (["TimeOut"], Next.FAILED),
        (["Cancelled"], Next.SUBMIT),
    ],
)
def test_what_a_retry_does_with_each_device(statuses: list[str], verdict: Next) -> None:
    states = rebuild([action(status, wave) for wave, status in enumerate(statuses, 1)], SWEEP)

    assert states[DEVICE].next(max_waves=2)[0] is verdict


def test_a_device_cancelled_in_every_wave_is_not_submitted_again() -> None:
    states = rebuild([action("Cancelled", 1), action("Cancelled", 2)], SWEEP)

    assert states[DEVICE].next(max_waves=2)[0] is Next.DONE
    assert states[DEVICE].waves == 2


def test_actions_of_other_sweeps_and_unmarked_actions_are_ignored() -> None:
    other = action("Succeeded", 1, marker=task_marker("fleet", "run-0", "sweep", None))
    unmarked = MachineAction.model_validate({"id": "act-x", "status": "Pending", "machineId": DEVICE})

    assert rebuild([other, unmarked], SWEEP) == {}
