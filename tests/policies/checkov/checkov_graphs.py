"""Small graphs for the exporter and checkov tests, built the way the real program builds them.

``azure_pilot`` records a program with the same azure-native classes and secure settings as the pilot
blueprint, written out flat so the exporter tests do not move when a component is refactored. The AWS and
Kubernetes graphs are hand-built :class:`Resource` objects with inputs shaped as pulumi-aws and
pulumi-kubernetes serialize them (those SDKs are not installed here).
"""

from __future__ import annotations

from typing import Any

from pulumi_azure_native import (
    applicationinsights,
    authorization,
    cosmosdb,
    keyvault,
    monitor,
    operationalinsights,
    resources,
    storage,
    web,
)
from pulumi_azure_native import (
    cognitiveservices as cs,
)

from core.engine import record
from core.graph import UNKNOWN, Resource, ResourceGraph

RG = "rg-ags-test"
LOCATION = "swedencentral"
TAGS = {"owner": "platform-team"}


def _pilot_program() -> None:
    group = resources.ResourceGroup("rg", resource_group_name=RG, location=LOCATION, tags=TAGS)
    workspace = operationalinsights.Workspace(
        "workspace",
        workspace_name="log-ags-test",
        resource_group_name=group.name,
        location=LOCATION,
        sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
        retention_in_days=30,
        features=operationalinsights.WorkspaceFeaturesArgs(disable_local_auth=True),
        tags=TAGS,
    )
    applicationinsights.Component(
        "app-insights",
        resource_name_="appi-ags-test",
        resource_group_name=RG,
        location=LOCATION,
        kind="web",
        application_type="web",
        workspace_resource_id=workspace.id,
        ingestion_mode="LogAnalytics",
        disable_local_auth=True,
        tags=TAGS,
    )
    keyvault.Vault(
        "vault",
        vault_name="kv-ags-test",
        resource_group_name=RG,
        location=LOCATION,
        properties=keyvault.VaultPropertiesArgs(
            tenant_id="00000000-0000-0000-0000-0000000000aa",
            sku=keyvault.SkuArgs(family="A", name="standard"),
            enable_rbac_authorization=True,
            enable_soft_delete=True,
            enable_purge_protection=True,
            public_network_access="Enabled",
            network_acls=keyvault.NetworkRuleSetArgs(default_action="Allow", bypass="AzureServices"),
        ),
        tags=TAGS,
    )
    account = cs.Account(
        "openai",
        account_name="oai-ags-test",
        resource_group_name=RG,
        location=LOCATION,
        kind="OpenAI",
        sku=cs.SkuArgs(name="S0"),
        properties=cs.AccountPropertiesArgs(
            custom_sub_domain_name="oai-ags-test", disable_local_auth=True, public_network_access="Enabled"
        ),
        tags=TAGS,
    )
    cs.Deployment(
        "openai-chat",
        account_name=account.name,
        resource_group_name=RG,
        deployment_name="chat",
        sku=cs.SkuArgs(name="GlobalStandard", capacity=10),
        properties=cs.DeploymentPropertiesArgs(
            model=cs.DeploymentModelArgs(format="OpenAI", name="gpt-4o-mini", version="2024-07-18"),
            rai_policy_name="openai-content-filter",
        ),
    )
    cosmosdb.DatabaseAccount(
        "cosmos",
        account_name="cosmos-ags-test",
        resource_group_name=RG,
        location=LOCATION,
        kind="GlobalDocumentDB",
        database_account_offer_type="Standard",
        locations=[cosmosdb.LocationArgs(location_name=LOCATION, failover_priority=0)],
        disable_local_auth=True,
        disable_key_based_metadata_write_access=True,
        minimal_tls_version="Tls12",
    )
    store = storage.StorageAccount(
        "storage",
        account_name="stagstest",
        resource_group_name=RG,
        location=LOCATION,
        kind="StorageV2",
        sku=storage.SkuArgs(name="Standard_LRS"),
        allow_shared_key_access=False,
        allow_blob_public_access=False,
        enable_https_traffic_only=True,
        minimum_tls_version="TLS1_2",
    )
    storage.BlobContainer(
        "package-container",
        account_name=store.name,
        container_name="app-package",
        resource_group_name=RG,
        public_access="None",
    )
    plan = web.AppServicePlan(
        "plan",
        name="asp-ags-test",
        resource_group_name=RG,
        location=LOCATION,
        kind="functionapp",
        reserved=True,
        sku=web.SkuDescriptionArgs(tier="FlexConsumption", name="FC1"),
    )
    app = web.WebApp(
        "app",
        name="func-ags-test",
        resource_group_name=RG,
        location=LOCATION,
        kind="functionapp,linux",
        server_farm_id=plan.id,
        https_only=True,
        site_config=web.SiteConfigArgs(min_tls_version="1.2", ftps_state="Disabled", http20_enabled=True),
        function_app_config=web.FunctionAppConfigArgs(
            deployment=web.FunctionsDeploymentArgs(
                storage=web.FunctionsDeploymentStorageArgs(
                    type="blobContainer",
                    value="https://stagstest.blob.core.windows.net/app-package",
                    authentication=web.FunctionsDeploymentStorageAuthenticationArgs(
                        type="UserAssignedIdentity", user_assigned_identity_resource_id="/identities/agent"
                    ),
                )
            ),
            runtime=web.FunctionsRuntimeArgs(name="python", version="3.11"),
            scale_and_concurrency=web.FunctionsScaleAndConcurrencyArgs(
                instance_memory_mb=2048, maximum_instance_count=10
            ),
        ),
    )
    web.WebAppFtpAllowed("ftp-basic-auth", name=app.name, resource_group_name=RG, allow=False)
    authorization.RoleAssignment(
        "storage-access",
        principal_id="00000000-0000-0000-0000-0000000000b1",
        principal_type="ServicePrincipal",
        role_definition_id="/providers/Microsoft.Authorization/roleDefinitions/b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        scope=store.id,
    )
    for name, target in (("vault-diagnostics", "vault"), ("openai-diagnostics", "openai")):
        monitor.DiagnosticSetting(
            name,
            name="to-workspace",
            resource_uri=f"/subscriptions/0/resourceGroups/{RG}/providers/x/{target}",
            workspace_id=workspace.id,
            logs=[monitor.DiagnosticsLogSettingsArgs(category_group="allLogs", enabled=True)],
        )
    storage.Blob("package", account_name=store.name, container_name="app-package", resource_group_name=RG)


