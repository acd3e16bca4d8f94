"""The per-device outcome of a sweep: one short row per device (ids and reasons, never links or tokens), a table
for the log, and a small summary with counts for XCom."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

#: Every outcome a device can end a sweep with.
COLLECTED = "collected"
FAILED = "failed"
OFFLINE = "offline"
SKIPPED = "skipped"
UNRESOLVED = "unresolved"
AMBIGUOUS = "ambiguous"
OUTCOMES = (COLLECTED, FAILED, OFFLINE, SKIPPED, UNRESOLVED, AMBIGUOUS)


@dataclass(frozen=True)
class DeviceOutcome:
    """How one device (or one name that found no single device) ended the sweep."""

    target: str
    outcome: str
    reason: str = ""
    machine_id: str | None = None
    action_id: str | None = None

    def row(self) -> dict[str, Any]:
        """The XCom row: only what is set."""
        row: dict[str, Any] = {"target": self.target, "outcome": self.outcome}
        for key in ("reason", "machine_id", "action_id"):
            value = getattr(self, key)
            if value:
                row[key] = value
        return row


class OutcomeTable:
    """The outcomes of a sweep, one per target (a later outcome of the same target replaces the earlier one)."""

    def __init__(self) -> None:
        self.rows: dict[str, DeviceOutcome] = {}

    def record(self, outcome: DeviceOutcome) -> None:
        """Record (or replace) a target's outcome."""
        self.rows[outcome.target] = outcome

    def counts(self) -> dict[str, int]:
        """How many targets ended with each outcome (every outcome listed, zeros included)."""
        counted = Counter(row.outcome for row in self.rows.values())
        return {name: counted.get(name, 0) for name in OUTCOMES}

    def table(self) -> str:
        """The outcome table for the task log: a line per target, sorted by outcome then target."""
        order = {name: index for index, name in enumerate(OUTCOMES)}
        lines = [f"{'target':<40} {'outcome':<10} {'action':<36} reason"]
        for row in sorted(self.rows.values(), key=lambda r: (order.get(r.outcome, 99), r.target)):
            lines.append(f"{row.target:<40} {row.outcome:<10} {row.action_id or '-':<36} {row.reason}")
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """The task's return value: counts and every row."""
        return {"counts": self.counts(), "devices": [row.row() for row in self.rows.values()]}


__all__ = [
    "AMBIGUOUS",
    "COLLECTED",
    "FAILED",
    "OFFLINE",
    "OUTCOMES",
    "SKIPPED",
    "UNRESOLVED",
    "DeviceOutcome",
    "OutcomeTable",
]
