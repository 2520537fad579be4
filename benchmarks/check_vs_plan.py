"""Benchmark: ``agentstage check`` on the largest stack against ``agentstage plan`` of the same stack.

``check`` plans the stack too, then runs our rules, exports the graph and runs checkov once; the
target is that all of that adds at most 4 s to ``plan``. Both run as fresh processes (imports
included, as a user experiences them), in alternation; the report gives medians, plus ``check
--no-checkov`` to show what the rules themselves cost. Exits 1 if the target is missed.

    .venv/bin/python benchmarks/check_vs_plan.py [--rounds 5] [--stack STACK]
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

from core.graph import ResourceGraph
from core.stacks import available_stacks

TARGET_SECONDS = 4.0
CLI = [sys.executable, "-m", "agentstage.cli"]


def timed(command: list[str], allowed: tuple[int, ...] = (0,)) -> float:
    """Wall time of one run; ``check`` may exit 1 (a policy verdict), anything else is a broken run."""
    start = time.perf_counter()
    done = subprocess.run(
        command, check=False, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in allowed:
        raise SystemExit(f"{' '.join(command[2:])} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed


def largest_stack(workdir: Path) -> tuple[str, int]:
    """The stack with the most cloud resources (planned once each; also warms the page cache)."""
    sizes = {}
    for stack in available_stacks(ROOT):
        graph_file = workdir / f"{stack}.json"
        timed([*CLI, "plan", "--stack", stack, "--format", "json", "--out", str(graph_file)])
        sizes[stack] = len(ResourceGraph.from_json(graph_file.read_text()).cloud_resources())
    stack = max(sizes, key=lambda s: sizes[s])
    return stack, sizes[stack]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stack", help="benchmark this stack instead of the largest")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        stack, count = largest_stack(Path(workdir))
        if args.stack:
            stack, count = args.stack, 0
    commands = {
        "plan": ([*CLI, "plan", "--stack", stack, "--format", "json"], (0,)),
        "check": ([*CLI, "check", "--stack", stack, "--format", "json"], (0, 1)),
        "check --no-checkov": ([*CLI, "check", "--stack", stack, "--no-checkov", "--format", "json"], (0, 1)),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    timed(*commands["check"])  # warm checkov's own environment too
    for _ in range(args.rounds):
        for name, (command, allowed) in commands.items():
            times[name].append(timed(command, allowed))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"stack {stack}"
        + (f" ({count} resources, the largest)" if count else "")
        + f", {args.rounds} rounds, medians:"
    )
    for name, median in medians.items():
        print(f"  {name:<20}{median:>7.2f} s   (min {min(times[name]):.2f}, max {max(times[name]):.2f})")
    extra = medians["check"] - medians["plan"]
    met = extra <= TARGET_SECONDS
    print(
        f"  check - plan        {extra:>7.2f} s   target <= {TARGET_SECONDS:.0f} s: {'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
