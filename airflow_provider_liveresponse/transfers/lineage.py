"""OpenLineage for the transfer: what it read (an action's results in MDE) and what it wrote (the stored objects).

:func:`record` is taken at the end of a successful run from what the run already holds (the hook's connection
settings, the stored action): building it makes no API call and reads no object. :func:`operator_lineage` turns
it into the ``OperatorLineage`` that ``get_openlineage_facets_on_complete`` returns; only it imports the
OpenLineage provider (the ``[openlineage]`` extra), so the transfer imports and runs without it.

Names follow OpenLineage's naming spec (https://openlineage.io/docs/spec/naming):

- inputs: namespace ``mde://<tenant id>``, name ``machineactions/<action id>/commands/<index>``, one per command
  whose result was stored;
- outputs: every stored object, the manifest (and its signature) included: ``s3://<bucket>`` / ``<key>``,
  ``gs://<bucket>`` / ``<key>``, ``abfss://<container>@<account>.dfs.core.windows.net`` / ``<path>``, and
  ``file`` / ``<absolute path>`` for local files (as Airflow's common.io provider names them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_liveresponse.transfers.destination import is_local
from airflow_provider_liveresponse.transfers.manifest import MANIFEST_NAME

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_liveresponse.transfers.collect import StoredAction

#: The signature written beside a signed manifest.
SIGNATURE_NAME = f"{MANIFEST_NAME}.sig"
#: Protocols whose namespace is ``<protocol>://<bucket>`` (the first part of the fsspec path).
_BUCKET_PROTOCOLS = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs"}
_AZURE_PROTOCOLS = frozenset({"abfs", "abfss", "az", "adl"})


@dataclass(frozen=True)
class DatasetName:
    """An OpenLineage dataset's identity."""

    namespace: str
    name: str


@dataclass(frozen=True)
class LineageRecord:
    """What one run read and wrote, as OpenLineage dataset names."""

    inputs: tuple[DatasetName, ...]
    outputs: tuple[DatasetName, ...]


def input_name(tenant_id: str, action_id: str, index: int) -> DatasetName:
    """The dataset of command ``index``'s result of action ``action_id`` in tenant ``tenant_id``."""
    return DatasetName(f"mde://{tenant_id}", f"machineactions/{action_id}/commands/{index}")


def output_name(path: ObjectStoragePath) -> DatasetName:
    """The dataset of a stored object, following OpenLineage's naming for its store."""
    protocol = (path.protocol or "file").lower()
    if is_local(path):
        return DatasetName("file", str(path.path))
    bucket, _, key = str(path.path).lstrip("/").partition("/")
    if protocol in _BUCKET_PROTOCOLS:
        return DatasetName(f"{_BUCKET_PROTOCOLS[protocol]}://{bucket}", key)
    if protocol in _AZURE_PROTOCOLS:
        account = _azure_account(path.fs)
        if account:
            return DatasetName(f"abfss://{bucket}@{account}.dfs.core.windows.net", key)
    return DatasetName(f"{protocol}://{bucket}", key)


def _azure_account(fs: Any) -> str | None:
    """The storage account of an adlfs file system (set directly, or read from its connection string by the
    service client adlfs has already built): attributes, no network call."""
    account = getattr(fs, "account_name", None) or getattr(getattr(fs, "service_client", None), "account_name", None)
    return str(account) if account else None


def record(tenant_id: str, stored: StoredAction) -> LineageRecord:
    """The lineage of ``stored`` (the results of one action, stored by this run) in tenant ``tenant_id``."""
    action_id = stored.manifest.action.id
    indexes = sorted({entry.command.index for entry in stored.manifest.files})
    names = [entry.path for entry in stored.manifest.files] + [MANIFEST_NAME]
    if stored.signed_by is not None:
        names.append(SIGNATURE_NAME)
    return LineageRecord(
        inputs=tuple(input_name(tenant_id, action_id, index) for index in indexes),
        outputs=tuple(output_name(stored.folder.child(name)) for name in names),
    )


def operator_lineage(lineage: LineageRecord | None) -> Any:
    """The ``OperatorLineage`` of ``lineage`` (empty when the run stored nothing); needs the OpenLineage provider."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    if lineage is None:
        return OperatorLineage()
    return OperatorLineage(
        inputs=[Dataset(namespace=item.namespace, name=item.name) for item in lineage.inputs],
        outputs=[Dataset(namespace=item.namespace, name=item.name) for item in lineage.outputs],
    )
