"""Shared policy-test data: a small compliant graph (imported by tests; the conftest name is not unique)."""

from __future__ import annotations

from rule_cases.base import STACK, ref, res

from core.graph import ResourceGraph

TAGS = {"owner": "platform-team", "costCenter": "4711"}
WORKSPACE = "azure-native:operationalinsights:Workspace"
VAULT = "azure-native:keyvault:Vault"
DIAGNOSTICS = "azure-native:monitor:DiagnosticSetting"


def compliant_graph(*, purge_protection: bool = True) -> ResourceGraph:
    """A workspace and a vault, both hardened and sending logs to the workspace; optionally purgeable."""
    workspace = res(
        WORKSPACE,
        "logs",
        {
            "location": "swedencentral",
            "tags": TAGS,
            "retentionInDays": 30,
            "sku": {"name": "PerGB2018"},
            "features": {"disableLocalAuth": True},
        },
    )
    vault = res(
        VAULT,
        "vault",
        {
            "location": "swedencentral",
            "tags": TAGS,
            "properties": {
                "enableRbacAuthorization": True,
                "enableSoftDelete": True,
                "enablePurgeProtection": purge_protection,
                "publicNetworkAccess": "Enabled",
                "sku": {"family": "A", "name": "standard"},
            },
        },
    )
    settings = [
        res(
            DIAGNOSTICS,
            f"{target.name}-diagnostics",
            {
                "resourceUri": ref(target),
                "workspaceId": ref(workspace),
                "logs": [{"categoryGroup": "audit", "enabled": True}],
            },
        )
        for target in (workspace, vault)
    ]
    return ResourceGraph(stack=STACK, project="agentstage", resources=[workspace, vault, *settings])
