"""Fixtures of the verify tests: the transfer tests' simulator connection, finished actions, the operator run
directly, and the real S3 (SeaweedFS) and Azure Blob (Azurite) servers, imported from tests/transfers."""

from __future__ import annotations

from tests.transfers.conftest import (
    actions,
    azure_conn,
    azurite,
    s3_conn,
    seaweedfs,
    sim_conn,
    transfer,
)

__all__ = ["actions", "azure_conn", "azurite", "s3_conn", "seaweedfs", "sim_conn", "transfer"]
