"""``plan --diff REVISION``: the base is planned from a temporary git worktree by that revision's own code.

The repository here is a copy of this checkout (every file git would commit), committed once; the test
edits it and diffs against ``HEAD`` as a pull request's workflow does against its base branch.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agentstage.cli import main
from agentstage.console import Console
from core.stacks import PROJECT_DIR, available_stacks

GIT = ("git", "-c", "user.name=agentstage-test", "-c", "user.email=test@example.invalid")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), console=Console(out, err))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's files, committed in a repository of their own."""
    root = tmp_path_factory.mktemp("repository")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_DIR,
        capture_output=True,
        check=True,
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = PROJECT_DIR / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    subprocess.run([*GIT, "init", "--quiet"], cwd=root, check=True)
    subprocess.run([*GIT, "add", "--all"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "--quiet", "--message", "base"], cwd=root, check=True)
    return root


@pytest.fixture
def checkout(repository: Path) -> Iterator[Path]:
    """The repository, back at its commit after the test's edits."""
    yield repository
    subprocess.run(["git", "checkout", "--quiet", "--", "."], cwd=repository, check=True)
    subprocess.run(["git", "clean", "--quiet", "--force", "--", "stacks"], cwd=repository, check=True)


def edit_stack(repository: Path, stack: str, key: str, value: object) -> None:
    """Set ``key`` (``agentstage:functions.alwaysReady``: dots go into mappings) in the stack file."""
    path = repository / "stacks" / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    *parents, last = key.split(".")
    target = document["config"]
    for parent in parents:
        target = target[parent]
    target[last] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def test_the_same_commit_in_another_checkout_has_no_changes(checkout: Path) -> None:
    """The base is planned in a worktree under another path: nothing in a plan depends on where it is."""
    status, out, err = run("plan", "--stack", "pilot-dev", "--diff", "HEAD", "--project-dir", str(checkout))
    assert status == 0, err
    assert out.splitlines()[1] == "no resource changes", out
    worktrees = subprocess.run(
        ["git", "worktree", "list", "--porcelain"], cwd=checkout, capture_output=True, text=True, check=True
    )
    assert worktrees.stdout.count("worktree ") == 1, "the temporary worktree is removed"


def test_a_stack_edit_shows_as_exactly_that_setting(checkout: Path) -> None:
    edit_stack(checkout, "pilot-dev", "agentstage:functions.alwaysReady", 1)
    status, out, err = run(
        "plan", "--stack", "pilot-dev", "--diff", "HEAD", "--format", "json", "--project-dir", str(checkout)
    )
    assert status == 0, err
    payload = json.loads(out)
    assert payload["base"]["label"] == "HEAD" and payload["head"]["label"] == "this checkout"
    settings = [
        (c["name"], s["path"], s["old"], s["new"], s["concern"])
        for c in payload["changes"]
        for s in c["settings"]
    ]
    ready = [{"instanceCount": 1, "name": "http"}]
    assert settings == [
        ("agent-app", "functionAppConfig.scaleAndConcurrency.alwaysReady", None, ready, "cost")
    ]
    assert payload["cost"]["resources"] == [{"resource": "agent-app", "base": 0.0, "head": 21.02}]

    status, tree, err = run("plan", "--stack", "pilot-dev", "--diff", "HEAD", "--project-dir", str(checkout))
    assert status == 0, err
    assert readme_example() == tree.replace("HEAD          ", "main          ").replace(
        ": HEAD (", ": main ("
    )


def readme_example() -> str:
    """The README's example of ``plan --diff``, without its command line."""
    text = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- plan-diff-example:", 1)[1].split("```", 2)[1]
    return block.split("\n", 2)[2]


def test_a_new_stack_is_all_added_against_a_revision_without_it(checkout: Path) -> None:
    stacks = checkout / "stacks"
    shutil.copy(stacks / "Pulumi.pilot-dev.yaml", stacks / "Pulumi.pilot-qa.yaml")
    status, out, err = run(
        "plan",
        "--stack",
        "pilot-qa",
        "--diff",
        "HEAD",
        "--format",
        "markdown",
        "--project-dir",
        str(checkout),
    )
    assert status == 0, err
    assert out.startswith("### Plan diff: `pilot-qa` — `HEAD` → `this checkout`")
    summary = re.search(r"\*\*(\d+) added, 0 removed, 0 changed\*\* \(0 → (\d+) resources\)", out)
    assert summary and summary[1] == summary[2] and int(summary[1]) > 20, out[:400]
    assert "#### ⚠️ Security and cost" in out and "| + | `agent-storage` storage:StorageAccount |" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--diff", "no-such-revision"), "--diff no-such-revision: not a saved plan file, and git says:"),
        (("--format", "markdown"), "--format markdown is the pull-request view of a diff: add --diff BASE"),
        (("--diff", "HEAD", "--format", "mermaid"), "--diff shows as tree, json or markdown, not mermaid"),
    ],
)
def test_mistakes_get_one_clear_line(repository: Path, argv: tuple[str, ...], message: str) -> None:
    status, out, err = run("plan", "--stack", "pilot-dev", *argv, "--project-dir", str(repository))
    assert (status, out) == (2, "")
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert message in line, err


def test_a_saved_plan_must_be_a_plan_of_the_same_stack(repository: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps({"format": 1, "stack": "pilot-prod", "project": "agentstage", "resources": []})
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path, message in (
        (other, "it is a plan of stack 'pilot-prod', not 'pilot-dev'"),
        (broken, "not a saved plan"),
    ):
        status, _, err = run(
            "plan", "--stack", "pilot-dev", "--diff", str(path), "--project-dir", str(repository)
        )
        assert status == 2 and message in err, err


def test_all_stacks_show_the_touched_ones_and_name_the_rest(checkout: Path, tmp_path: Path) -> None:
    """The pull-request view: one worktree for every base plan, a section per changed stack; ``--out``
    writes it to the file instead of stdout."""
    edit_stack(checkout, "foundation-staging", "agentstage:logRetentionDays", 120)
    target = tmp_path / "plan-diff.md"
    status, printed, err = run(
        "plan", "--all", "--diff", "HEAD", "--format", "markdown", "--out", str(target),
        "--project-dir", str(checkout),
    )  # fmt: skip
    assert status == 0, err
    assert printed == "" and f"diff written to {target}" in err
    out = target.read_text(encoding="utf-8")
    sections = [line for line in out.splitlines() if line.startswith("### Plan diff: ")]
    assert sections == ["### Plan diff: `foundation-staging` — `HEAD` → `this checkout`"]
    unchanged = ", ".join(f"`{s}`" for s in available_stacks(checkout) if s != "foundation-staging")
    assert out.rstrip().endswith(f"Unchanged: {unchanged}.")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--all",), "--all plans every stack for a diff: add --diff REVISION"),
        (("--all", "--diff", "pyproject.toml"), "a saved plan is one stack's; give a git revision"),
    ],
)
def test_all_mistakes_get_one_clear_line(repository: Path, argv: tuple[str, ...], message: str) -> None:
    status, out, err = run("plan", *argv, "--project-dir", str(repository))
    assert (status, out) == (2, "") and message in err, err
