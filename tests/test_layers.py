"""The layers' dependency arrows point one way: core at the bottom, the command line at the top.

core (stack model, graph, plan engine) imports no layer above it; the policies and the cost estimate stand
on core, not on the command line (the CrossGuard pack must not load the CLI); and a stack that needs no
cloud SDK loads none (a plain Kubernetes stack plans without pulumi-azure-native or pulumi-aws).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS_ABOVE_CORE = ("agentstage", "policies", "cost", "blueprints", "components")


def imported(package: str) -> dict[str, set[str]]:
    """Top-level packages each module of ``package`` imports, by module path."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_core_imports_no_layer_above_it() -> None:
    offenders = {path: names & set(LAYERS_ABOVE_CORE) for path, names in imported("core").items()}
    assert not {path: names for path, names in offenders.items() if names}


@pytest.mark.parametrize("package", ["policies", "cost", "blueprints", "components"])
def test_nothing_below_the_command_line_imports_it(package: str) -> None:
    offenders = [path for path, names in imported(package).items() if "agentstage" in names]
    assert not offenders, f"{package} must stand on core, not on the CLI: {offenders}"


def loaded_modules(work: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with ``prefixes`` that a fresh interpreter has loaded after running ``work``."""
    probe = f"import sys\n{work}\nprint(sorted(m for m in sys.modules if m.startswith({prefixes!r})))\n"
    printed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    return ast.literal_eval(printed.splitlines()[-1])


def test_a_plain_kubernetes_stack_loads_no_cloud_sdk() -> None:
    work = "from core.engine import build_graph\nbuild_graph('enterprise-k8s')"
    assert loaded_modules(work, ("pulumi_azure_native", "pulumi_aws")) == []


def test_a_plan_checks_the_runtime_contract_and_tools_without_loading_the_runtime_machinery() -> None:
    """Components, the stack file's runtimeSettings and the policy rules check names and values against
    ``agent_runtime.settings_contract``, and agents' tools against the tool declarations. What the runtime
    reads its environment with (pydantic-settings), what runs tool calls (the executor, its ledger, audit
    and trace models) and the memory stores answer nothing there and cost a plan tens of milliseconds of
    imports."""
    work = (
        "import os\n"
        "from agentstage.cli import main\n"
        "for stack in ('foundation-aws-staging', 'enterprise-k8s'):\n"
        "    assert main(['plan', '--stack', stack, '--format', 'json', '--out', os.devnull]) == 0"
    )
    machinery = (
        "pydantic_settings",
        "agent_runtime.settings",
        "agent_runtime.tools.executor",
        "agent_runtime.tools.audit",
        "agent_runtime.governance.ledger",
        "agent_runtime.trace",
        "agent_runtime.memory",
        "agent_runtime.caller",
    )
    assert loaded_modules(work, machinery) == ["agent_runtime.settings_contract"]
