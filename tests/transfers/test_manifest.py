"""The manifest model: the operator's manifest.json read and written back byte for byte, its JSON shape pinned,
what is not a manifest refused, every field described."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING

import pydantic
import pytest

from airflow_provider_liveresponse.models import GetFile, RunScript
from airflow_provider_liveresponse.transfers.manifest import (
    MANIFEST_NAME,
    ActionRecord,
    BlobRecord,
    CommandRecord,
    ContentRecord,
    FileEntry,
    Generator,
    Manifest,
    StoredObject,
    TransferRecord,
)
from tests.transfers.transfer_helpers import WS1

if TYPE_CHECKING:
    from pathlib import Path

    from tests.transfers.transfer_helpers import Actions, Transfer

SHA_A, MD5_A = "a" * 64, "a" * 32
SHA_B, MD5_B = "b" * 64, "b" * 32

#: A manifest as the operator writes it: a transcript (exit_code last) and a file kept compressed without
#: content digests (content null, no exit_code), every optional value null.
SAMPLE = textwrap.dedent(
    f"""\
    {{
      "manifest_version": 1,
      "generator": {{
        "package": "airflow-provider-liveresponse",
        "version": "1.2.3",
        "operator": "LiveResponseToObjectStorageOperator"
      }},
      "written_at": "2024-05-01T10:00:05.123456+00:00",
      "location": "s3://evidence_conn@bucket/cases/{WS1}/7c1d4ea0-5b0e-4a34-9d2e-000000000001",
      "keep_compressed": true,
      "action": {{
        "id": "7c1d4ea0-5b0e-4a34-9d2e-000000000001",
        "status": "Succeeded",
        "machine_id": "{WS1}",
        "computer_dns_name": null,
        "requestor": "analyst@contoso.com",
        "requestor_comment": "Case 4711 for Zoë",
        "creation_date_time_utc": "2024-05-01T09:58:00+00:00",
        "last_update_date_time_utc": null
      }},
      "files": [
        {{
          "path": "0_triage.ps1.transcript.json",
          "uri": "s3://evidence_conn@bucket/cases/0_triage.ps1.transcript.json",
          "size": 120,
          "sha256": "{SHA_A}",
          "md5": "{MD5_A}",
          "stored_form": "transcript",
          "outcome": "stored",
          "retrieved_at": "2024-05-01T10:00:01.000001+00:00",
          "command": {{
            "index": 0,
            "type": "RunScript",
            "device_path": null,
            "script_name": "triage.ps1",
            "script_args": null,
            "status": "Completed",
            "start_time": "2024-05-01T09:58:10+00:00",
            "end_time": null
          }},
          "blob": {{
            "file_name": null,
            "content_type": "application/json",
            "compression": "none",
            "size": 120,
            "sha256": "{SHA_A}",
            "md5": "{MD5_A}"
          }},
          "content": {{
            "size": 120,
            "sha256": "{SHA_A}",
            "md5": "{MD5_A}"
          }},
          "transfer": {{
            "links_requested": 1,
            "resumes": 0
          }},
          "exit_code": null
        }},
        {{
          "path": "1_triage.zip.gz",
          "uri": "s3://evidence_conn@bucket/cases/1_triage.zip.gz",
          "size": 0,
          "sha256": "{SHA_B}",
          "md5": "{MD5_B}",
          "stored_form": "compressed",
          "outcome": "already_present",
          "retrieved_at": "2024-04-30T08:00:00+00:00",
          "command": {{
            "index": 1,
            "type": "GetFile",
            "device_path": "C:\\\\Windows\\\\Temp\\\\triage.zip",
            "script_name": null,
            "script_args": null,
            "status": "Completed",
            "start_time": null,
            "end_time": null
          }},
          "blob": {{
            "file_name": "triage.zip.gz",
            "content_type": null,
            "compression": "gzip",
            "size": 0,
            "sha256": "{SHA_B}",
            "md5": "{MD5_B}"
          }},
          "content": null,
          "transfer": {{
            "links_requested": 2,
            "resumes": 3
          }}
        }}
      ]
    }}
    """
).encode()


def test_the_json_shape_is_written_back_byte_for_byte() -> None:
    manifest = Manifest.from_bytes(SAMPLE)
    assert manifest.to_bytes() == SAMPLE
    assert manifest.to_json_dict() == json.loads(SAMPLE)


def test_stored_objects_lists_each_path_size_and_sha256() -> None:
    manifest = Manifest.from_bytes(SAMPLE)
    assert manifest.stored_objects() == [
        StoredObject("0_triage.ps1.transcript.json", 120, SHA_A),
        StoredObject("1_triage.zip.gz", 0, SHA_B),
    ]
    entry = manifest.entry("1_triage.zip.gz")
    assert entry is not None
    assert entry.content is None
    assert entry.transfer.resumes == 3
    assert entry.retrieved_at.isoformat() == "2024-04-30T08:00:00+00:00"
    assert manifest.entry("missing") is None


def test_exit_code_is_written_for_transcripts_only() -> None:
    manifest = Manifest.from_bytes(SAMPLE)
    transcript, collected = manifest.files
    assert "exit_code" in transcript.model_dump(mode="json")
    assert "exit_code" not in collected.model_dump(mode="json")


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda m: m.update(manifest_version=2), "manifest_version"),
        (lambda m: m["files"][0].update(sha256="not-a-digest"), "files.0.sha256"),
        (lambda m: m["files"][1].update(size=-1), "files.1.size"),
        (lambda m: m["files"][1].update(stored_form="zipped"), "files.1.stored_form"),
        (lambda m: m["files"][1].pop("blob"), "files.1.blob"),
        (lambda m: m["action"].update(colour="red"), "action.colour"),
    ],
)
def test_what_is_not_a_manifest_is_refused_naming_the_field(change: object, complaint: str) -> None:
    data = json.loads(SAMPLE)
    change(data)  # type: ignore[operator]
    with pytest.raises(pydantic.ValidationError, match=complaint.replace(".", r"\.")):
        Manifest.from_bytes(json.dumps(data))


@pytest.mark.parametrize(
    "model",
    [Manifest, Generator, ActionRecord, FileEntry, CommandRecord, BlobRecord, ContentRecord, TransferRecord],
)
def test_every_field_says_what_it_means(model: type[pydantic.BaseModel]) -> None:
    assert model.__doc__
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no docstring"


@pytest.mark.parametrize("kwargs", [{}, {"keep_compressed": True, "content_digests": False}])
def test_a_manifest_written_by_the_operator_round_trips_through_the_model(
    actions: Actions, transfer: Transfer, tmp_path: Path, kwargs: dict[str, bool]
) -> None:
    action_id = actions.finish(
        [RunScript("triage.ps1"), GetFile(r"C:\Windows\Temp\triage.zip"), GetFile(r"C:\Windows\Temp\empty.txt")]
    )
    returned = transfer.run(action_id=action_id, destination=tmp_path.as_uri(), **kwargs)
    raw = (tmp_path / WS1 / action_id / MANIFEST_NAME).read_bytes()

    manifest = Manifest.from_bytes(raw)
    assert manifest.to_bytes() == raw
    assert manifest.to_json_dict() == returned
    assert [stored.path for stored in manifest.stored_objects()] == [f["path"] for f in returned["files"]]
    for stored in manifest.stored_objects():
        assert (tmp_path / WS1 / action_id / stored.path).stat().st_size == stored.size
