"""Fixtures of the verify tests: the transfer tests' simulator connection, finished actions, the operator run
directly, and the real S3 (SeaweedFS) and Azure Blob (Azurite) servers, imported from tests/transfers."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/transfers/conftest.py imports its helpers as top-level modules (pytest puts that folder on sys.path when
# it collects it): make them importable when only this folder is collected.
_TRANSFERS = str(Path(__file__).resolve().parents[1] / "transfers")
if _TRANSFERS not in sys.path:
    sys.path.insert(0, _TRANSFERS)

from tests.transfers.conftest import (  # noqa: E402
    actions,
    azure_conn,
    azurite,
    s3_conn,
    seaweedfs,
    sim_conn,
    transfer,
)

__all__ = ["actions", "azure_conn", "azurite", "s3_conn", "seaweedfs", "sim_conn", "transfer"]
