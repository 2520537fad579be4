"""Benchmark: the SQLite state file's write-ahead log under sustained load stays bounded.

The runtime (one uvicorn worker, one budget rule on the embedded SQLite ledger, the scripted model server
behind it) takes ``wrk`` at 20 connections for ``--seconds`` (default 300). The WAL's size is sampled four
times a second throughout, and again after a few quiet seconds. Printed: the high-water mark (target
<= 64 MB), the size once idle, throughput and latency percentiles.

Run: ``make bench-ledger`` (installs ``wrk`` first), or ``.venv/bin/python benchmarks/ledger_wal.py
[--seconds 300]`` once ``wrk`` is there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import free_port, model_command, process, uvicorn_command, wait_for_200, wait_for_model

KEY = "bench-key-0123456789"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello"}]}
BUDGETS = [{"name": "tenant", "scope": "tenant", "window_seconds": 3600, "tokens": 10**12, "requests": 10**9}]
TARGET_BYTES = 64 * 1024 * 1024


def sample(wal: Path, stop: threading.Event, sizes: list[int]) -> None:
    while not stop.is_set():
        sizes.append(wal.stat().st_size if wal.exists() else 0)
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: make bench-ledger installs it (scripts/install-system-deps.sh bench)")
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        script = state / "post.lua"
        script.write_text(
            f'wrk.method = "POST"\nwrk.body = [[{json.dumps(BODY)}]]\n'
            f'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer {KEY}"\n'
        )
        model_port, runtime_port = free_port(), free_port()
        env = {
            **os.environ,
            "AGENTSTAGE_LLM_ENDPOINT": f"http://127.0.0.1:{model_port}/v1",
            "AGENTSTAGE_LLM_AUTH": "none",
            "AGENTSTAGE_API_KEY": KEY,
            "AGENTSTAGE_SQLITE_PATH": str(state / "state.db"),
            "AGENTSTAGE_AGENTS": json.dumps([{"name": "bench", "instructions": "Be brief."}]),
            "AGENTSTAGE_BUDGETS": json.dumps(BUDGETS),
        }
        wal, sizes, stop = state / "state.db-wal", [], threading.Event()
        with (
            process(model_command(model_port)),
            process(uvicorn_command(runtime_port, 1, "agent_runtime.api:serve_app", True), env),
        ):
            wait_for_model(f"http://127.0.0.1:{model_port}/v1/chat/completions")
            wait_for_200(f"http://127.0.0.1:{runtime_port}/healthz")
            sampler = threading.Thread(target=sample, args=(wal, stop, sizes), daemon=True)
            sampler.start()
            url = f"http://127.0.0.1:{runtime_port}/v1/chat/completions"
            out = subprocess.run(
                ["wrk", "-t2", "-c20", f"-d{args.seconds}s", "--latency", "-s", str(script), url],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            time.sleep(3)  # quiet: the keeper empties the log
            stop.set()
            sampler.join()
            idle = wal.stat().st_size if wal.exists() else 0
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    percentiles = dict(re.findall(r"\s(50|90|99)%\s+([\d.]+\w+)", out))
    print(
        f"{args.seconds} s of wrk -c20: {rps.group(1) if rps else '?'} requests/s, "
        f"{errors.group(1) if errors else 0} non-2xx; latency p50 {percentiles.get('50')}, "
        f"p90 {percentiles.get('90')}, p99 {percentiles.get('99')}"
    )
    high = max(sizes, default=0)
    verdict = "met" if high <= TARGET_BYTES else "MISSED"
    print(
        f"WAL high-water mark {high / 2**20:.1f} MB over {len(sizes)} samples (target <= 64 MB: {verdict}); "
        f"after 3 quiet seconds {idle / 2**20:.1f} MB"
    )


if __name__ == "__main__":
    main()
