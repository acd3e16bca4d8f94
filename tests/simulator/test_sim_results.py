"""Result links and the blob host: signatures, expiry, Range, digests, gzip, transcripts."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import zlib
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from airflow_provider_liveresponse.simulator.fleet import device_id
from tests.simulator.sim_helpers import TRIAGE_ZIP, SimClient, get_file, run_script

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator

WS1 = device_id("ws-0001.contoso.local")
MEMORY_DMP = "C:\\Windows\\Temp\\memory.dmp"


def _collect(simulator: Simulator, mde: SimClient, *commands: dict[str, object]) -> str:
    action_id = mde.start(WS1, *commands)
    simulator.state.advance_clock(300)
    assert mde.action(action_id)["status"] == "Succeeded"
    return action_id


def _link(mde: SimClient, action_id: str, index: int) -> str:
    response = mde.link(action_id, index)
    assert response.status_code == 200, response.text
    return str(response.json()["value"])


def test_a_getfile_result_is_served_gzipped_with_its_digests(simulator: Simulator, mde: SimClient) -> None:
    action_id = _collect(simulator, mde, get_file(MEMORY_DMP))

    response = mde.blob(_link(mde, action_id, 0))
    expected = simulator.state.result_digest(action_id, 0)

    assert response.status_code == 200
    body = response.content
    assert len(body) == int(response.headers["Content-Length"]) == expected["compressed"]["size"]
    assert hashlib.sha256(body).hexdigest() == expected["compressed"]["sha256"]
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    assert response.headers["Content-MD5"] == md5 == response.headers["x-ms-blob-content-md5"]
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == 'attachment; filename="memory.dmp.gz"'
    assert response.headers["Accept-Ranges"] == "bytes"
    raw = gzip.decompress(body)
    assert len(raw) == expected["raw"]["size"] == 32 * 1024 * 1024
    assert hashlib.sha256(raw).hexdigest() == expected["raw"]["sha256"]
    # Semi-compressible: neither random nor trivially compressible.
    assert 0.1 < len(body) / len(raw) < 0.8


def test_range_reads_reassemble_the_blob(simulator: Simulator, mde: SimClient) -> None:
    action_id = _collect(simulator, mde, run_script("triage.ps1"), get_file(TRIAGE_ZIP))
    url = _link(mde, action_id, 1)
    size = simulator.state.result_digest(action_id, 1)["compressed"]["size"]

    parts = []
    for first in range(0, size, 200_000):
        last = min(first + 199_999, size - 1)
        part = mde.blob(url, headers={"Range": f"bytes={first}-{last}"})
        assert part.status_code == 206
        assert part.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert int(part.headers["Content-Length"]) == last - first + 1
        assert "Content-MD5" not in part.headers
        parts.append(part.content)

    blob = b"".join(parts)
    assert hashlib.sha256(blob).hexdigest() == simulator.state.result_digest(action_id, 1)["compressed"]["sha256"]
    assert base64.b64encode(hashlib.md5(blob).digest()).decode() == part.headers["x-ms-blob-content-md5"]


def test_open_and_suffix_ranges_and_unsatisfiable_ranges(simulator: Simulator, mde: SimClient) -> None:
    action_id = _collect(simulator, mde, get_file("C:\\Windows\\System32\\drivers\\etc\\hosts"))
    url = _link(mde, action_id, 0)
    full = mde.blob(url).content

    tail = mde.blob(url, headers={"Range": "bytes=10-"})
    suffix = mde.blob(url, headers={"Range": "bytes=-5"})
    beyond = mde.blob(url, headers={"Range": f"bytes={len(full)}-"})

    assert tail.status_code == 206
    assert tail.content == full[10:]
    assert suffix.content == full[-5:]
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(full)}"


def test_the_same_file_gives_the_same_bytes(simulator: Simulator, mde: SimClient) -> None:
    first = _collect(simulator, mde, get_file("C:\\Temp\\sim-size-5000.bin"))
    second = _collect(simulator, mde, get_file("c:\\temp\\SIM-SIZE-5000.BIN"))
    other_size = _collect(simulator, mde, get_file("C:\\Temp\\sim-size-5001.bin"))

    digest = simulator.state.result_digest
    assert digest(first, 0)["raw"] == digest(second, 0)["raw"]
    assert digest(first, 0)["raw"]["size"] == 5000
    assert digest(other_size, 0)["raw"]["size"] == 5001


def test_an_empty_file_is_an_empty_gzip(simulator: Simulator, mde: SimClient) -> None:
    action_id = _collect(simulator, mde, get_file("C:\\Windows\\Temp\\empty.txt"))

    body = mde.blob(_link(mde, action_id, 0)).content

    assert gzip.decompress(body) == b""


def test_large_results_are_generated_as_a_stream(simulator: Simulator, mde: SimClient) -> None:
    size = 128 * 1024 * 1024
    action_id = _collect(simulator, mde, get_file(f"C:\\Temp\\sim-size-{size}.bin"))

    expected = simulator.state.result_digest(action_id, 0)
    head = mde.blob(_link(mde, action_id, 0), headers={"Range": "bytes=0-65535"})

    assert expected["raw"]["size"] == size
    assert (simulator.state.state_dir / "blobs").is_dir()
    assert zlib.decompressobj(31).decompress(head.content)[:6] == b"block "


def test_a_runscript_result_is_the_json_transcript(simulator: Simulator, mde: SimClient) -> None:
    action_id = _collect(simulator, mde, run_script("minidump.ps1", "lsass"))

    response = mde.blob(_link(mde, action_id, 0))
    transcript = response.json()

    assert response.headers["Content-Type"] == "application/json"
    assert transcript["script_name"] == "minidump.ps1"
    assert transcript["exit_code"] == 0
    assert "\x00" in transcript["script_output"]
    assert "script_errors" in transcript
    assert simulator.state.result_digest(action_id, 0)["raw"]["sha256"] == hashlib.sha256(response.content).hexdigest()


def test_a_failed_script_still_has_its_transcript(simulator: Simulator, mde: SimClient) -> None:
    action_id = mde.start(WS1, run_script("fail.ps1"))
    simulator.state.advance_clock(60)

    transcript = mde.blob(_link(mde, action_id, 0)).json()

    assert transcript["exit_code"] == 1
    assert transcript["script_errors"]


def test_a_link_expires_after_thirty_simulated_minutes(simulator: Simulator, mde: SimClient) -> None:
    action_id = _collect(simulator, mde, get_file("C:\\Windows\\Temp\\empty.txt"))
    url = _link(mde, action_id, 0)
    simulator.state.advance_clock(29 * 60)
    assert mde.blob(url).status_code == 200

    simulator.state.advance_clock(2 * 60)
    expired = mde.blob(url)

    assert expired.status_code == 403
    assert "<Code>AuthenticationFailed</Code>" in expired.text
    assert expired.headers["x-ms-error-code"] == "AuthenticationFailed"
    assert mde.blob(_link(mde, action_id, 0)).status_code == 200  # a new link works


def test_every_link_handed_out_is_recorded(simulator: Simulator, mde: SimClient) -> None:
    action_id = _collect(simulator, mde, run_script("triage.ps1"), get_file(TRIAGE_ZIP))

    links = [_link(mde, action_id, 0), _link(mde, action_id, 1)]

    assert simulator.state.issued_links == links
    assert all(parse_qs(urlsplit(link).query)["sig"] for link in links)


@pytest.mark.parametrize("tamper", ["signature", "expiry", "missing"])
def test_a_forged_link_is_refused(simulator: Simulator, mde: SimClient, tamper: str) -> None:
    action_id = _collect(simulator, mde, get_file("C:\\Windows\\Temp\\empty.txt"))
    parts = urlsplit(_link(mde, action_id, 0))
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    if tamper == "signature":
        query["sig"] = base64.b64encode(b"x" * 32).decode()
    elif tamper == "expiry":
        query["se"] = "2999-01-01T00:00:00Z"
    else:
        del query["sig"]

    response = mde.blob(f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}")

    assert response.status_code == 403
    assert "AuthenticationFailed" in response.text


def test_the_blob_host_counts_and_refuses_requests_with_authorization(simulator: Simulator, mde: SimClient) -> None:
    action_id = _collect(simulator, mde, get_file("C:\\Windows\\Temp\\empty.txt"))
    url = _link(mde, action_id, 0)
    assert simulator.state.counters["blob_requests_with_authorization"] == 0

    response = mde.blob(url, headers={"Authorization": f"Bearer {mde.token}"})

    assert response.status_code == 401
    assert simulator.state.counters["blob_requests_with_authorization"] == 1


def test_head_gives_the_headers_only(simulator: Simulator, mde: SimClient) -> None:
    action_id = _collect(simulator, mde, get_file(MEMORY_DMP))

    response = mde.session.head(_link(mde, action_id, 0), verify=mde.verify, timeout=10)

    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == simulator.state.result_digest(action_id, 0)["compressed"]["size"]
    assert response.content == b""


def test_the_digest_is_also_served_by_the_control_api(simulator: Simulator, mde: SimClient) -> None:
    action_id = _collect(simulator, mde, get_file("C:\\Windows\\Temp\\empty.txt"))

    response = mde.control("GET", f"/results/{action_id}/0/digest")

    assert response.json() == json.loads(json.dumps(simulator.state.result_digest(action_id, 0)))
