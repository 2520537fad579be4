"""Fixtures for observability rules."""

from __future__ import annotations

from rule_cases.base import Case, ref, res

WORKSPACE = "azure-native:operationalinsights:Workspace"
DIAGNOSTICS = "azure-native:monitor:DiagnosticSetting"
VAULT = "azure-native:keyvault:Vault"


def _vault_diagnostics(logs: list[dict]) -> list:
    workspace = res(WORKSPACE, "logs", {"retentionInDays": 30})
    vault = res(VAULT, "vault")
    setting = res(
        DIAGNOSTICS,
        "vault-diagnostics",
        {
            "resourceUri": ref(vault),
            "workspaceId": ref(workspace),
            "logs": logs,
            "name": "to-workspace",
        },
    )
    return [workspace, vault, setting]


def _app_insights(workspace_based: bool) -> list:
    workspace = res(WORKSPACE, "logs")
    inputs = {"kind": "web", "ingestionMode": "LogAnalytics", "workspaceResourceId": ref(workspace)}
    if not workspace_based:
        inputs = {"kind": "web", "ingestionMode": "ApplicationInsights"}
    return [workspace, res("azure-native:applicationinsights:Component", "appi", inputs)]


CASES = {
    "AGS-AZ-040": Case(
        target="vault",
        passing=lambda: _vault_diagnostics([{"categoryGroup": "allLogs", "enabled": True}]),
        failing=lambda: _vault_diagnostics([{"categoryGroup": "allLogs", "enabled": False}]),
    ),
    "AGS-AZ-041": Case(
        target="logs",
        passing=lambda: [res(WORKSPACE, "logs", {"retentionInDays": 90})],
        failing=lambda: [res(WORKSPACE, "logs", {"retentionInDays": 30})],
        log_retention_days=90,
    ),
    "AGS-AZ-042": Case(
        target="appi", passing=lambda: _app_insights(True), failing=lambda: _app_insights(False)
    ),
}
