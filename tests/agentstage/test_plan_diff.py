"""``agentstage plan --diff``: exactly the intended changes, security first, both sides' policy verdicts.

The edits a reviewer meets - a setting flipped, a resource added, a role widened, an agent removed - are
made to the real plans (mutating the session's graph, or editing a copy of a stack file and planning it)
and the diff must show those changes and nothing else.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentstage import diff_render
from agentstage.cli import main
from agentstage.console import Console
from agentstage.plan_diff import compare
from agentstage.plan_review import DiffReport, review
from components.azure.role_ids import BUILTIN_ROLES, FORBIDDEN_ROLES
from core.config import WaiverConfig
from core.graph import ResourceGraph
from policies.rules import StackContext, load_context

Graphs = Callable[[str], ResourceGraph]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), console=Console(out, err))
    return status, out.getvalue(), err.getvalue()


def copy(graph: ResourceGraph) -> ResourceGraph:
    return ResourceGraph.from_json(graph.to_json())


def edited(graph: ResourceGraph, name: str, edit: Callable[[dict[str, Any]], None]) -> ResourceGraph:
    """A copy of ``graph`` whose resource ``name`` has its inputs changed by ``edit``."""
    changed = copy(graph)
    target = next(r for r in changed.resources if r.name == name and r.custom)
    inputs = json.loads(json.dumps(target.inputs))
    edit(inputs)
    changed.resources[changed.resources.index(target)] = dataclasses.replace(target, inputs=inputs)
    return changed


def reviewed(base: ResourceGraph, head: ResourceGraph) -> DiffReport:
    context = load_context(head.stack)
    return review(base, head, labels=("main", "this change"), contexts=(context, context))


def role_id(guid: str) -> str:
    return f"/subscriptions/sub/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def test_the_same_plan_has_no_changes(stack_graph: Graphs) -> None:
    graph = stack_graph("foundation-staging")
    report = reviewed(graph, copy(graph))
    assert report.diff.empty and report.diff.base_count == report.diff.head_count == len(
        graph.cloud_resources()
    )
    assert "no resource changes" in list(diff_render.tree_lines(report))
    assert not report.new_blocking and not report.cleared_blocking


def test_a_flipped_setting_is_one_security_change_and_a_new_blocking_failure(stack_graph: Graphs) -> None:
    base = stack_graph("pilot-dev")
    head = edited(base, "agent-storage", lambda inputs: inputs.update(allowSharedKeyAccess=True))
    report = reviewed(base, head)
    [change] = report.diff.changes
    assert (change.name, change.kind) == ("agent-storage", "changed")
    [setting] = change.settings
    assert (setting.path, setting.old, setting.new, setting.concern) == (
        "allowSharedKeyAccess",
        False,
        True,
        "authentication",
    )
    assert report.diff.security == [change]
    assert [(check, name) for check, name, _ in report.new_blocking] and all(
        name == "agent-storage" for _, name, _ in report.new_blocking
    )
    tree = list(diff_render.tree_lines(report))
    assert tree[1:6] == [
        "0 added, 0 removed, 1 changed",
        "",
        "security and cost:",
        "  ~ agent-storage  storage:StorageAccount",
        "      [authentication] allowSharedKeyAccess: false -> true",
    ]
    assert any(line.startswith("  new blocking: ") and "agent-storage" in line for line in tree)


def test_a_widened_role_is_called_out_by_name(stack_graph: Graphs) -> None:
    base = stack_graph("pilot-dev")
    officer = role_id(BUILTIN_ROLES["Key Vault Secrets Officer"])
    head = edited(base, "secrets-secrets-read-agent", lambda inputs: inputs.update(roleDefinitionId=officer))
    report = reviewed(base, head)
    [change] = report.diff.changes
    [setting] = change.settings
    assert (change.name, setting.path, setting.concern) == (
        "secrets-secrets-read-agent",
        "roleDefinitionId",
        "access",
    )
    assert "[access] roleDefinitionId: Key Vault Secrets User -> Key Vault Secrets Officer" in "\n".join(
        diff_render.tree_lines(report)
    )
    markdown = "\n".join(diff_render.markdown_lines(report))
    assert (
        "| ~ | `secrets-secrets-read-agent` authorization:RoleAssignment | access | `roleDefinitionId` |"
        in markdown
    )
    assert "`Key Vault Secrets User` | `Key Vault Secrets Officer` |" in markdown


def test_an_added_resource_brings_its_access_and_the_policy_failure_it_causes(stack_graph: Graphs) -> None:
    base = stack_graph("pilot-dev")
    head = copy(base)
    template = next(r for r in head.resources if r.name == "agent-storage-access")
    contributor = role_id(FORBIDDEN_ROLES["Contributor"])
    added = dataclasses.replace(
        template,
        urn=template.urn.replace("agent-storage-access", "agent-broad-access"),
        name="agent-broad-access",
        inputs={**template.inputs, "roleDefinitionId": contributor, "description": "too broad"},
    )
    head.resources.append(added)
    report = reviewed(base, head)
    [change] = report.diff.changes
    assert (change.name, change.kind, change.concerns) == ("agent-broad-access", "added", ("access",))
    assert {s.path for s in change.settings} == {"principalId", "principalType", "roleDefinitionId", "scope"}
    assert report.summaries[change.urn].startswith("role=Contributor")
    assert any(name == "agent-broad-access" for _, name, _ in report.new_blocking)
    payload = json.loads(diff_render.json_text([report], several=False))
    assert payload["security"] == [added.urn]
    assert payload["changes"][0]["kind"] == "added"
    assert any(item["resource"] == "agent-broad-access" for item in payload["newBlocking"])
    assert payload["base"]["resources"] + 1 == payload["head"]["resources"]


def test_a_removed_resource_is_listed_with_what_it_was(stack_graph: Graphs) -> None:
    base = stack_graph("pilot-dev")
    head = copy(base)
    head.resources = [r for r in head.resources if r.name != "observability-telemetry-publish-agent"]
    report = reviewed(base, head)
    [change] = report.diff.changes
    assert (change.kind, change.settings) == ("removed", ())
    assert report.diff.security == []
    assert "role=Monitoring Metrics Publisher" in report.summaries[change.urn]


def test_dependencies_parent_and_multi_line_text_show_only_what_moved(stack_graph: Graphs) -> None:
    base = stack_graph("foundation-staging")
    policy = next(r for r in base.cloud_resources() if r.type == "azure-native:apimanagement:ApiPolicy")
    text = policy.inputs["value"]
    head = edited(
        base, policy.name, lambda inputs: inputs.update(value=text.replace("<base />", "<base />\n<x/>", 1))
    )
    target = next(r for r in head.resources if r.urn == policy.urn)
    head.resources[head.resources.index(target)] = dataclasses.replace(
        target, dependencies=(*target.dependencies[1:], "urn:pulumi:s::p::t::new-named-value")
    )
    report = reviewed(base, head)
    [change] = report.diff.changes
    paths = [s.path for s in change.settings]
    assert paths == ["value", "(dependencies)"]
    lines = diff_render.tree_lines(report)
    shown = "\n".join(lines)
    assert "        +<x/>" in shown and "<policies>" not in shown
    dropped = target.dependencies[0].rsplit("::", 1)[-1]
    assert f"(dependencies): dropped {dropped}; added new-named-value" in shown


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # Named lists (app settings) match by name: one variable changed is one line, order is irrelevant.
        (
            [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            [{"name": "B", "value": "3"}, {"name": "A", "value": "1"}],
            [("[B]", "2", "3")],
        ),
        # JSON text compares as its data, and an item present on one side only is one line.
        (
            '[{"name": "x", "n": 1}, {"name": "y"}]',
            '[{"name": "x", "n": 2}]',
            [("[x].n", 1, 2), ("[y]", {"name": "y"}, None)],
        ),
        # A list whose length changes is one change, not a cascade of shifted indexes.
        ({"ips": ["a", "b"]}, {"ips": ["b"]}, [("ips", ["a", "b"], ["b"])]),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}, [("a.c", 2, None)]),
        ("not json [", "not json {", [("", "not json [", "not json {")]),
    ],
)
def test_compare_follows_the_datas_meaning(old: Any, new: Any, expected: list[tuple[str, Any, Any]]) -> None:
    assert list(compare(old, new)) == expected


def test_markdown_table_cells_survive_pipes_and_backticks(stack_graph: Graphs) -> None:
    base = stack_graph("pilot-dev")
    head = edited(base, "agent-storage", lambda inputs: inputs.update(publicNetworkAccess="a | b `c`\nd"))
    markdown = list(diff_render.markdown_lines(reviewed(base, head)))
    [row] = [line for line in markdown if "`publicNetworkAccess`" in line]
    assert row.endswith("| `Enabled` | `` a \\| b `c` d `` |")
    assert row.count("|") - row.count("\\|") == 7, row


def test_only_real_changes_when_an_agent_is_removed(
    stack_graph: Graphs, tmp_path: Path, project: Path
) -> None:
    """Removing the analyst agent from foundation-staging removes its resources and edits only its peers."""
    base = stack_graph("foundation-staging")
    saved = tmp_path / "base.json"
    saved.write_text(base.to_json(), encoding="utf-8")
    stack_path = project / "stacks" / "Pulumi.foundation-staging.yaml"
    stack = yaml.safe_load(stack_path.read_text(encoding="utf-8"))
    stack["config"]["agentstage:agents"] = [
        a for a in stack["config"]["agentstage:agents"] if a["name"] != "analyst"
    ]
    stack_path.write_text(yaml.safe_dump(stack, sort_keys=False), encoding="utf-8")

    status, out, err = run(
        "plan",
        "--stack",
        "foundation-staging",
        "--diff",
        str(saved),
        "--format",
        "json",
        "--project-dir",
        str(project),
    )
    assert status == 0, err
    payload = json.loads(out)
    changes = {c["name"]: c for c in payload["changes"]}
    removed = {name for name, c in changes.items() if c["kind"] == "removed"}
    analysts = {r.name for r in base.cloud_resources() if "analyst" in r.name}
    # Client ids are named by position: the list loses its last entry (orchestrator, agents, then the worker).
    assert removed - analysts == {"gateway-gateway-client-app-3"}
    assert analysts <= removed
    assert not [c for c in changes.values() if c["kind"] == "added"]
    changed = {
        name: [s["path"] for s in c["settings"]] for name, c in changes.items() if c["kind"] == "changed"
    }
    assert changed == {
        "gateway-gateway-client-app-2": ["(dependencies)"],  # now the worker's client id, by position
        "gateway-agent-orchestrator-policy": ["value", "(dependencies)"],
        "gateway-openai-policy": ["value", "(dependencies)"],
        "orchestrator-app": [
            "siteConfig.appSettings[AGENTSTAGE_AGENTS][orchestrator].orchestration.delegates",
            "siteConfig.appSettings[AGENTSTAGE_AGENTS][analyst]",
            "siteConfig.appSettings[AGENTSTAGE_AGENT_QUEUES].analyst",
        ],
    }


def test_a_waiver_the_change_adds_shows_as_newly_waived_not_as_fixed(stack_graph: Graphs) -> None:
    base = stack_graph("pilot-dev")
    head = edited(base, "agent-storage", lambda inputs: inputs.update(allowSharedKeyAccess=True))
    context = load_context("pilot-dev")
    [(check, name, _)] = reviewed(base, head).new_blocking
    waiver = WaiverConfig(check=check, resource=name, reason="shared keys for a legacy uploader, until 2027")
    waiving = dataclasses.replace(context, waivers=(*context.waivers, waiver))
    report = review(base, head, labels=("main", "this change"), contexts=(context, waiving))
    assert report.new_blocking == [] and report.cleared_blocking == []
    assert report.newly_waived == [(check, name, waiver.reason)]
    assert f"  newly waived: {check} on agent-storage: {waiver.reason}" in list(
        diff_render.tree_lines(report)
    )
    # The reverse: a change that removes the exposure clears the failure the base had.
    fixed = review(head, base, labels=("main", "this change"), contexts=(context, context))
    assert [item[:2] for item in fixed.cleared_blocking] == [(check, name)] and fixed.touched


def test_a_rule_change_alone_touches_a_stack(stack_graph: Graphs) -> None:
    graph = stack_graph("pilot-dev")
    context = load_context("pilot-dev")
    stricter = StackContext.strictest("as if the rules had changed")  # the enterprise stage's isolation rules
    report = review(graph, copy(graph), labels=("main", "this change"), contexts=(context, stricter))
    assert report.diff.empty and report.touched and report.new_blocking
