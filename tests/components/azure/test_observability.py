"""Observability on its own: the workspace and Application Insights accept Entra ID only."""

from __future__ import annotations

import pytest

from components.azure.observability import Observability, ObservabilityArgs
from components.azure.role_ids import BUILTIN_ROLES
from core.graph import UNKNOWN, ResourceGraph

WORKSPACE = "azure-native:operationalinsights:Workspace"
APP_INSIGHTS = "azure-native:applicationinsights:Component"


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    def factory(context, identity):
        observability = Observability("obs", context, ObservabilityArgs(retention_days=90, daily_quota_gb=5))
        return {
            "grant": observability.grant_telemetry_publish(identity).id,
            "workspaceId": observability.workspace_id,
            "appInsightsId": observability.app_insights_id,
            "connectionString": observability.connection_string,
        }

    # While the observability block is built there is no workspace yet: it must not need one.
    return build(factory, workspace_id=None)


def test_workspace_is_per_gb_with_retention_cap_and_no_local_auth(graph, only):
    workspace = only(graph, WORKSPACE)
    assert workspace.get("sku.name") == "PerGB2018", workspace.urn
    assert workspace.get("retentionInDays") == 90, workspace.urn
    assert workspace.get("workspaceCapping.dailyQuotaGb") == 5, workspace.urn
    assert workspace.get("features.disableLocalAuth") is True, workspace.urn
    assert workspace.get("features.enableLogAccessUsingOnlyResourcePermissions") is True, workspace.urn


def test_app_insights_is_workspace_based_and_entra_only(graph, only):
    workspace, app_insights = only(graph, WORKSPACE), only(graph, APP_INSIGHTS)
    assert app_insights.get("kind") == "web", app_insights.urn
    assert app_insights.get("applicationType") == "web", app_insights.urn
    assert app_insights.get("workspaceResourceId") == workspace.mock_id, app_insights.urn
    assert app_insights.get("ingestionMode") == "LogAnalytics", app_insights.urn
    assert app_insights.get("disableLocalAuth") is True, app_insights.urn


def test_workspace_audits_its_own_queries(graph, only, assert_diagnostics):
    workspace = only(graph, WORKSPACE)
    assert_diagnostics(graph, workspace, workspace.mock_id)
    setting = only(graph, "azure-native:monitor:DiagnosticSetting")
    assert [log["categoryGroup"] for log in setting.get("logs")] == ["audit"], setting.urn


def test_grant_telemetry_publish_is_metrics_publisher_on_app_insights(graph, only, outputs, assert_grant):
    assignment = only(graph, "azure-native:authorization:RoleAssignment")
    assert_grant(assignment, BUILTIN_ROLES["Monitoring Metrics Publisher"], only(graph, APP_INSIGHTS))
    assert outputs(graph)["grant"] == assignment.mock_id, (
        f"grant_telemetry_publish did not return {assignment.urn}"
    )


def test_tags_propagate(graph, only, build):
    for type_ in (WORKSPACE, APP_INSIGHTS):
        resource = only(graph, type_)
        assert resource.get("tags") == build.tags, resource.urn


def test_outputs_name_the_resources(graph, only, outputs):
    received = outputs(graph)
    assert received["workspaceId"] == only(graph, WORKSPACE).mock_id
    assert received["appInsightsId"] == only(graph, APP_INSIGHTS).mock_id
    # Unknown until deployed, and not secret: a consumer's siteConfig must stay checkable.
    assert received["connectionString"] == UNKNOWN


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"retention_days": 7}, "retention_days must be between 30 and 730, got 7"),
        ({"daily_quota_gb": 0}, "daily_quota_gb must be greater than 0"),
    ],
)
def test_args_out_of_range_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        ObservabilityArgs(**args)
