"""The blob host names any collected file in Content-Disposition, whatever characters its device path holds."""

from __future__ import annotations

import gzip
from typing import TYPE_CHECKING

import pytest

from airflow_provider_liveresponse.simulator.blobs import content_disposition
from airflow_provider_liveresponse.simulator.fleet import device_id
from tests.simulator.sim_helpers import SimClient, get_file

if TYPE_CHECKING:
    from airflow_provider_liveresponse.simulator.server import Simulator

WS1 = device_id("ws-0001.contoso.local")


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("memory.dmp.gz", 'attachment; filename="memory.dmp.gz"'),
        (
            "Доклад 📄.docx.gz",
            "attachment; filename=\"______ _.docx.gz\"; filename*=UTF-8''"
            "%D0%94%D0%BE%D0%BA%D0%BB%D0%B0%D0%B4%20%F0%9F%93%84.docx.gz",
        ),
        ('a"b.gz', "attachment; filename=\"a_b.gz\"; filename*=UTF-8''a%22b.gz"),
    ],
)
def test_content_disposition_falls_back_to_ascii_and_keeps_the_exact_name(name: str, header: str) -> None:
    assert content_disposition(name) == header
    header.encode("latin-1")


def test_a_file_with_a_unicode_name_is_served(simulator: Simulator, mde: SimClient) -> None:
    path = "C:\\Users\\Zoë\\Доклад.docx"
    simulator.state.add_device_file(WS1, path, 1000)
    action_id = mde.start(WS1, get_file(path))
    simulator.state.advance_clock(300)
    link = mde.link(action_id, 0).json()["value"]

    response = mde.blob(link)

    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith('attachment; filename="______.docx.gz"; filename*=')
    assert len(gzip.decompress(response.content)) == 1000
