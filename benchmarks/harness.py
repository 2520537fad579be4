"""What the runtime benchmarks share: free loopback ports, child processes, and waiting for them to serve."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_200(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.002)


def wait_for_model(url: str, timeout: float = 30.0) -> None:
    """The model server has no health path: its chat endpoint answering is the signal."""
    body = {"model": "bench", "messages": [{"role": "user", "content": "ready?"}]}
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(request, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def process(
    command: list[str], env: dict[str, str] | None = None, cwd: Path = RUNTIME
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def uvicorn_command(port: int, workers: int, target: str, factory: bool) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", target, "--port", str(port), "--log-level", "warning"]
    command += ["--no-access-log", "--loop", "uvloop", "--http", "httptools", "--workers", str(workers)]
    return command + (["--factory"] if factory else [])


def model_command(port: int, script: Path | None = None) -> list[str]:
    """The scripted model server on ``port`` (``--script`` rules, else its default script)."""
    command = [sys.executable, "-m", "agent_runtime.testing", "--port", str(port)]
    return command + (["--script", str(script)] if script else [])
