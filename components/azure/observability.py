"""Observability: the Log Analytics workspace every block reports to, and Application Insights on top.

Application Insights is workspace-based, so traces, token metrics and logs land in one workspace, under
one retention and one access model. Local (instrumentation-key) auth is off on both: ingestion and
queries need an Entra ID token, so a leaked connection string cannot be used to forge or read telemetry.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import applicationinsights, authorization, operationalinsights

from components.azure.context import AzureContext
from components.azure.dashboard import DashboardArgs, deploy_dashboard
from components.azure.diagnostics import send_diagnostics
from components.azure.identity import ManagedIdentity
from components.azure.roles import assign_role
from components.base import Component


@dataclass(frozen=True)
class ObservabilityArgs:
    """Settings of the workspace.

    ``retention_days`` (default 30): how long logs and traces are kept; 30 days are included in the
    PerGB2018 price, longer retention is billed per GB and month. Azure accepts 30 to 730.
    ``daily_quota_gb`` (default ``None``: no cap): a hard daily ingestion cap. Off by default because
    once reached Azure drops telemetry until the next day; set it where cost must never overrun.
    ``dashboard`` (default ``None``: no workbook): the latency, cost, error and token workbook, priced
    from its args. It is part of the args rather than a separate call so the stack's config decides it,
    and the block's outputs are complete when it registers them.
    """

    retention_days: int = 30
    daily_quota_gb: float | None = None
    dashboard: DashboardArgs | None = None

    def __post_init__(self) -> None:
        if not 30 <= self.retention_days <= 730:
            raise ValueError(f"retention_days must be between 30 and 730, got {self.retention_days}")
        if self.daily_quota_gb is not None and self.daily_quota_gb <= 0:
            raise ValueError(
                f"daily_quota_gb must be greater than 0 (or None for no cap), got {self.daily_quota_gb}"
            )


class Observability(Component):
    """A Log Analytics workspace and a workspace-based Application Insights (``agentstage:azure:Observability``).

    Outputs: ``workspace_id`` (hand it to :meth:`AzureContext.with_workspace`), ``app_insights_id``,
    ``dashboard_id`` (``None`` without a dashboard) and ``connection_string`` (where the runtime exports
    telemetry). It is deliberately *not* marked secret:
    Microsoft does not treat it as a credential, and with local auth off nothing can be ingested with it
    alone. Marking it would also hide the whole ``siteConfig`` of every app that uses it (Pulumi lifts
    secretness to the top-level input), blinding the policy checks on TLS, FTPS and app settings.
    """

    def __init__(
        self,
        name: str,
        context: AzureContext,
        args: ObservabilityArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("azure", "Observability", name, opts)
        self._name = name
        self._context = context
        workspace = operationalinsights.Workspace(
            f"{name}-workspace",
            workspace_name=context.naming.name("log_workspace", name),
            resource_group_name=context.resource_group_name,
            location=context.location,
            sku=operationalinsights.WorkspaceSkuArgs(
                name=operationalinsights.WorkspaceSkuNameEnum.PER_GB2018
            ),
            retention_in_days=args.retention_days,
            workspace_capping=(
                operationalinsights.WorkspaceCappingArgs(daily_quota_gb=args.daily_quota_gb)
                if args.daily_quota_gb is not None
                else None
            ),
            features=operationalinsights.WorkspaceFeaturesArgs(
                disable_local_auth=True,
                # Resource-context access: whoever may read a resource reads its logs, and only those.
                enable_log_access_using_only_resource_permissions=True,
            ),
            tags=dict(context.tags),
            opts=self.child(),
        )
        app_insights = applicationinsights.Component(
            f"{name}-app-insights",
            resource_name_=context.naming.name("app_insights", name),
            resource_group_name=context.resource_group_name,
            location=context.location,
            kind="web",
            application_type=applicationinsights.ApplicationType.WEB,
            workspace_resource_id=workspace.id,
            ingestion_mode=applicationinsights.IngestionMode.LOG_ANALYTICS,
            disable_local_auth=True,
            # What the REST API expects from a client that is not the portal (see the SDK's enum docs).
            flow_type=applicationinsights.FlowType.BLUEFIELD,
            request_source=applicationinsights.RequestSource.REST,
            tags=dict(context.tags),
            opts=self.child(),
        )
        # The workspace audits its own queries (LAQueryLogs): telemetry can hold user prompts, so who
        # read it must be on record. Only the audit group: metrics and job logs add cost, not accountability.
        # Application Insights gets no diagnostic setting: its telemetry already lands in this workspace.
        send_diagnostics(
            f"{name}-workspace",
            context=context.with_workspace(workspace.id),
            resource_id=workspace.id,
            parent=self,
            log_category_groups=("audit",),
            metrics=False,
        )
        self.workspace_id: pulumi.Output[str] = workspace.id
        self.app_insights_id: pulumi.Output[str] = app_insights.id
        self.connection_string: pulumi.Output[str] = app_insights.connection_string
        self.dashboard_id: pulumi.Output[str] | None = (
            deploy_dashboard(
                name,
                context=context,
                args=args.dashboard,
                app_insights_id=app_insights.id,
                workspace_id=workspace.id,
                parent=self,
            ).id
            if args.dashboard is not None
            else None
        )
        self.register_outputs(
            {
                "workspace_id": self.workspace_id,
                "app_insights_id": self.app_insights_id,
                "dashboard_id": self.dashboard_id,
                "connection_string": self.connection_string,
            }
        )

    def grant_telemetry_publish(self, identity: ManagedIdentity) -> authorization.RoleAssignment:
        """Let ``identity`` send telemetry: **Monitoring Metrics Publisher** on the Application Insights resource.

        Required because local auth is off: the exporter authenticates with the identity's token, and
        this role on this one component is all ingestion needs (it grants no read access).
        """
        return assign_role(
            f"{self._name}-telemetry-publish-{identity.label}",
            context=self._context,
            scope=self.app_insights_id,
            role="Monitoring Metrics Publisher",
            identity=identity,
            parent=self,
        )
