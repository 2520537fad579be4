"""Fixtures for identity rules."""

from __future__ import annotations

import json

from components.azure.role_ids import BUILTIN_ROLES, FORBIDDEN_ROLES
from rule_cases.base import Case, flip, ref, res

ROLE_PREFIX = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/"
)
ACCOUNT = "azure-native:cognitiveservices:Account"
ASSIGNMENT = "azure-native:authorization:RoleAssignment"
DEFINITION = "azure-native:authorization:RoleDefinition"


def _assignment(role_definition_id: str) -> list:
    account = res(ACCOUNT, "models-account", {"kind": "OpenAI"})
    return [
        account,
        res(
            ASSIGNMENT,
            "grant",
            {
                "roleDefinitionId": role_definition_id,
                "scope": ref(account),
                "principalType": "ServicePrincipal",
            },
        ),
    ]


def _custom_role_assignment(actions: list[str]) -> list:
    role = res(DEFINITION, "agent-role", {"roleName": "agent", "permissions": [{"actions": actions}]})
    return [role, res(ASSIGNMENT, "grant", {"roleDefinitionId": ref(role), "scope": "/subscriptions/x"})]


def _iam_policy(action: str) -> dict:
    return {
        "policy": json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}
        )
    }


CASES = {
    "AGS-AZ-001": flip(
        ACCOUNT,
        "models-account",
        {"kind": "OpenAI", "properties": {"disableLocalAuth": True}},
        {"properties": {"disableLocalAuth": False}},
    ),
    "AGS-AZ-002": flip(
        "azure-native:search:Service", "search", {"disableLocalAuth": True}, {"disableLocalAuth": None}
    ),
    "AGS-AZ-003": flip(
        "azure-native:servicebus:Namespace", "bus", {"disableLocalAuth": True}, {"disableLocalAuth": False}
    ),
    "AGS-AZ-004": flip(
        "azure-native:cosmosdb:DatabaseAccount",
        "cosmos",
        {"disableLocalAuth": True},
        {"disableLocalAuth": False},
    ),
    "AGS-AZ-005": flip(
        "azure-native:storage:StorageAccount",
        "storage",
        {"allowSharedKeyAccess": False},
        {"allowSharedKeyAccess": None},
    ),
    "AGS-AZ-006": flip(
        "azure-native:applicationinsights:Component",
        "appi",
        {"disableLocalAuth": True},
        {"disableLocalAuth": False},
    ),
    "AGS-AZ-007": flip(
        "azure-native:operationalinsights:Workspace",
        "logs",
        {"features": {"disableLocalAuth": True}},
        {"features": {"disableLocalAuth": False}},
    ),
    "AGS-AZ-008": flip(
        "azure-native:containerregistry:Registry",
        "acr",
        {"adminUserEnabled": False},
        {"adminUserEnabled": True},
    ),
    "AGS-AZ-009": flip(
        "azure-native:web:WebApp",
        "app",
        {"identity": {"type": "UserAssigned", "userAssignedIdentities": ["/agentstage-plan/id/agent"]}},
        {"identity": {"type": "None", "userAssignedIdentities": None}},
    ),
    "AGS-AZ-010": Case(
        target="grant",
        passing=lambda: _assignment(ROLE_PREFIX + BUILTIN_ROLES["Cognitive Services OpenAI User"]),
        failing=lambda: _assignment(ROLE_PREFIX + FORBIDDEN_ROLES["Owner"]),
    ),
    "AGS-AZ-012": flip("azure-native:web:WebAppScmAllowed", "app-scm", {"allow": False}, {"allow": True}),
    "AGS-AZ-011": flip(
        DEFINITION,
        "agent-role",
        {"permissions": [{"actions": ["*/read", "Microsoft.Storage/storageAccounts/read"]}]},
        {"permissions": [{"actions": ["Microsoft.Storage/*"]}]},
    ),
    "AGS-AWS-001": flip(
        "aws:iam/policy:Policy", "agent-policy", _iam_policy("sqs:SendMessage"), _iam_policy("*")
    ),
}

# A role assignment of a wildcard custom role is caught at the assignment too (not a registry case).
WILDCARD_CUSTOM_ASSIGNMENT = Case(
    target="grant",
    passing=lambda: _custom_role_assignment(["Microsoft.CognitiveServices/accounts/read"]),
    failing=lambda: _custom_role_assignment(["*"]),
)
