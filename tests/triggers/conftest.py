"""Fixtures of the trigger tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.triggers.supervisor_channel import Supervisor, install

if TYPE_CHECKING:
    from collections.abc import Callable


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> Callable[[Supervisor | None], Supervisor | None]:
    """Installs a :class:`~tests.triggers.supervisor_channel.Supervisor` (or none) as ``SUPERVISOR_COMMS``."""
    return lambda channel: install(monkeypatch, channel)
