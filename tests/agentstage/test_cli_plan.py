"""``agentstage plan``: readable tree, JSON for machines, and one clear line for every mistake."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from agentstage.cli import main
from agentstage.console import Console
from core.stacks import PROJECT_DIR


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), console=Console(out, err))
    return status, out.getvalue(), err.getvalue()


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_tree_shows_components_children_settings_and_summary() -> None:
    status, out, _ = run("plan", "--stack", "pilot-dev")
    assert status == 0
    assert out.startswith("stack pilot-dev (")
    assert "─ models  agentstage:azure:Models" in out  # its branch depends on the order of siblings
    assert "disableLocalAuth=True" in out
    assert "role=Cognitive Services OpenAI User" in out
    assert "resources in" in out and "web:WebApp" in out


def test_json_format_is_the_graph() -> None:
    status, out, err = run("plan", "--stack", "pilot-dev", "--format", "json")
    assert status == 0
    graph = json.loads(out)
    assert graph["stack"] == "pilot-dev"
    assert "policy: PASS" in err
    types = {r["type"] for r in graph["resources"]}
    assert {
        "azure-native:web:WebApp",
        "azure-native:cognitiveservices:Account",
        "azure-native:keyvault:Vault",
    } <= types


def test_unknown_stack_lists_the_stacks_that_exist() -> None:
    status, out, err = run("plan", "--stack", "pilot-typo")
    assert status == 2 and out == ""
    assert error_lines(err) == [
        "error: unknown stack 'pilot-typo': stacks/Pulumi.pilot-typo.yaml does not exist "
        "(stacks: "
        + ", ".join(sorted(p.name[7:-5] for p in (PROJECT_DIR / "stacks").glob("Pulumi.*.yaml")))
        + ")"
    ]


def test_unknown_key_in_a_stack_file_is_one_line_naming_file_and_key(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.pilot-dev.yaml"
    stack.write_text(stack.read_text().replace("agentstage:logRetentionDays", "agentstage:logRetentionDay"))
    status, _, err = run("plan", "--stack", "pilot-dev", "--project-dir", str(project))
    assert status == 2
    assert "Traceback" not in err
    (line,) = error_lines(err)
    assert line.startswith(
        "error: stacks/Pulumi.pilot-dev.yaml: unknown key 'agentstage:logRetentionDay'; allowed keys:"
    )


def test_wrong_type_is_reported_with_its_key(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.pilot-dev.yaml"
    stack.write_text(stack.read_text().replace("tokenBudget: 8000", "tokenBudget: plenty"))
    status, _, err = run("plan", "--stack", "pilot-dev", "--project-dir", str(project))
    assert status == 2
    assert (
        "error: stacks/Pulumi.pilot-dev.yaml: agentstage:agents[0].tokenBudget: Input should be a valid integer"
        in err
    )


def test_cloud_not_built_yet_lists_what_is_available(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.pilot-dev.yaml"
    stack.write_text(stack.read_text().replace("agentstage:cloud: azure", "agentstage:cloud: kubernetes"))
    status, _, err = run("plan", "--stack", "pilot-dev", "--project-dir", str(project))
    assert status == 2
    assert "agentstage:cloud 'kubernetes' is not built yet for blueprint 'pilot'; available: " in err
    assert "enterprise on aws" in err and "enterprise on kubernetes" in err


def test_stage_keys_on_an_earlier_stage_are_errors(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.pilot-dev.yaml"
    stack.write_text(stack.read_text() + "  agentstage:messaging:\n    sku: Standard\n")
    status, _, err = run("plan", "--stack", "pilot-dev", "--project-dir", str(project))
    assert status == 2
    assert (
        "agentstage:messaging applies to foundation on azure, enterprise on azure, not pilot on azure; remove it"
        in err
    )


def test_unknown_blueprint_lists_allowed_values(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.pilot-dev.yaml"
    stack.write_text(stack.read_text().replace("agentstage:blueprint: pilot", "agentstage:blueprint: pilots"))
    status, _, err = run("plan", "--stack", "pilot-dev", "--project-dir", str(project))
    assert status == 2
    assert "agentstage:blueprint: Input should be 'pilot', 'foundation' or 'enterprise' (got 'pilots')" in err


def test_malformed_yaml_is_a_clear_error(project: Path) -> None:
    (project / "stacks" / "Pulumi.broken.yaml").write_text("config: [unclosed\n")
    status, _, err = run("plan", "--stack", "broken", "--project-dir", str(project))
    assert status == 2
    (line,) = error_lines(err)
    assert line.startswith("error: stacks/Pulumi.broken.yaml is not valid YAML")


def test_project_dir_without_pulumi_yaml(tmp_path: Path) -> None:
    status, _, err = run("plan", "--stack", "pilot-dev", "--project-dir", str(tmp_path))
    assert status == 2
    assert error_lines(err) == [f"error: --project-dir {tmp_path}: no Pulumi.yaml there"]


def test_the_installed_command_exits_2_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agentstage.cli", "plan", "--stack", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown stack 'nope'")
