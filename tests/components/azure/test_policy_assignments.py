"""Policy guard on its own: built-in definitions on the resource group, denying only where that is safe."""

from __future__ import annotations

import re

import pytest

from components.azure.policy_assignments import BUILTIN_POLICIES, BuiltinPolicy, PolicyArgs, PolicyGuard
from core.graph import Resource, ResourceGraph

ASSIGNMENT = "azure-native:authorization:PolicyAssignment"
BUILTIN_ID = re.compile(
    r"^/providers/Microsoft\.Authorization/policyDefinitions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
# Deny would block agentstage's own deployment for these, so enforce mode must never use it.
NEVER_DENY = {"ai-network", "ai-private-link", "ai-diagnostic-logs", "function-https"}
DENY_WHEN_ISOLATED = {"cognitive-public-network", "keyvault-public-network"}


def _program(args: PolicyArgs):
    def factory(context, identity):
        guard = PolicyGuard("audit", context, args)
        return {f"assignment-{key}": assignment_id for key, assignment_id in guard.assignment_ids.items()}

    return factory


@pytest.fixture(scope="module")
def enforced(build) -> ResourceGraph:
    return build(_program(PolicyArgs()), isolated=True)


def _by_key(graph: ResourceGraph) -> dict[str, Resource]:
    return {resource.name.removeprefix("audit-"): resource for resource in graph.of_type(ASSIGNMENT)}


def _effect(assignment: Resource) -> str:
    return assignment.get("parameters.effect.value")


def test_every_table_entry_is_assigned_to_its_builtin_definition(enforced, outputs):
    assignments = _by_key(enforced)
    assert set(assignments) == set(BUILTIN_POLICIES)
    for key, assignment in assignments.items():
        assert assignment.get("policyDefinitionId") == BUILTIN_POLICIES[key].definition_id, key
        assert BUILTIN_ID.match(assignment.get("policyDefinitionId")), key
        assert outputs(enforced)[f"assignment-{key}"] == assignment.mock_id, key


def test_definition_guids_are_distinct():
    guids = [policy.guid for policy in BUILTIN_POLICIES.values()]
    assert len(set(guids)) == len(guids)


def test_scope_is_the_resource_group(enforced, build):
    for assignment in enforced.of_type(ASSIGNMENT):
        assert (
            assignment.get("scope")
            == f"/subscriptions/{build.subscription_id}/resourceGroups/rg-agentstage-test"
        )
        assert assignment.get("enforcementMode") == "Default", assignment.urn
        assert "identity" not in assignment.inputs, f"{assignment.urn}: no effect here needs an identity"


def test_enforce_mode_denies_exactly_where_the_table_allows_it(enforced):
    for key, assignment in _by_key(enforced).items():
        policy = BUILTIN_POLICIES[key]
        expected = "Deny" if key not in NEVER_DENY else policy.audit_effect
        assert _effect(assignment) == expected, key
        assert _effect(assignment) in policy.effects, f"{key}: effect not allowed by the definition"


def test_public_network_policies_only_deny_in_isolated_stages(build):
    public = _by_key(build(_program(PolicyArgs())))
    for key, assignment in public.items():
        denies = key not in NEVER_DENY | DENY_WHEN_ISOLATED
        assert (_effect(assignment) == "Deny") == denies, key


def test_audit_only_mode_never_denies(build):
    audited = _by_key(build(_program(PolicyArgs(mode="audit-only")), isolated=True))
    assert set(audited) == set(BUILTIN_POLICIES)
    for key, assignment in audited.items():
        assert _effect(assignment) in ("Audit", "AuditIfNotExists"), key
        assert _effect(assignment) in BUILTIN_POLICIES[key].effects, key


def test_diagnostic_logs_audit_with_audit_if_not_exists(enforced):
    assert _effect(_by_key(enforced)["ai-diagnostic-logs"]) == "AuditIfNotExists"


def test_non_compliance_messages_say_how_to_fix(enforced):
    for key, assignment in _by_key(enforced).items():
        messages = assignment.get("nonComplianceMessages")
        assert messages == [{"message": BUILTIN_POLICIES[key].remediation}], key
        assert len(assignment.get("displayName")) <= 128, key
        assert len(assignment.get("policyAssignmentName")) <= 64, key


def test_exclusions_and_not_scopes(build):
    excluded_resource = "/subscriptions/s/resourceGroups/rg-agentstage-test/providers/Microsoft.Storage/storageAccounts/legacy"
    graph = build(_program(PolicyArgs(exclusions=("aks-local-accounts",), not_scopes=(excluded_resource,))))
    assignments = _by_key(graph)
    assert "aks-local-accounts" not in assignments
    assert len(assignments) == len(BUILTIN_POLICIES) - 1
    assert all(a.get("notScopes") == [excluded_resource] for a in assignments.values())


def test_table_refuses_deny_where_the_definition_does_not_allow_it():
    with pytest.raises(ValueError, match="'x' does not allow Deny"):
        BuiltinPolicy("x", "0" * 8, ("Audit", "Disabled"), "always", "r", "m", "s")
    with pytest.raises(ValueError, match="'x' has no audit effect"):
        BuiltinPolicy("x", "0" * 8, ("Deny", "Disabled"), "always", "r", "m", "s")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"mode": "strict"}, "mode must be 'enforce' or 'audit-only', got 'strict'"),
        ({"exclusions": ("no-such-policy",)}, "exclusions name unknown policies: no-such-policy; known: "),
    ],
)
def test_bad_args_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        PolicyArgs(**args)
