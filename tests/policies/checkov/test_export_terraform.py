"""The Terraform-plan exporter on the foundation's and the enterprise stage's AWS types: names, block shapes
and references.

checkov reads only the attribute names its checks name and follows only the links written as
``configuration`` references, so each test pins one of those: a renamed block, a Terraform list, or a
reference resolved by id, ARN or another naming attribute - and the cases where a value must not become one.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from aws_enterprise_stage import ENTERPRISE_TYPES, enterprise_graph
from aws_linked_graph import BUCKET, DATABASE, ENDPOINTS_SG, KEY_ARN, linked_graph

from core.graph import Resource, ResourceGraph
from policies.export.terraform import PLAN_FILE, TERRAFORM_TYPES, export_terraform

# Every pulumi-aws type of the foundation stack that had no Terraform type before, and the ones its
# failing checks need (a request validator, a cluster parameter group).
FOUNDATION_TYPES = {
    "aws:apigateway/account:Account": "aws_api_gateway_account",
    "aws:apigateway/apiKey:ApiKey": "aws_api_gateway_api_key",
    "aws:apigateway/authorizer:Authorizer": "aws_api_gateway_authorizer",
    "aws:apigateway/deployment:Deployment": "aws_api_gateway_deployment",
    "aws:apigateway/integration:Integration": "aws_api_gateway_integration",
    "aws:apigateway/method:Method": "aws_api_gateway_method",
    "aws:apigateway/methodSettings:MethodSettings": "aws_api_gateway_method_settings",
    "aws:apigateway/requestValidator:RequestValidator": "aws_api_gateway_request_validator",
    "aws:apigateway/resource:Resource": "aws_api_gateway_resource",
    "aws:apigateway/restApi:RestApi": "aws_api_gateway_rest_api",
    "aws:apigateway/stage:Stage": "aws_api_gateway_stage",
    "aws:apigateway/usagePlan:UsagePlan": "aws_api_gateway_usage_plan",
    "aws:apigateway/usagePlanKey:UsagePlanKey": "aws_api_gateway_usage_plan_key",
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": "aws_cloudwatch_log_resource_policy",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "aws_default_security_group",
    "aws:ec2/routeTable:RouteTable": "aws_route_table",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "aws_route_table_association",
    "aws:lambda/invocation:Invocation": "aws_lambda_invocation",
    "aws:rds/cluster:Cluster": "aws_rds_cluster",
    "aws:rds/clusterInstance:ClusterInstance": "aws_rds_cluster_instance",
    "aws:rds/clusterParameterGroup:ClusterParameterGroup": "aws_rds_cluster_parameter_group",
    "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "aws_s3_bucket_lifecycle_configuration",
    "aws:s3/bucketNotification:BucketNotification": "aws_s3_bucket_notification",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "aws_s3_bucket_ownership_controls",
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": "aws_sqs_queue_redrive_allow_policy",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "aws_vpc_security_group_egress_rule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "aws_vpc_security_group_ingress_rule",
    "aws:wafv2/webAcl:WebAcl": "aws_wafv2_web_acl",
    "aws:wafv2/webAclAssociation:WebAclAssociation": "aws_wafv2_web_acl_association",
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": "aws_wafv2_web_acl_logging_configuration",
}


class Plan:
    """One exported plan, read back by Terraform address."""

    def __init__(self, graph: ResourceGraph) -> None:
        export = export_terraform(graph.resources)
        assert export.unmapped == [] and export.expected == len(graph.resources)
        document = json.loads(export.files[PLAN_FILE])
        root = document["planned_values"]["root_module"]["resources"]
        self.values = {r["address"]: r["values"] for r in root}
        config = document["configuration"]["root_module"]["resources"]
        self.expressions = {r["address"]: r["expressions"] for r in config}


def _references(*addresses: str) -> dict[str, list[str]]:
    """The expression of a reference to ``address.attribute`` values, as Terraform writes it."""
    return {"references": [name for address in addresses for name in (address, address.rsplit(".", 1)[0])]}


def _with(
    graph: ResourceGraph, changes: dict[str, dict[str, Any]], extra: tuple[Resource, ...] = ()
) -> ResourceGraph:
    """``graph`` with fields of the resources named in ``changes`` replaced, plus ``extra`` resources."""
    resources = [dataclasses.replace(r, **changes.get(r.name, {})) for r in graph.resources]
    return dataclasses.replace(graph, resources=[*resources, *extra])


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan(linked_graph())


@pytest.mark.parametrize(("token", "tf_type"), FOUNDATION_TYPES.items())
def test_foundation_type_has_its_terraform_type(token: str, tf_type: str) -> None:
    assert TERRAFORM_TYPES[token] == tf_type


def test_web_acl_repeated_blocks_take_terraform_singular_names(plan: Plan) -> None:
    acl = plan.values["aws_wafv2_web_acl.firewall-acl"]
    assert "rules" not in acl and [rule["name"] for rule in acl["rule"]] == [
        "AnonymousIp",
        "KnownBadInputs",
        "BodySize",
    ]
    managed = acl["rule"][0]["statement"][0]["managed_rule_group_statement"][0]
    assert managed["rule_action_override"] == [
        {"name": "HostingProviderIPList", "action_to_use": [{"count": [{}]}]}
    ]
    size = acl["rule"][2]["statement"][0]["size_constraint_statement"][0]
    assert size["text_transformation"] == [{"priority": 0, "type": "NONE"}]
    assert [body["key"] for body in acl["custom_response_body"]] == ["too-large"]
    assert acl["association_config"] == [
        {"request_body": [{"api_gateway": [{"default_size_inspection_limit": "KB_64"}]}]}
    ]
    assert acl["rule"][0]["override_action"] == [{"none": [{}]}]


def test_web_acl_logging_configuration_filters_and_links_by_arn(plan: Plan) -> None:
    """CKV2_AWS_31 follows resource_arn, the web ACL's ARN (AWS also names the configuration by it)."""
    address = "aws_wafv2_web_acl_logging_configuration.firewall-logging"
    values, expressions = plan.values[address], plan.expressions[address]
    condition = values["logging_filter"][0]["filter"][0]["condition"]
    assert condition == [{"action_condition": [{"action": "BLOCK"}]}]
    assert "resource_arn" not in values
    assert expressions["resource_arn"] == _references("aws_wafv2_web_acl.firewall-acl.arn")
    assert values["log_destination_configs"] == [None]
    assert expressions["log_destination_configs"] == _references("aws_cloudwatch_log_group.firewall-logs.arn")


