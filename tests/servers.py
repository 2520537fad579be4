"""Real emulators on loopback ports for tests and benchmarks: Azurite's queue service and the moto server.

Each helper is a context manager that starts the server as a child process on a free port, returns once
the server accepts connections, and stops it (and only it) on exit. A server that fails to start raises
:class:`ServerError` carrying the end of its log, so the failure says why instead of timing out later.

    with azurite_queue() as azurite:
        QueueServiceClient.from_connection_string(azurite.connection_string)
    with moto_server() as moto:
        boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name=moto.region, ...)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO / ".tools" / "azurite" / "node_modules" / ".bin"
MOTO_SQS_SERVER = Path(__file__).resolve().with_name("moto_sqs_server.py")
START_TIMEOUT_SECONDS = 30.0

# Azurite's well-known development account (public, documented, accepted by no real storage account).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class ServerError(RuntimeError):
    """A test server could not be found or did not start."""


@dataclass(frozen=True)
class AzuriteQueue:
    port: int

    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"QueueEndpoint={self.queue_endpoint};"
        )


@dataclass(frozen=True)
class AzuriteStorage:
    """Azurite's blob and queue services side by side: what Event Grid would connect in Azure."""

    blob_port: int
    queue_port: int

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
        )


@dataclass(frozen=True)
class MotoServer:
    port: int
    region: str = "us-east-1"
    # moto accepts any credentials; boto3 refuses to sign without some.
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def azurite_binary(service: str = "queue") -> Path:
    """``azurite-<service>`` from ``.tools/azurite`` (scripts/install-azurite.sh), else from PATH."""
    name = f"azurite-{service}"
    local = AZURITE_BIN / name
    if local.exists():
        return local
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ServerError(f"{name} is not installed; run scripts/install-azurite.sh (make test does)")


@contextmanager
def azurite_queue() -> Iterator[AzuriteQueue]:
    """Azurite's queue service, in memory (nothing persists), telemetry off, run in a scratch directory."""
    with _azurite_service("queue") as port:
        yield AzuriteQueue(port)


@contextmanager
def azurite_storage() -> Iterator[AzuriteStorage]:
    """Azurite's blob and queue services (two processes), in memory, telemetry off."""
    with _azurite_service("blob") as blob_port, _azurite_service("queue") as queue_port:
        yield AzuriteStorage(blob_port, queue_port)


@contextmanager
def _azurite_service(service: str) -> Iterator[int]:
    binary = azurite_binary(service)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="azurite-") as workspace:
        command = [
            str(binary),
            f"--{service}Host", "127.0.0.1",
            f"--{service}Port", str(port),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--silent",
        ]  # fmt: skip
        with _process(command, port, f"azurite-{service}", Path(workspace)):
            yield port


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    """moto's AWS emulator (SQS among others) in a separate Python process, its SQS receives atomic as the
    service's are (see moto_sqs_server.py)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="moto-") as workspace:
        command = [sys.executable, str(MOTO_SQS_SERVER), "-H", "127.0.0.1", "-p", str(port)]
        with _process(command, port, "moto server", Path(workspace)):
            yield MotoServer(port)


@contextmanager
def _process(command: Sequence[str], port: int, name: str, workspace: Path) -> Iterator[None]:
    log_path = workspace / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workspace
        )
        try:
            _wait_until_listening(proc, port, name, log_path)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_listening(proc: subprocess.Popen[bytes], port: int, name: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"{name} exited with {proc.returncode} at startup:\n{_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerError(
        f"{name} did not listen on port {port} within {START_TIMEOUT_SECONDS:.0f}s:\n{_tail(log_path)}"
    )


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
