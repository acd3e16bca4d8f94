"""The action workflow of the sync hook: submit once or reattach, and wait for an action to end.

Mixed into :class:`~airflow_provider_liveresponse.hooks.live_response.LiveResponseHook`, so that operators read as
"submit, record, wait or defer" (as Azure Data Factory's hook owns ``wait_for_pipeline_run_status``). It builds only
on the hook's public calls (``run_live_response``, ``find_actions_by_marker``, ``get_machine_action``, ...).
"""

from __future__ import annotations


class ActionWorkflowMixin:
    """Submit-once-or-reattach and wait, on top of the hook's public calls."""