def test_web_acl_association_links_the_stage_and_the_acl_by_arn(plan: Plan) -> None:
    expressions = plan.expressions["aws_wafv2_web_acl_association.firewall-stage"]
    assert expressions["resource_arn"] == _references("aws_api_gateway_stage.gateway-stage.arn")
    assert expressions["web_acl_arn"] == _references("aws_wafv2_web_acl.firewall-acl.arn")
    assert plan.values["aws_wafv2_web_acl_association.firewall-stage"] == {}


def test_nested_list_of_ids_becomes_nulls_and_block_references(plan: Plan) -> None:
    """CKV2_AWS_5 sees a security group attached only through the function's vpc_config reference."""
    function = "aws_lambda_function.ingest-function"
    assert plan.values[function]["vpc_config"] == [{"security_group_ids": [None], "subnet_ids": [None]}]
    assert plan.expressions[function]["vpc_config"] == [
        {
            "security_group_ids": _references("aws_security_group.network-functions.id"),
            "subnet_ids": _references("aws_subnet.network-private-1.id"),
        }
    ]
    cluster = plan.expressions["aws_rds_cluster.knowledge-cluster"]
    assert cluster["vpc_security_group_ids"] == _references("aws_security_group.network-database.id")


def test_a_list_keeps_its_known_elements_in_place() -> None:
    shared = {"inputs": {"securityGroupIds": ["sg-shared-by-another-team", ENDPOINTS_SG]}}
    graph = _with(linked_graph(), {"network-sqs": shared})
    endpoint = "aws_vpc_endpoint.network-sqs"
    got = Plan(graph)
    assert got.values[endpoint]["security_group_ids"] == ["sg-shared-by-another-team", None]
    assert got.expressions[endpoint]["security_group_ids"] == _references(
        "aws_security_group.network-endpoints.id"
    )


