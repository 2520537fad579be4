"""The plan a change is compared with: a saved plan, or the stack planned at another git revision.

A revision is checked out in a temporary ``git worktree`` and planned by a separate Python process that
imports *that* revision's code: the editable install of agentstage maps its packages to this checkout
through an import hook ahead of ``sys.path``, so the child drops the hook and puts the worktree first.
Nothing needs credentials: the plan is offline, as every plan is.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import AgentstageError
from core.graph import GRAPH_FORMAT, ResourceGraph
from core.stacks import available_stacks, project_settings

if TYPE_CHECKING:
    from policies.rules import StackContext

PLAN_AT = """
import sys
root, out, *stacks = sys.argv[1:]
sys.meta_path[:] = [finder for finder in sys.meta_path if not type(finder).__module__.startswith("__editable__")]
sys.path[:0] = [root, root + "/runtime"]
from agentstage.cli import main
for stack in stacks:
    status = main(["plan", "--stack", stack, "--format", "json", "--out", f"{out}/{stack}.json", "--project-dir", root])
    if status:
        sys.stderr.write(f"\\nstack {stack} does not plan\\n")
        raise SystemExit(status)
"""
"""The child process: that revision's agentstage, planning each stack into ``out/<stack>.json``."""


class BaseUnavailableError(AgentstageError):
    """BASE is neither a saved plan nor a revision that plans."""


@dataclass(frozen=True)
class Base:
    """The plan to compare with, what to call it, and the stack file's policy context at that point."""

    graph: ResourceGraph
    label: str
    context: StackContext
    note: str = ""
    """Why the base is checked with another stack file's waivers, if it is."""


def base_plan(base: str, stack: str, project: Path) -> Base:
    """BASE as a saved plan file (checked with this project's stack file) or as a git revision."""
    from policies.rules import load_context

    path = Path(base)
    if path.is_file():
        return Base(_saved(path, stack), str(path), load_context(stack, project))
    return at_revision(base, [stack], project)[stack]


def _saved(path: Path, stack: str) -> ResourceGraph:
    try:
        graph = ResourceGraph.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BaseUnavailableError(
            f"--diff {path}: not a saved plan (`agentstage plan --format json --out FILE`, format "
            f"{GRAPH_FORMAT}): {error}"
        ) from None
    if graph.stack != stack:
        raise BaseUnavailableError(f"--diff {path}: it is a plan of stack '{graph.stack}', not '{stack}'")
    return graph


def at_revision(revision: str, stacks: list[str], project: Path) -> dict[str, Base]:
    """Each of ``stacks`` planned at ``revision``, in one worktree and one process; a stack that has no file
    there is an empty plan (the change adds it)."""
    repository = Path(_git(project, "rev-parse", "--show-toplevel", what=f"--diff {revision}"))
    commit = _git(
        project, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", what=f"--diff {revision}"
    )
    with tempfile.TemporaryDirectory(prefix="agentstage-base-") as scratch:
        checkout = Path(scratch) / "base"
        _git(repository, "worktree", "add", "--detach", "--quiet", str(checkout), commit, what="the worktree")
        try:
            base_project = checkout / project.resolve().relative_to(repository.resolve())
            present = set(available_stacks(base_project)) & set(stacks)
            _plan_in_child(base_project, sorted(present), Path(scratch), revision)
            bases = {}
            for stack in stacks:
                context, note = _context_at(base_project, stack, revision, project)
                if stack in present:
                    graph = ResourceGraph.from_json(
                        (Path(scratch) / f"{stack}.json").read_text(encoding="utf-8")
                    )
                else:
                    graph = ResourceGraph(
                        stack=stack, project=project_settings(base_project)["name"], resources=[]
                    )
                bases[stack] = Base(graph, revision, context, note)
            return bases
        finally:
            _git(repository, "worktree", "remove", "--force", str(checkout), what="the worktree")


def _plan_in_child(base_project: Path, stacks: list[str], out: Path, revision: str) -> None:
    if not stacks:
        return
    child = subprocess.run(
        [sys.executable, "-c", PLAN_AT, str(base_project), str(out), *stacks],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        lines = child.stderr.strip().splitlines() or ["no output"]
        reasons = [line for line in lines if line.startswith("error:")] or lines[-1:]
        raise BaseUnavailableError(f"--diff {revision}: {lines[-1]} at {revision}: {reasons[0]}")


def _context_at(base_project: Path, stack: str, revision: str, project: Path) -> tuple[StackContext, str]:
    """The stack file's waivers and stage at the revision.

    A change that renames a stack file key leaves a base file this code cannot read: the base is then
    checked with this checkout's stack file, and the diff says so.
    """
    from policies.rules import load_context

    try:
        return load_context(stack, base_project), ""
    except AgentstageError as error:
        note = f"{revision} checked with this checkout's waivers: its stack file does not load here ({error})"
        return load_context(stack, project), note


def _git(cwd: Path, *arguments: str, what: str) -> str:
    try:
        result = subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BaseUnavailableError(f"{what}: git is not installed; pass a saved plan file instead") from None
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "not a revision"
        raise BaseUnavailableError(
            f"{what}: not a saved plan file, and git says: {detail} (give a file, or a revision such as main)"
        )
    return result.stdout.strip()
