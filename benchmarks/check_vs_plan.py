"""Benchmark: ``agentstage check`` on the largest stack against ``agentstage plan`` of the same stack.

``check`` plans the stack too, then runs our rules, exports the graph and runs checkov once; the
target is that all of that adds at most 4 s to ``plan``. Both run as fresh processes (imports
included, as a user experiences them), in alternation; the report gives medians, plus ``check
--no-checkov`` to show what the rules themselves cost. Exits 1 if the target is missed.

Finding the largest stack plans every stack once: a stack file that does not validate is reported in one
line and left out. With ``--stack`` only that stack is planned; if it does not validate, or no stack does,
the benchmark exits 2 with agentstage's one-line message.

    .venv/bin/python benchmarks/check_vs_plan.py [--rounds 5] [--stack STACK] [--project-dir DIR]
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
USAGE = 2
"""agentstage's exit status for a mistake in the arguments or a stack file (core.errors.ExitStatus.USAGE)."""


class InvalidStack(Exception):
    """``agentstage plan`` refused the stack (exit 2); the message is its one-line error."""


def timed(command: list[str], allowed: tuple[int, ...] = (0,)) -> float:
    """Wall time of one run; ``check`` may exit 1 (a policy verdict), anything else is a broken run."""
    start = time.perf_counter()
    done = subprocess.run(
        command, check=False, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode == USAGE:
        raise InvalidStack(last_line(done.stderr))
    if done.returncode not in allowed:
        raise SystemExit(f"{' '.join(command[2:])} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed


def last_line(stderr: str) -> str:
    """agentstage's error line (progress lines come first), without its ``error:`` prefix."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1].removeprefix("error: ") if lines else "no message"


def planned_size(stack: str, project: Path, workdir: Path) -> int:
    """The stack's number of cloud resources (planning it also warms the page cache)."""
    graph_file = workdir / f"{stack}.json"
    timed([*CLI, "plan", "--stack", stack, "--format", "json", "--out", str(graph_file), *at(project)])
    return len(ResourceGraph.from_json(graph_file.read_text()).cloud_resources())


def largest_stack(project: Path, workdir: Path) -> tuple[str, int]:
    """The valid stack with the most cloud resources; an invalid stack file is named and left out."""
    sizes = {}
    for stack in available_stacks(project):
        try:
            sizes[stack] = planned_size(stack, project, workdir)
        except InvalidStack as error:
            print(f"skipping stack {stack}: {error}", file=sys.stderr)
    if not sizes:
        raise InvalidStack(f"no stack in {project} plans; see the lines above")
    stack = max(sizes, key=lambda s: sizes[s])
    return stack, sizes[stack]


def at(project: Path) -> list[str]:
    return [] if project == ROOT else ["--project-dir", str(project)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stack", help="benchmark this stack instead of the largest")
    parser.add_argument(
        "--project-dir", type=Path, default=ROOT, help="the Pulumi project (default: this one)"
    )
    args = parser.parse_args()
    project = args.project_dir.resolve()
    if not (project / "Pulumi.yaml").is_file():
        print(f"error: --project-dir {args.project_dir}: no Pulumi.yaml there", file=sys.stderr)
        return USAGE
    try:
        with tempfile.TemporaryDirectory() as workdir:
            if args.stack:
                stack, count = args.stack, planned_size(args.stack, project, Path(workdir))
            else:
                stack, count = largest_stack(project, Path(workdir))
    except InvalidStack as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE
    commands = {
        "plan": ([*CLI, "plan", "--stack", stack, "--format", "json", *at(project)], (0,)),
        "check": ([*CLI, "check", "--stack", stack, "--format", "json", *at(project)], (0, 1)),
        "check --no-checkov": (
            [*CLI, "check", "--stack", stack, "--no-checkov", "--format", "json", *at(project)],
            (0, 1),
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    timed(*commands["check"])  # warm checkov's own environment too
    for _ in range(args.rounds):
        for name, (command, allowed) in commands.items():
            times[name].append(timed(command, allowed))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"stack {stack} ({count} resources{'' if args.stack else ', the largest'}), {args.rounds} rounds, medians:"
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