def test_rest_api_references_take_terraform_names(plan: Plan) -> None:
    stage = plan.expressions["aws_api_gateway_stage.gateway-stage"]
    assert stage["rest_api_id"] == _references("aws_api_gateway_rest_api.gateway-api.id")
    assert stage["deployment_id"] == _references("aws_api_gateway_deployment.gateway-deployment.id")
    assert stage["access_log_settings"][0]["destination_arn"] == _references(
        "aws_cloudwatch_log_group.gateway-logs.arn"
    )
    assert "rest_api" not in plan.values["aws_api_gateway_method.gateway-proxy-any"]


def test_stage_is_referenced_by_its_stage_name(plan: Plan) -> None:
    """CKV2_AWS_4 needs the method settings linked to the stage they configure."""
    settings = plan.expressions["aws_api_gateway_method_settings.gateway-settings"]
    assert settings["stage_name"] == _references("aws_api_gateway_stage.gateway-stage.stage_name")
    usage = plan.expressions["aws_api_gateway_usage_plan.gateway-plan"]
    assert usage["api_stages"][0]["stage"] == _references("aws_api_gateway_stage.gateway-stage.stage_name")
    assert plan.values["aws_api_gateway_stage.gateway-stage"]["stage_name"] == "live"  # its own name


def test_attribute_name_picks_between_resources_sharing_an_id(plan: Plan) -> None:
    """The cluster and its subnet group are both named ags-knowledge; the instance depends on both."""
    instance = plan.expressions["aws_rds_cluster_instance.knowledge-writer"]
    assert instance["cluster_identifier"] == _references("aws_rds_cluster.knowledge-cluster.id")
    assert instance["db_subnet_group_name"] == _references("aws_db_subnet_group.knowledge-subnets.id")


def test_own_name_is_never_a_reference(plan: Plan) -> None:
    """A cluster's identifier is its subnet group's name too, a bucket's name its notification's id."""
    cluster = plan.values["aws_rds_cluster.knowledge-cluster"]
    assert cluster["cluster_identifier"] == DATABASE and "db_subnet_group_name" not in cluster
    assert plan.values["aws_s3_bucket.documents-bucket"] == {"bucket": BUCKET}
    notification = plan.expressions["aws_s3_bucket_notification.documents-events"]
    assert notification["bucket"] == _references("aws_s3_bucket.documents-bucket.id")
    assert notification["queue"][0]["queue_arn"] == _references("aws_sqs_queue.ingest-queue.arn")


def test_a_value_naming_no_dependency_stays_a_value() -> None:
    graph = _with(linked_graph(), {"documents-owner": {"dependencies": ()}})
    owner = Plan(graph).values["aws_s3_bucket_ownership_controls.documents-owner"]
    assert owner == {"bucket": BUCKET, "rule": [{"object_ownership": "BucketOwnerEnforced"}]}


def test_ambiguous_value_stays_a_value() -> None:
    """Both dependencies are named ags-knowledge and the attribute's name fits neither."""
    graph = linked_graph()
    by_name = {r.name: r.urn for r in graph.resources}
    watcher = Resource(
        urn="urn:pulumi:aws-linked::agentstage::aws:lambda/invocation:Invocation::watcher",
        type="aws:lambda/invocation:Invocation",
        name="watcher",
        custom=True,
        inputs={"functionName": "ags-ingest", "input": DATABASE},
        mock_id="watcher",
        dependencies=(by_name["knowledge-cluster"], by_name["knowledge-subnets"], by_name["ingest-function"]),
    )
    got = Plan(_with(graph, {}, (watcher,)))
    assert got.values["aws_lambda_invocation.watcher"]["input"] == DATABASE
    assert got.expressions["aws_lambda_invocation.watcher"]["function_name"] == _references(
        "aws_lambda_function.ingest-function.function_name"
    )


def test_kms_keys_stay_values_that_checks_compare(plan: Plan) -> None:
    """CKV2_AWS_73 compares a queue's key with alias/aws/sqs: a reference would leave it unevaluated."""
    assert plan.values["aws_sqs_queue.ingest-queue"]["kms_master_key_id"] == KEY_ARN
    assert plan.values["aws_rds_cluster.knowledge-cluster"]["kms_key_id"] == KEY_ARN
    assert plan.values["aws_cloudwatch_log_group.firewall-logs"]["kms_key_id"] == KEY_ARN


