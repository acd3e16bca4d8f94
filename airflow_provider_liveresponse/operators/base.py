"""What every task that calls MDE shares: the parameter names, their defaults and checks, and the hook built from
them (as the Amazon provider's base operator gives every AWS operator ``aws_conn_id`` and one way to build its hook).

The names: ``mde_conn_id``, ``deferrable``, ``poll_interval``, ``timeout``, ``max_retry_wait``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse import validation
from airflow_provider_liveresponse.constants import OFFLINE_QUEUE_SECONDS

if TYPE_CHECKING:
    from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

#: Seconds between status reads.
DEFAULT_POLL_INTERVAL = 30.0
#: Default wait: MDE's 3-day queue for an offline device, plus an hour for the commands themselves.
DEFAULT_TIMEOUT = float(OFFLINE_QUEUE_SECONDS + 3600)
#: Seconds one API call may wait out 429s and transient errors.
DEFAULT_MAX_RETRY_WAIT = 600.0


class LiveResponseHookMixin:
    """``mde_conn_id`` and ``max_retry_wait``, checked one way, and the hook built from them."""

    mde_conn_id: str
    max_retry_wait: float

    def _set_connection(self, mde_conn_id: Any, max_retry_wait: Any) -> None:
        """Check and keep the connection id and the retry budget (as the hook's RetryPolicy checks it)."""
        self.mde_conn_id = validation.conn_id(mde_conn_id)
        self.max_retry_wait = validation.duration(max_retry_wait, "max_retry_wait")

    def _hook(self, *, max_throttle_wait: float | None = None) -> LiveResponseHook:
        """A hook on the task's connection, with its retry budget."""
        from airflow_provider_liveresponse.hooks.live_response import LiveResponseHook

        return LiveResponseHook(
            self.mde_conn_id, max_retry_wait=self.max_retry_wait, max_throttle_wait=max_throttle_wait
        )


__all__ = ["DEFAULT_MAX_RETRY_WAIT", "DEFAULT_POLL_INTERVAL", "DEFAULT_TIMEOUT", "LiveResponseHookMixin"]
