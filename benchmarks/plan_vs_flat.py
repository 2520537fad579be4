"""Benchmark: ``agentstage plan`` against a flat program of the same resources, side by side.

For each stack, both run as fresh processes (imports included, as a user experiences them), in
alternation, several rounds; the report gives medians of wall and CPU time and the ratios plan / flat
(target <= 1.15). Both programs run under ``agentstage plan``'s process policy - the cyclic garbage
collector off, no heap teardown at exit (``agentstage.cli.BATCH_VERBS``) - so the ratio is what agentstage's
layers cost, not a difference of settings: against the flat program run with Python's defaults, plan
would look a third faster than it is.

Python caches compiled modules by default. Where ``PYTHONDONTWRITEBYTECODE`` is set (as on the machines this
kit is developed on), every run would recompile the kit's own modules, ~150 of them for a plan against a
handful for the flat program, which measures the interpreter's compiler rather than agentstage. Both
programs therefore run with the default cache, kept in the benchmark's temporary directory
(``PYTHONPYCACHEPREFIX``, nothing written to the checkout) and filled by the warm-up run;
``--no-bytecode-cache`` measures the other way.

    .venv/bin/python benchmarks/plan_vs_flat.py [--rounds 5] [--no-bytecode-cache] [stack ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.stacks import available_stacks


@dataclass(frozen=True)
class Run:
    """One process: its wall time and its CPU time (user + system; steadier on a busy machine)."""

    wall: float
    cpu: float


def timed(command: list[str], env: dict[str, str]) -> Run:
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return Run(wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def medians(runs: list[Run]) -> Run:
    return Run(statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs))


def python_env(workdir: Path, bytecode_cache: bool) -> dict[str, str]:
    """The environment both programs run in: Python's default bytecode cache (outside the checkout), or none."""
    if not bytecode_cache:
        return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(workdir / "bytecode")}


def measure(stack: str, rounds: int, workdir: Path, env: dict[str, str]) -> tuple[Run, Run, int]:
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
    timed(plan, env)  # warm the page cache and bytecode, and write the graph the flat program replays
    timed(flat, env)
    plan_runs, flat_runs = [], []
    for _ in range(rounds):
        plan_runs.append(timed(plan, env))
        flat_runs.append(timed(flat, env))
    from core.graph import ResourceGraph

    count = len(ResourceGraph.from_json(graph_file.read_text()).cloud_resources())
    return medians(plan_runs), medians(flat_runs), count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--no-bytecode-cache", action="store_true", help="recompile every module in every run (see above)"
    )
    parser.add_argument("stacks", nargs="*")
    args = parser.parse_args()
    stacks = args.stacks or available_stacks(ROOT)
    print(f"{'':<32}{'wall':-^26}  {'CPU':-^26}")
    print(f"{'stack':<22}{'resources':>10}" + f"{'plan s':>9}{'flat s':>9}{'ratio':>8}  " * 2)
    with tempfile.TemporaryDirectory() as workdir:
        for stack in stacks:
            env = python_env(Path(workdir), bytecode_cache=not args.no_bytecode_cache)
            plan, flat, count = measure(stack, args.rounds, Path(workdir), env)
            print(
                f"{stack:<22}{count:>10}"
                f"{plan.wall:>9.2f}{flat.wall:>9.2f}{plan.wall / flat.wall:>8.2f}  "
                f"{plan.cpu:>9.2f}{flat.cpu:>9.2f}{plan.cpu / flat.cpu:>8.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
