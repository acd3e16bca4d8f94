"""Shared test configuration: an isolated AIRFLOW_HOME and DAG folder, the simulator's fixtures, and the DAG
fixtures the operator and sensor tests share (the simulator as the default connection, a DAG runner, the task's
output).

The environment is set before anything imports Airflow, so a bare ``pytest`` never touches ~/airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_liveresponse.simulator import Simulator
    from tests.dag_runner import DagRunner
    from tests.transfers.storage_servers import AzuriteServer, GcsServer, S3Server

if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-home-")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(os.environ["AIRFLOW_HOME"]) / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

pytest_plugins = ["airflow_provider_liveresponse.simulator.pytest_plugin"]


@pytest.fixture(autouse=True)
def fresh_secrets_masker() -> None:
    """Each test starts with an empty Airflow secrets masker, as each task process does. Airflow's masker compiles
    one regular expression of every secret registered so far at each registration: carried over the whole suite (a
    few thousand result links' signatures), a registration took about a second late in the run, and the fleet
    tests' result links (3 real seconds at 600x) expired while their stores registered them. The provider's budget of
    links registered per process starts again with it."""
    from airflow.sdk._shared.secrets_masker import reset_secrets_masker

    from airflow_provider_liveresponse.secrets import reset_masked_links

    reset_secrets_masker()
    reset_masked_links()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the test AIRFLOW_HOME's SQLite database once per session."""
    home = Path(os.environ["AIRFLOW_HOME"])
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ},
    )
    return home


@pytest.fixture
def sim_conn(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The default MDE connection, pointing at the simulator (no token carried in or out of the test)."""
    from airflow_provider_liveresponse.auth import reset_token_providers

    monkeypatch.setenv("AIRFLOW_CONN_MDE_LIVE_RESPONSE_DEFAULT", simulator.connection_json())
    reset_token_providers()
    yield "mde_live_response_default"
    reset_token_providers()


@pytest.fixture
def dags(airflow_db: Path) -> Iterator[DagRunner]:
    """A runner of DAG files written to the test DAG folder (removed afterwards)."""
    from tests.dag_runner import DagRunner

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    runner = DagRunner(folder)
    yield runner
    for path in runner.files:
        path.unlink(missing_ok=True)


@pytest.fixture
def task_output(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """``task_output()``: what the task logged so far, through Airflow's task log (stdout/stderr) and through the
    standard loggers of the provider's modules (the hook's decisions: reattach, throttling)."""

    def read() -> str:
        text = "".join(capsys.readouterr()) + caplog.text
        caplog.clear()
        return text

    return read


# -- storage servers: one of each per session for every folder (Airflow caches an object store per conn id) --


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS, checking request signatures) with the bucket ``evidence``."""
    from tests.transfers.storage_servers import ServerUnavailable, start_seaweedfs

    try:
        server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), "evidence")
    except ServerUnavailable as exc:
        pytest.skip(f"SeaweedFS could not start here: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """Microsoft's Azure Storage emulator (blob service) with the container ``evidence``."""
    from tests.transfers.storage_servers import ServerUnavailable, start_azurite

    try:
        server = start_azurite(tmp_path_factory.mktemp("azurite"), "evidence")
    except ServerUnavailable as exc:
        pytest.skip(f"Azurite could not start here: {exc}")
    yield server
    server.stop()


@pytest.fixture
def s3_conn(seaweedfs: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_SEAWEED_TEST", seaweedfs.connection_json())
    return "seaweed_test"


@pytest.fixture
def azure_conn(azurite: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_AZURITE_TEST", azurite.connection_json())
    return "azurite_test"


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    """A Google Cloud Storage emulator (fake-gcs-server, from its PyPI wheel) with the bucket ``evidence``; gs://
    registered for ObjectStoragePath with gcsfs for the session (see tests/transfers/gcs_filesystem.py: the
    Google provider, which registers it for users, is not installed here)."""
    from tests.transfers import gcs_filesystem
    from tests.transfers.storage_servers import ServerUnavailable, start_fake_gcs

    try:
        server = start_fake_gcs(tmp_path_factory.mktemp("fake-gcs"), "evidence")
    except ServerUnavailable as exc:
        pytest.skip(f"fake-gcs-server could not start here: {exc}")
    gcs_filesystem.register()
    yield server
    gcs_filesystem.unregister()
    server.stop()


@pytest.fixture
def gcs_conn(fake_gcs: GcsServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_FAKEGCS_TEST", fake_gcs.connection_json())
    return "fakegcs_test"
