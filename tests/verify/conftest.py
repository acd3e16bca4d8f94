"""Fixtures of the verify tests: the transfer tests' simulator connection, finished actions, the operator run
directly, imported from tests/transfers (the storage servers are tests/conftest.py's)."""

from __future__ import annotations

from tests.transfers.conftest import actions, transfer

__all__ = ["actions", "transfer"]
