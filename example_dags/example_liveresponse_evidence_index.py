"""The data-lake side of the evidence: a JSON Lines index of every stored file, updated when evidence arrives.

What it does
    The transfer (``LiveResponseToObjectStorageOperator`` with ``outlets=[EVIDENCE]``) emits one asset event per
    action, its extra ``{machine_id, host, action_id, manifest, files: [{path, size, sha256}]}``. This DAG is
    scheduled on that asset: for each event it reads the manifest the event names and writes one row per stored
    file (machine, host, action, path, URL, size, SHA-256, MD5, retrieval time, manifest) into
    ``{EVIDENCE_INDEX}`` (JSON Lines; a rerun of the same action replaces its rows, never duplicates them).
    Query it with any JSON Lines reader, for example ``duckdb -c "select * from 'index.jsonl' where host = 'x'"``
    or ``jq 'select(.sha256 == "...")' index.jsonl``.

Before you run it
    - Give the transfer ``outlets=[EVIDENCE]`` (import ``EVIDENCE`` from this file, or declare the same Asset).
    - ``MDE_EVIDENCE_INDEX``: where the index goes (an ObjectStoragePath URL; default
      ``file:///tmp/mde-evidence/index.jsonl``). The index is rewritten whole on each run (object stores do not
      append), so one run at a time (``max_active_runs=1``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

from airflow.sdk import DAG, Asset, ObjectStoragePath, task

EVIDENCE = Asset(name="mde_live_response_evidence", uri=os.environ.get("MDE_EVIDENCE_ASSET", "file:///mde-evidence"))
EVIDENCE_INDEX = os.environ.get("MDE_EVIDENCE_INDEX", "file:///tmp/mde-evidence/index.jsonl")
#: A manifest larger than this is not read (it is untrusted input; ``verify`` reports it).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def index_rows(extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The index rows of one asset event: one per file of the manifest the event names."""
    manifest_path = ObjectStoragePath(str(extra["manifest"]))
    with manifest_path.open("rb") as handle:
        manifest = json.loads(handle.read(MAX_MANIFEST_BYTES))
    return [
        {
            "machine_id": extra["machine_id"],
            "host": extra["host"],
            "action_id": extra["action_id"],
            "path": entry["path"],
            "uri": entry["uri"],
            "size": entry["size"],
            "sha256": entry["sha256"],
            "md5": entry["md5"],
            "retrieved_at": entry["retrieved_at"],
            "manifest": str(extra["manifest"]),
        }
        for entry in manifest["files"]
    ]


def update_index(extras: list[dict[str, Any]], index: str = EVIDENCE_INDEX) -> int:
    """Merge the rows of these events into the JSON Lines index at ``index``; the number of rows written."""
    path = ObjectStoragePath(index)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if path.exists():
        with path.open("r") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    rows[(row["action_id"], row["path"])] = row
    for extra in extras:
        for row in index_rows(extra):
            rows[(row["action_id"], row["path"])] = row
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for key in sorted(rows):
            handle.write(json.dumps(rows[key], sort_keys=True) + "\n")
    return len(rows)


with DAG(
    "example_liveresponse_evidence_index",
    schedule=[EVIDENCE],
    start_date=dt.datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mde", "live-response", "evidence"],
    doc_md=__doc__,
) as dag:

    @task
    def index_evidence(**context: Any) -> int:
        """Add the files of every triggering event's manifest to the index."""
        events = context.get("triggering_asset_events") or {}
        extras = [dict(event.extra) for asset_events in events.values() for event in asset_events]
        return update_index(extras)

    index_evidence()