def test_single_item_lists_and_maps_keep_terraform_shapes(plan: Plan) -> None:
    api = plan.values["aws_api_gateway_rest_api.gateway-api"]
    assert api["endpoint_configuration"] == [{"types": ["REGIONAL"]}]
    assert plan.values["aws_api_gateway_deployment.gateway-deployment"]["triggers"] == {"routes": "539b901f"}
    method = plan.values["aws_api_gateway_method.gateway-proxy-any"]
    assert method["request_parameters"] == {"method.request.header.Authorization": True}
    lifecycle = plan.values["aws_s3_bucket_lifecycle_configuration.documents-lifecycle"]
    assert lifecycle["rule"][0]["abort_incomplete_multipart_upload"] == [{"days_after_initiation": 7}]
    assert lifecycle["rule"][0]["filter"] == [{}]
    parameters = plan.values["aws_rds_cluster_parameter_group.knowledge-parameters"]["parameter"]
    assert [p["name"] for p in parameters] == ["log_statement", "log_min_duration_statement"]


def test_resources_of_one_name_and_two_types_keep_their_own_addresses(plan: Plan) -> None:
    association = plan.expressions["aws_route_table_association.network-private-1-routes"]
    assert association["route_table_id"] == _references("aws_route_table.network-private-1-routes.id")
    assert plan.values["aws_route_table.network-private-1-routes"]["route"] == []


# --- the AWS enterprise stage ---------------------------------------------------------------------------


def aws_only(graph: ResourceGraph) -> ResourceGraph:
    """The graph's pulumi-aws resources: what the Terraform-plan exporter is given."""
    return dataclasses.replace(
        graph, resources=[r for r in graph.cloud_resources() if r.type.startswith("aws:")]
    )


@pytest.fixture(scope="module")
def stage() -> Plan:
    return Plan(aws_only(enterprise_graph()))


@pytest.mark.parametrize(("token", "tf_type"), ENTERPRISE_TYPES.items())
def test_enterprise_type_has_its_terraform_type_and_is_exported(
    stage: Plan, token: str, tf_type: str
) -> None:
    assert TERRAFORM_TYPES[token] == tf_type
    assert any(address.split(".", 1)[0] == tf_type for address in stage.values), (
        f"the stage exports no {tf_type}"
    )


def test_the_cluster_keeps_its_blocks_and_links_its_role_subnets_and_group(stage: Plan) -> None:
    """CKV_AWS_37/38/39/58 read these blocks; CKV2_AWS_5 follows vpc_config.security_group_ids."""
    cluster = "aws_eks_cluster.agents-cluster"
    values, expressions = stage.values[cluster], stage.expressions[cluster]
    assert values["enabled_cluster_log_types"] == [
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    ]
    [encryption] = values["encryption_config"]
    assert encryption["resources"] == ["secrets"] and encryption["provider"][0]["key_arn"].startswith(
        "arn:aws:kms:"
    )
    assert values["access_config"] == [
        {"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": False}
    ]
    [vpc_config] = values["vpc_config"]
    assert (vpc_config["endpoint_private_access"], vpc_config["endpoint_public_access"]) == (True, False)
    assert expressions["vpc_config"][0]["security_group_ids"] == _references(
        "aws_security_group.agents-cluster.id"
    )
    assert expressions["role_arn"] == _references("aws_iam_role.agents-cluster-role.arn")


def test_the_node_group_names_its_cluster_role_and_launch_template(stage: Plan) -> None:
    group = stage.expressions["aws_eks_node_group.agents-nodes"]
    assert group["cluster_name"] == _references("aws_eks_cluster.agents-cluster.id")
    assert group["node_role_arn"] == _references("aws_iam_role.agents-nodes-role.arn")
    assert group["launch_template"][0]["id"] == _references("aws_launch_template.agents-nodes.id")
    assert stage.values["aws_eks_node_group.agents-nodes"]["scaling_config"] == [
        {"desired_size": 2, "max_size": 3, "min_size": 1}
    ]