def azure_pilot() -> ResourceGraph:
    """A pilot-shaped Azure graph, recorded from real SDK classes."""
    return record(_pilot_program, stack="fixture")


def hand_built(stack: str, *resources: tuple[str, str, dict[str, Any]]) -> ResourceGraph:
    """A graph of ``(type, name, inputs)`` resources with the ids and URNs the engine would give them."""
    return ResourceGraph(
        stack=stack,
        project="agentstage",
        resources=[
            Resource(
                urn=f"urn:pulumi:{stack}::agentstage::{type_}::{name}",
                type=type_,
                name=name,
                custom=True,
                inputs=inputs,
                mock_id=f"/agentstage-plan/{type_}/{name}",
            )
            for type_, name, inputs in resources
        ],
    )


def aws_graph() -> ResourceGraph:
    """An S3 bucket with a public access block pointing at it, an SQS queue, a Lambda and its role."""
    bucket_id = "/agentstage-plan/aws:s3/bucket:Bucket/documents"
    return hand_built(
        "aws-fixture",
        (
            "aws:s3/bucket:Bucket",
            "documents",
            {"bucket": "ags-documents", "tags": {"owner": "platform-team"}},
        ),
        (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "documents-public-access",
            {
                "bucket": bucket_id,
                "blockPublicAcls": True,
                "blockPublicPolicy": True,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
        ),
        (
            "aws:sqs/queue:Queue",
            "tasks",
            {"name": "ags-tasks", "sqsManagedSseEnabled": True, "visibilityTimeoutSeconds": 60.0},
        ),
        (
            "aws:iam/role:Role",
            "agent-role",
            {"assumeRolePolicy": '{"Version":"2012-10-17","Statement":[]}', "name": "ags-agent"},
        ),
        (
            "aws:lambda/function:Function",
            "agent",
            {
                "role": UNKNOWN,
                "runtime": "python3.11",
                "handler": "lambda_handler.handler",
                "memorySize": 1024.0,
                "tracingConfig": {"mode": "Active"},
                "environment": {"variables": {"AGENTSTAGE_CLOUD": "aws"}},
            },
        ),
    )


def kubernetes_graph() -> ResourceGraph:
    """A Deployment (checkov splits its pod template into a second resource), a Service and a NetworkPolicy."""
    labels = {"app": "agent"}
    container = {
        "name": "agent",
        "image": "acragstest.azurecr.io/agent@sha256:" + "0" * 64,
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
        },
        "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "250m", "memory": "512Mi"},
        },
    }
    return hand_built(
        "k8s-fixture",
        (
            "kubernetes:apps/v1:Deployment",
            "agent",
            {
                "metadata": {"name": "agent", "namespace": "agents", "labels": labels},
                "spec": {
                    "replicas": 2.0,
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
                },
            },
        ),
        (
            "kubernetes:core/v1:Service",
            "agent-service",
            {
                "metadata": {"namespace": "agents"},
                "spec": {"selector": labels, "ports": [{"port": 80.0, "targetPort": 8000.0}]},
            },
        ),
        (
            "kubernetes:networking.k8s.io/v1:NetworkPolicy",
            "default-deny",
            {
                "metadata": {"name": "default-deny", "namespace": "agents"},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
            },
        ),
    )
