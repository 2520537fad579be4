"""checkov on every shipped stack: all resources scanned, no unwaived failure; and the mutation test.

The mutation test flips each secure setting of the list below in a copy of a stack's graph and proves
that a checkov check (built in or ours) that passes on the stack fails on the copy - so a component
that loses one of these defaults cannot pass ``agentstage check``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from conftest import SHIPPED_STACKS, stack_config

from core.graph import ResourceGraph
from policies.checkov import ScanResult, scan
from policies.findings import Outcome

MUTATION_STACK = "pilot-prod"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_checkov_scans_every_resource_of_the_stack(
    stack: str, stack_scan: Callable[[str], ScanResult]
) -> None:
    result = stack_scan(stack)
    assert result.unmapped == [], f"{stack}: no ARM/Terraform/Kubernetes mapping for {result.unmapped}"
    assert result.exported and result.scanned == result.exported


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_stack_has_no_unwaived_checkov_failure(stack: str, stack_scan: Callable[[str], ScanResult]) -> None:
    blocking = sorted(
        f"{f.check_id} on {f.resource_name} ({f.resource_type}): {f.title}"
        for f in stack_scan(stack).blocking
    )
    assert blocking == [], (
        f"{stack}: fix the component or waive in the stack file with a reason:\n" + "\n".join(blocking)
    )


def test_stack_waivers_all_apply(stack_scan: Callable[[str], ScanResult]) -> None:
    """A checkov waiver that matches no failing check is stale and must be removed from the stack file."""
    stale = []
    for stack in SHIPPED_STACKS:
        waived = {
            (f.check_id, f.resource_name) for f in stack_scan(stack).findings if f.outcome is Outcome.WAIVED
        }
        for waiver in stack_config(stack).waivers:
            if waiver.check.startswith("CKV") and not any(
                c == waiver.check and waiver.covers(r) for c, r in waived
            ):
                stale.append(f"{stack}: {waiver.check} on {waiver.resource}")
    assert stale == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(inputs: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = inputs
        for key in parents:
            target = target[key]
        assert leaf in target, f"the stack does not set {path}; the mutation would prove nothing"
        target[leaf] = value

    return mutate


# (resource type, mutation, the check that must catch it)
MUTATIONS: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    (
        "azure-native:cognitiveservices:Account",
        "OpenAI local auth on",
        _set("properties.disableLocalAuth", False),
        "CKV_AZURE_236",
    ),
    (
        "azure-native:storage:StorageAccount",
        "shared keys allowed",
        _set("allowSharedKeyAccess", True),
        "CKV_AGS_AZ_10",
    ),
    (
        "azure-native:storage:StorageAccount",
        "TLS 1.0 allowed",
        _set("minimumTlsVersion", "TLS1_0"),
        "CKV_AZURE_44",
    ),
    (
        "azure-native:storage:StorageAccount",
        "anonymous blob access",
        _set("allowBlobPublicAccess", True),
        "CKV_AGS_AZ_11",
    ),
    (
        "azure-native:keyvault:Vault",
        "purge protection off",
        _set("properties.enablePurgeProtection", False),
        "CKV_AZURE_110",
    ),
    ("azure-native:web:WebApp", "plain HTTP allowed", _set("httpsOnly", False), "CKV_AZURE_14"),
    ("azure-native:web:WebApp", "TLS 1.0 allowed", _set("siteConfig.minTlsVersion", "1.0"), "CKV_AZURE_15"),
    ("azure-native:web:WebApp", "FTP allowed", _set("siteConfig.ftpsState", "AllAllowed"), "CKV_AZURE_78"),
    (
        "azure-native:web:WebApp",
        "package loaded with keys",
        _set("functionAppConfig.deployment.storage.authentication.type", "StorageAccountConnectionString"),
        "CKV_AGS_AZ_9",
    ),
    (
        "azure-native:applicationinsights:Component",
        "instrumentation key auth on",
        _set("disableLocalAuth", False),
        "CKV_AGS_AZ_5",
    ),
    (
        "azure-native:operationalinsights:Workspace",
        "7-day retention",
        _set("retentionInDays", 7),
        "CKV_AGS_AZ_3",
    ),
    (
        "azure-native:operationalinsights:Workspace",
        "shared key auth on",
        _set("features.disableLocalAuth", False),
        "CKV_AGS_AZ_4",
    ),
    (
        "azure-native:cosmosdb:DatabaseAccount",
        "Cosmos keys on",
        _set("disableLocalAuth", False),
        "CKV_AZURE_140",
    ),
    (
        "azure-native:cognitiveservices:Deployment",
        "no content filter",
        _set("properties.raiPolicyName", "Microsoft.Nil"),
        "CKV_AGS_AZ_7",
    ),
]


@pytest.fixture(scope="module")
def mutated(stack_graph: Callable[[str], ResourceGraph]) -> tuple[ResourceGraph, ScanResult]:
    """Every mutation applied to one copy (each hits a different check), scanned once."""
    original = stack_graph(MUTATION_STACK)
    resources = []
    for resource in original.resources:
        inputs = copy.deepcopy(resource.inputs)
        for type_, _, mutate, _ in MUTATIONS:
            if resource.type == type_:
                mutate(inputs)
        resources.append(dataclasses.replace(resource, inputs=inputs))
    graph = ResourceGraph(stack=original.stack, project=original.project, resources=resources)
    return graph, scan(graph, waivers=stack_config(MUTATION_STACK).waivers)


@pytest.mark.parametrize(
    ("resource_type", "mutation", "check_id"),
    [m[:2] + m[3:] for m in MUTATIONS],
    ids=[m[1] for m in MUTATIONS],
)
def test_flipped_secure_setting_is_caught(
    resource_type: str,
    mutation: str,
    check_id: str,
    mutated: tuple[ResourceGraph, ScanResult],
    stack_scan: Callable[[str], ScanResult],
) -> None:
    graph, result = mutated
    targets = [r.urn for r in graph.cloud_resources() if r.type == resource_type]
    assert targets, f"{MUTATION_STACK} has no {resource_type}"
    before = {(f.check_id, f.resource_urn): f.outcome for f in stack_scan(MUTATION_STACK).findings}
    after = {(f.check_id, f.resource_urn): f for f in result.findings}
    for urn in targets:
        assert before.get((check_id, urn)) is Outcome.PASSED, (
            f"{check_id} does not pass on the unmutated {urn}"
        )
        caught = after.get((check_id, urn))
        assert caught is not None and caught.blocks, f"{mutation}: {check_id} did not block {urn}"
