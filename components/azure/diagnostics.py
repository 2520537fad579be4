"""Diagnostic settings: every resource that supports them sends logs and metrics to the workspace."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
from pulumi_azure_native import monitor

from components.azure.context import AzureContext


def send_diagnostics(
    name: str,
    *,
    context: AzureContext,
    resource_id: pulumi.Input[str],
    parent: pulumi.Resource,
    log_category_groups: Sequence[str] = ("allLogs",),
    metrics: bool = True,
) -> monitor.DiagnosticSetting:
    """Send ``resource_id``'s logs (by category group) and metrics to the shared workspace.

    Resource-specific tables (``log_analytics_destination_type="Dedicated"``) are used: they are
    cheaper to query and retain than the legacy AzureDiagnostics table.
    """
    if context.workspace_id is None:
        raise ValueError(f"diagnostics for '{name}' need a workspace: build the observability block first")
    return monitor.DiagnosticSetting(
        f"{name}-diagnostics",
        name="to-workspace",
        resource_uri=resource_id,
        workspace_id=context.workspace_id,
        log_analytics_destination_type="Dedicated",
        logs=[
            monitor.DiagnosticsLogSettingsArgs(category_group=group, enabled=True)
            for group in log_category_groups
        ],
        metrics=[monitor.DiagnosticsMetricSettingsArgs(category="AllMetrics", enabled=True)]
        if metrics
        else None,
        opts=pulumi.ResourceOptions(parent=parent),
    )
