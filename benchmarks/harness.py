"""What the runtime benchmarks share: free loopback ports, child processes (serving and measured), and
waiting for them to serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agent_runtime.server_protocol import SERVER_PROTOCOL

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime"
APP_FACTORY = "agent_runtime.api:serve_app"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerExited(RuntimeError):
    """The server being waited for exited instead of serving."""


def wait_for_200(url: str, timeout: float = 30.0, server: subprocess.Popen[bytes] | None = None) -> None:
    """Polls ``url`` until it answers 200; gives up at once when ``server`` (if given) exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            if server is not None and server.poll() is not None:
                raise ServerExited(f"{url}: the server exited with code {server.returncode}") from None
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
    command: list[str], env: dict[str, str] | None = None, cwd: Path = RUNTIME, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` running for the block, its output in ``log`` (else discarded). It leads its own process
    group, so workers it spawned (uvicorn and granian with several workers) are ended with it even when it
    exits before them."""
    with open(log or os.devnull, "wb") as output:
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            finally:
                _kill_group(proc.pid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # every member is gone already


def uvicorn_command(port: int, workers: int, target: str, factory: bool) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", target, "--port", str(port), "--log-level", "warning"]
    # The container's protocol (runtime/Dockerfile): uvicorn's httptools one, the request head bounded.
    command += ["--no-access-log", "--loop", "uvloop", "--http", SERVER_PROTOCOL, "--workers", str(workers)]
    return command + (["--factory"] if factory else [])


def granian_command(port: int, workers: int, target: str, factory: bool) -> list[str]:
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(port), "--no-ws"]
    command += ["--workers", str(workers), "--loop", "uvloop", "--log-level", "warning"]
    return command + (["--factory"] if factory else []) + [target]


SERVERS: dict[str, Callable[[int, int, str, bool], list[str]]] = {
    "uvicorn": uvicorn_command,
    "granian": granian_command,
}
"""The ASGI servers a benchmark may serve the runtime with, by name: ``command(port, workers, target,
factory)``."""


def model_command(port: int, script: Path | None = None) -> list[str]:
    """The scripted model server on ``port`` (``--script`` rules, else its default script)."""
    command = [sys.executable, "-m", "agent_runtime.testing", "--port", str(port)]
    return command + (["--script", str(script)] if script else [])


def tree_rss_mb(pid: int) -> list[float]:
    """VmRSS in MB of ``pid`` and every process below it, largest first: with workers, the largest is a
    worker (the supervisor does not import the app)."""
    sizes = [_rss_kb(member) for member in _tree(pid)]
    return sorted((kb / 1024 for kb in sizes if kb is not None), reverse=True)


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds spent so far by ``pid`` and every process below it that still runs."""
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(_cpu_ticks(member) for member in _tree(pid)) / ticks


def _cpu_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0  # exited while we looked
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, as in _ppid
    return int(fields[11]) + int(fields[12])  # utime, stime


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _ppid(entry)
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    members, pending = [], [pid]
    while pending:
        member = pending.pop()
        members.append(member)
        pending.extend(children.get(member, []))
    return members


def _ppid(proc_dir: Path) -> int | None:
    try:
        stat = (proc_dir / "stat").read_text()
    except OSError:
        return None  # exited while we looked
    # The command name (2nd field) may hold spaces and parentheses: fields after its last ')' are fixed.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _rss_kb(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None  # a zombie has no VmRSS
