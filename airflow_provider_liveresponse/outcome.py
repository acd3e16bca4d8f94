"""How a task ends once its machine action has: the one completion path of LiveResponseOperator and
MachineActionSensor.

Both read an ended action the same way, from a poll or from a :class:`~airflow_provider_liveresponse.triggers.
machine_action.MachineActionTrigger` event: a success returns the action's summary for XCom; anything else fails
with one message naming the action, the machine, each failed command, the commands not run, each RunScript's
non-zero exit code with its first error line, and what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook
    from airflow_provider_liveresponse.models import MachineAction

#: The statuses a MachineActionTrigger event carries.
EVENT_STATUSES = ("success", "error", "timeout")
#: Characters of a script's first error line quoted in a failure message.
FIRST_ERROR_CHARS = 300


def action_from_event(event: Any, task_id: str) -> MachineAction:
    """The ended action a trigger event carries; a timeout event raises :class:`TimeoutError`, an error event
    without an action (the wait itself failed) and a malformed event raise :class:`LiveResponseError`."""
    from airflow_provider_liveresponse.exceptions import LiveResponseError
    from airflow_provider_liveresponse.models import MachineAction

    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise LiveResponseError(f"Task {task_id}: the trigger sent an unexpected event {event!r}")
    if event["status"] == "timeout":
        raise TimeoutError(event.get("message"))
    if event.get("action") is None:
        raise LiveResponseError(event.get("message"))
    try:
        return MachineAction.model_validate(event["action"])
    except ValueError:
        raise LiveResponseError(f"Task {task_id}: the trigger's event holds no readable action {event!r}") from None


def script_failures(hook: LiveResponseHook, action: MachineAction) -> list[str]:
    """Exit codes and first error lines of the action's completed RunScript commands that exited non-zero."""
    lines = []
    for command in action.commands:
        if command.type != "RunScript" or str(command.command_status) != "Completed":
            continue
        try:
            transcript = hook.get_script_transcript(action.id, command.index)
        except Exception as exc:  # the message is still useful without the transcript
            lines.append(f"transcript of command {command.index} unavailable ({type(exc).__name__})")
            continue
        if transcript.exit_code not in (0, None):
            first_error = (transcript.script_errors.strip().splitlines() or [""])[0][:FIRST_ERROR_CHARS]
            lines.append(
                f"script {command.command.target} (command {command.index}) exited {transcript.exit_code}"
                + (f": {first_error}" if first_error else "")
            )
    return lines


def finish(hook: LiveResponseHook, action: MachineAction, task_log: logging.Logger | Any) -> dict[str, Any]:
    """The ended action's summary (for XCom) when it succeeded; otherwise :class:`LiveResponseError` describing
    it, script failures included."""
    from airflow_provider_liveresponse.exceptions import LiveResponseError
    from airflow_provider_liveresponse.models import describe_outcome

    status, message = describe_outcome(action)
    if status == "success":
        task_log.info("%s", message)
        return action.summary()
    _, message = describe_outcome(action, details=script_failures(hook, action))
    raise LiveResponseError(message)


__all__ = ["EVENT_STATUSES", "action_from_event", "finish", "script_failures"]
