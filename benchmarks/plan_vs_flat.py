"""Benchmark: ``agentstage plan`` against a flat program of the same resources, side by side.

For each stack, both run as fresh processes (imports included, as a user experiences them), in
alternation, several rounds; the report gives medians and the ratio plan / flat (target <= 1.10).

    .venv/bin/python benchmarks/plan_vs_flat.py [--rounds 5] [stack ...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.stacks import available_stacks


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def measure(stack: str, rounds: int, workdir: Path) -> tuple[float, float, int]:
    graph_file = workdir / f"{stack}.json"
    plan = [
        sys.executable,
        "-m",
        "agentstage.cli",
        "plan",
        "--stack",
        stack,
        "--format",
        "json",
        "--out",
        str(graph_file),
    ]
    flat = [sys.executable, str(ROOT / "benchmarks" / "flat_program.py"), str(graph_file)]
    timed(plan)  # warm the page cache and write the graph the flat program replays
    plan_times, flat_times = [], []
    for _ in range(rounds):
        plan_times.append(timed(plan))
        flat_times.append(timed(flat))
    from core.graph import ResourceGraph

    count = len(ResourceGraph.from_json(graph_file.read_text()).cloud_resources())
    return statistics.median(plan_times), statistics.median(flat_times), count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("stacks", nargs="*")
    args = parser.parse_args()
    stacks = args.stacks or available_stacks(ROOT)
    print(f"{'stack':<22}{'resources':>10}{'plan s':>9}{'flat s':>9}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as workdir:
        for stack in stacks:
            plan_s, flat_s, count = measure(stack, args.rounds, Path(workdir))
            print(f"{stack:<22}{count:>10}{plan_s:>9.2f}{flat_s:>9.2f}{plan_s / flat_s:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
