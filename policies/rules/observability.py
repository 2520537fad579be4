"""Observability: every resource's logs reach the workspace, kept as long as the stack requires."""

from __future__ import annotations

from core.graph import Resource, ResourceGraph
from policies.findings import Severity
from policies.rules.context import StackContext
from policies.rules.model import Rule, Verdict, failed, passed
from policies.rules.predicates import (
    DIAGNOSTIC_SETTING,
    DIAGNOSTICS_TYPES,
    WORKSPACE,
    is_workspace,
    referencing,
    shown,
)

APP_INSIGHTS = "azure-native:applicationinsights:Component"
AZURE_DEFAULT_RETENTION_DAYS = 30


def _diagnostics_to_workspace(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    settings = referencing(graph, DIAGNOSTIC_SETTING, "resourceUri", resource)
    if not settings:
        return failed("no diagnostic setting sends its logs anywhere")
    problems = []
    for setting in settings:
        workspace = setting.get("workspaceId")
        logs = [
            log for log in setting.get("logs") or [] if isinstance(log, dict) and log.get("enabled") is True
        ]
        if not is_workspace(graph, workspace):
            problems.append(
                f"{setting.name} sends to workspaceId {shown(workspace)}, not a Log Analytics workspace"
            )
        elif not logs:
            problems.append(f"{setting.name} enables no log category")
        else:
            return passed(f"{setting.name} sends logs ({len(logs)} enabled entries) to the workspace")
    return failed("; ".join(problems))


def _retention(resource: Resource, _graph: ResourceGraph, ctx: StackContext) -> Verdict:
    value = resource.get("retentionInDays")
    days = AZURE_DEFAULT_RETENTION_DAYS if value is None else value
    if not isinstance(days, int) or days < ctx.log_retention_days:
        return failed(
            f"retentionInDays is {shown(value)}; the stack requires at least {ctx.log_retention_days} days"
        )
    return passed(f"keeps logs {days} days (stack minimum {ctx.log_retention_days})")


def _workspace_based(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    workspace = resource.get("workspaceResourceId")
    mode = resource.get("ingestionMode")
    if not is_workspace(graph, workspace):
        return failed(
            f"workspaceResourceId is {shown(workspace)}: classic (non-workspace) Application Insights"
        )
    if mode != "LogAnalytics":
        return failed(f"ingestionMode is {shown(mode)}; it must be 'LogAnalytics'")
    return passed("workspace-based, ingesting into Log Analytics")


RULES = (
    Rule(
        id="AGS-AZ-040",
        title="Resource logs are sent to the Log Analytics workspace",
        severity=Severity.MEDIUM,
        rationale=(
            "Without a diagnostic setting Azure keeps no resource logs: who read a secret, who called a "
            "model, which queries ran cannot be investigated after an incident, and alerts have nothing to "
            "fire on."
        ),
        remediation=(
            "Create a `monitor:DiagnosticSetting` with resourceUri set to the resource, workspaceId set to the "
            "stack's workspace and at least the `allLogs` (or `audit`) category group enabled - "
            "components do this with `send_diagnostics(...)`."
        ),
        types=DIAGNOSTICS_TYPES,
        check=_diagnostics_to_workspace,
        needs_graph=True,
        reference="https://learn.microsoft.com/azure/azure-monitor/essentials/diagnostic-settings",
    ),
    Rule(
        id="AGS-AZ-041",
        title="Log retention meets the stack's minimum",
        severity=Severity.MEDIUM,
        rationale=(
            "Incident investigations and audits look back weeks or months; logs deleted sooner than the "
            "stack's `logRetentionDays` (set by the environment's compliance needs) are evidence lost."
        ),
        remediation="Set the workspace's `retentionInDays` to at least the stack's `agentstage:logRetentionDays`.",
        types=(WORKSPACE,),
        check=_retention,
        reference="https://learn.microsoft.com/azure/azure-monitor/logs/data-retention-configure",
    ),
    Rule(
        id="AGS-AZ-042",
        title="Application Insights is workspace-based",
        severity=Severity.MEDIUM,
        rationale=(
            "Classic Application Insights keeps telemetry in a separate store with its own retention and "
            "access model (and is retired); workspace-based telemetry shares the workspace's RBAC, retention "
            "and queries with every other log."
        ),
        remediation="Set `workspaceResourceId` to the stack's workspace and `ingestionMode: LogAnalytics`.",
        types=(APP_INSIGHTS,),
        check=_workspace_based,
        needs_graph=True,
        reference="https://learn.microsoft.com/azure/azure-monitor/app/convert-classic-resource",
    ),
)