def test_the_launch_template_keeps_terraform_block_names(stage: Plan) -> None:
    """CKV_AWS_79 and CKV_AWS_341 read metadata_options; Terraform's block_device_mappings stay plural."""
    template = stage.values["aws_launch_template.agents-nodes"]
    assert template["metadata_options"] == [
        {
            "http_endpoint": "enabled",
            "http_put_response_hop_limit": 1,
            "http_tokens": "required",
            "instance_metadata_tags": "disabled",
        }
    ]
    [device] = template["block_device_mappings"]
    assert device["ebs"][0]["encrypted"] == "true" and device["ebs"][0]["volume_type"] == "gp3"
    assert [spec["resource_type"] for spec in template["tag_specifications"]] == ["instance", "volume"]


def test_pod_identity_access_entries_and_addons_name_the_cluster(stage: Plan) -> None:
    association = stage.expressions["aws_eks_pod_identity_association.agents-agents-research"]
    assert association["role_arn"] == _references("aws_iam_role.research-pods-role.arn")
    policy = stage.expressions["aws_eks_access_policy_association.agents-deployer-admin"]
    assert policy["principal_arn"] == _references("aws_eks_access_entry.agents-deployer.principal_arn")
    assert stage.values["aws_eks_access_policy_association.agents-deployer-admin"]["access_scope"] == [
        {"type": "cluster"}
    ]
    for address in ("aws_eks_addon.agents-pod-identity-agent", "aws_eks_access_entry.agents-deployer"):
        assert stage.expressions[address]["cluster_name"] == _references("aws_eks_cluster.agents-cluster.id")
    assert stage.values["aws_eks_addon.agents-pod-identity-agent"]["addon_name"] == "eks-pod-identity-agent"


def test_registry_policies_name_the_repository_by_its_name(stage: Plan) -> None:
    for address in (
        "aws_ecr_lifecycle_policy.registry-lifecycle",
        "aws_ecr_repository_policy.registry-policy",
    ):
        assert stage.expressions[address]["repository"] == _references(
            "aws_ecr_repository.registry-repository.name"
        )
    repository = stage.values["aws_ecr_repository.registry-repository"]
    assert repository["name"] == "ags-prod-agents" and repository["image_tag_mutability"] == "IMMUTABLE"
    assert repository["encryption_configuration"][0]["encryption_type"] == "KMS"
    template = stage.values["aws_ecr_repository_creation_template.registry-k8s-template"]
    assert template["applied_for"] == ["PULL_THROUGH_CACHE"] and "applied_fors" not in template
    assert template["encryption_configuration"][0]["encryption_type"] == "KMS"
    assert template["resource_tags"] == {"agentstage-environment": "prod", "managed-by": "pulumi"}
    assert (
        stage.values["aws_ecr_pull_through_cache_rule.registry-k8s-cache"]["upstream_registry_url"]
        == "registry.k8s.io"
    )


def test_config_rules_keep_their_source_and_scope_blocks(stage: Plan) -> None:
    rule = stage.values["aws_config_config_rule.compliance-lambda-inside-vpc"]
    assert rule["source"] == [{"owner": "AWS", "source_identifier": "LAMBDA_INSIDE_VPC"}]
    assert rule["scope"] == [{"tag_key": "agentstage-environment", "tag_value": "prod"}]
    periodic = stage.values["aws_config_config_rule.compliance-eks-endpoint-no-public-access"]
    assert periodic["maximum_execution_frequency"] == "TwentyFour_Hours" and "scope" not in periodic


def test_resource_policies_name_their_queue_secret_and_table(stage: Plan) -> None:
    for address, attribute, target in (
        ("aws_sqs_queue_policy.tasks-research-perimeter", "queue_url", "aws_sqs_queue.tasks-research.id"),
        (
            "aws_secretsmanager_secret_policy.settings-perimeter",
            "secret_arn",
            "aws_secretsmanager_secret.settings.arn",
        ),
        (
            "aws_dynamodb_resource_policy.state-conversations-perimeter",
            "resource_arn",
            "aws_dynamodb_table.state-conversations.arn",
        ),
    ):
        assert stage.expressions[address][attribute] == _references(target), address
        assert "Deny" in stage.values[address]["policy"]
