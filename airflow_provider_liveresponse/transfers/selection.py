"""Which commands of a finished action to copy: the chosen indexes, or every command with a result; an error naming
the caller when the action is not finished or a chosen command has no result."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_liveresponse.exceptions import LiveResponseError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_liveresponse.models import ActionCommand, MachineAction

__all__ = ["select_commands"]


def select_commands(action: MachineAction, indexes: Sequence[int] | None, owner: str) -> list[ActionCommand]:
    """The commands of the finished ``action`` to copy: ``indexes``, or every command with a result; an error
    (prefixed with ``owner``) when the action is not finished or a chosen command has no result."""
    where = f"action {action.id} on machine {action.machine_id} ({action.computer_dns_name or 'unknown host'})"
    if not action.is_terminal:
        raise LiveResponseError(
            f"{owner}: {where} is still {action.status}; its results are not final. What to do: "
            "run this task after LiveResponseOperator (wait_for_completion=True) or MachineActionSensor"
        )
    by_index = {c.index: c for c in action.commands}
    if indexes is None:
        chosen = [c for c in action.commands if c.has_result]
        if not chosen:
            listed = ", ".join(f"{c.index} ({c.type} {c.command.target}: {c.command_status})" for c in action.commands)
            raise LiveResponseError(
                f"{owner}: {where} ended {action.status} with no command result to copy "
                f"(commands: {listed or 'none'}). What to do: check the commands' errors in the Defender portal"
            )
        return sorted(chosen, key=lambda c: c.index)
    chosen = []
    for index in indexes:
        command = by_index.get(index)
        if command is None:
            raise LiveResponseError(
                f"{owner}: command_indexes names {index}, but {where} has commands "
                f"{sorted(by_index)}. What to do: fix command_indexes"
            )
        if not command.has_result:
            raise LiveResponseError(
                f"{owner}: command {index} ({command.type} {command.command.target}) of {where} has "
                f"no result (status {command.command_status}; errors: {'; '.join(command.errors) or 'none'}). "
                "Only completed GetFile and RunScript commands have one. What to do: leave it out of "
                "command_indexes"
            )
        chosen.append(command)
    return chosen
