"""Export pulumi-aws resources as a Terraform plan (``terraform show -json``), which checkov reads.

pulumi-aws is generated from the Terraform AWS provider, so each resource is a Terraform resource under
another name: the token-to-type map below is curated (pulumi-aws ships none) and the attribute names
are the inputs' camelCase turned back into snake_case. Terraform represents nested blocks as lists of
objects where pulumi-aws uses a single object, so objects become one-element lists - except the map
attributes (``tags``, ``variables``), whose keys are data, not attribute names.

pulumi-aws also renames some attributes: a repeated block gets a plural name (Terraform's ``attribute``
blocks of a table are ``attributes``, a guardrail's ``filters_config`` blocks are ``filtersConfigs``) and a
few references drop their suffix (a subscription's ``topic_arn`` is ``topic``). ``RENAMED`` maps them back,
per Terraform type and by their (snake-cased) path, so that checkov reads the attribute its checks name.

A resource whose input holds another resource's id (a public access block's ``bucket``, a route's
``api_id``) is written the way a real plan writes a not-yet-known reference: absent from
``planned_values`` and listed in ``configuration ... expressions ... references``, which is the only place
checkov's cross-resource (CKV2) checks look for links. AWS ids are often physical names, so a value only
counts as a reference when the resource was computed from that other resource (its dependencies) and is
not the resource's own ``name``. The file must end in ``.json`` for checkov to read it as a plan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from core.graph import Resource
from policies.export.base import Export, dumps, plain

FRAMEWORK = "terraform_plan"
PREFIX = "aws:"
PLAN_FILE = "plan.json"
PROVIDER = "registry.terraform.io/hashicorp/aws"

TERRAFORM_TYPES: Mapping[str, str] = MappingProxyType(
    {
        # Storage and state.
        "aws:s3/bucket:Bucket": "aws_s3_bucket",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "aws_s3_bucket_public_access_block",
        "aws:s3/bucketVersioning:BucketVersioning": "aws_s3_bucket_versioning",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
            "aws_s3_bucket_server_side_encryption_configuration"
        ),
        "aws:s3/bucketLogging:BucketLogging": "aws_s3_bucket_logging",
        "aws:s3/bucketPolicy:BucketPolicy": "aws_s3_bucket_policy",
        "aws:dynamodb/table:Table": "aws_dynamodb_table",
        "aws:opensearch/domain:Domain": "aws_opensearch_domain",
        # Messaging.
        "aws:sqs/queue:Queue": "aws_sqs_queue",
        "aws:sqs/queuePolicy:QueuePolicy": "aws_sqs_queue_policy",
        "aws:sns/topic:Topic": "aws_sns_topic",
        "aws:sns/topicSubscription:TopicSubscription": "aws_sns_topic_subscription",
        # Compute and API.
        "aws:lambda/function:Function": "aws_lambda_function",
        "aws:lambda/permission:Permission": "aws_lambda_permission",
        "aws:lambda/functionUrl:FunctionUrl": "aws_lambda_function_url",
        "aws:lambda/eventSourceMapping:EventSourceMapping": "aws_lambda_event_source_mapping",
        "aws:lambda/alias:Alias": "aws_lambda_alias",
        "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig": (
            "aws_lambda_provisioned_concurrency_config"
        ),
        "aws:apigatewayv2/api:Api": "aws_apigatewayv2_api",
        "aws:apigatewayv2/stage:Stage": "aws_apigatewayv2_stage",
        "aws:apigatewayv2/route:Route": "aws_apigatewayv2_route",
        "aws:apigatewayv2/integration:Integration": "aws_apigatewayv2_integration",
        "aws:apigatewayv2/authorizer:Authorizer": "aws_apigatewayv2_authorizer",
        "aws:ecr/repository:Repository": "aws_ecr_repository",
        "aws:eks/cluster:Cluster": "aws_eks_cluster",
        "aws:eks/nodeGroup:NodeGroup": "aws_eks_node_group",
        # Identity, keys and secrets.
        "aws:iam/role:Role": "aws_iam_role",
        "aws:iam/policy:Policy": "aws_iam_policy",
        "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
        "aws:kms/key:Key": "aws_kms_key",
        "aws:kms/alias:Alias": "aws_kms_alias",
        "aws:secretsmanager/secret:Secret": "aws_secretsmanager_secret",
        # Models.
        "aws:bedrock/guardrail:Guardrail": "aws_bedrock_guardrail",
        "aws:bedrock/guardrailVersion:GuardrailVersion": "aws_bedrock_guardrail_version",
        # Observability, cost and network.
        "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
        "aws:cloudwatch/metricAlarm:MetricAlarm": "aws_cloudwatch_metric_alarm",
        "aws:cloudwatch/dashboard:Dashboard": "aws_cloudwatch_dashboard",
        "aws:budgets/budget:Budget": "aws_budgets_budget",
        "aws:ec2/vpc:Vpc": "aws_vpc",
        "aws:ec2/subnet:Subnet": "aws_subnet",
        "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
        "aws:ec2/vpcEndpoint:VpcEndpoint": "aws_vpc_endpoint",
        "aws:ec2/flowLog:FlowLog": "aws_flow_log",
    }
)

# Terraform map attributes: their keys are data and they stay objects (not blocks, not snake-cased).
MAP_ATTRIBUTES = frozenset(
    {
        "tags",
        "tags_all",
        "variables",  # a Lambda function's environment
        "dimensions",  # a metric alarm's (and its metric queries')
        "stage_variables",
        "request_parameters",  # an HTTP API integration's parameter mapping
        "request_templates",
        "request_models",
        "mappings",  # an integration's response parameter mappings
        "additional_version_weights",  # a Lambda alias' routing
    }
)

RENAMED: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "aws_lambda_function": {"name": "function_name"},
        "aws_lambda_permission": {"function": "function_name"},
        "aws_sns_topic_subscription": {"topic": "topic_arn"},
        "aws_iam_role": {"inline_policies": "inline_policy"},
        "aws_dynamodb_table": {
            "attributes": "attribute",
            "global_secondary_indexes": "global_secondary_index",
            "local_secondary_indexes": "local_secondary_index",
            "replicas": "replica",
        },
        "aws_cloudwatch_metric_alarm": {"metric_queries": "metric_query"},
        "aws_budgets_budget": {
            "cost_filters": "cost_filter",
            "notifications": "notification",
            "planned_limits": "planned_limit",
        },
        "aws_apigatewayv2_authorizer": {"jwt_configuration.audiences": "audience"},
        "aws_apigatewayv2_route": {"request_parameters": "request_parameter"},
        "aws_bedrock_guardrail": {
            "content_policy_config.filters_configs": "filters_config",
            "content_policy_config.tier_configs": "tier_config",
            "contextual_grounding_policy_config.filters_configs": "filters_config",
            "sensitive_information_policy_config.pii_entities_configs": "pii_entities_config",
            "sensitive_information_policy_config.regexes_configs": "regexes_config",
            "topic_policy_config.topics_configs": "topics_config",
            "topic_policy_config.tier_configs": "tier_config",
            "word_policy_config.managed_word_lists_configs": "managed_word_lists_config",
            "word_policy_config.words_configs": "words_config",
        },
        "aws_secretsmanager_secret": {"replicas": "replica"},
        "aws_s3_bucket": {
            "cors_rules": "cors_rule",
            "grants": "grant",
            "lifecycle_rules": "lifecycle_rule",
            "loggings": "logging",
        },
        "aws_s3_bucket_server_side_encryption_configuration": {"rules": "rule"},
        "aws_ecr_repository": {"encryption_configurations": "encryption_configuration"},
        "aws_lambda_event_source_mapping": {"filter_criteria.filters": "filter"},
    }
)
"""Terraform attribute names pulumi-aws renamed, by Terraform type and snake-cased pulumi path."""


def export_terraform(resources: Iterable[Resource]) -> Export:
    """One plan file holding every mapped pulumi-aws resource; unmapped types are listed, not dropped."""
    export = Export(FRAMEWORK)
    mapped: list[tuple[Resource, str, str]] = []
    for resource in resources:
        tf_type = TERRAFORM_TYPES.get(resource.type)
        if tf_type is None:
            export.unmapped.append(resource.type)
            continue
        mapped.append((resource, tf_type, _unique_label(resource.name, tf_type, {a for _, _, a in mapped})))
    if not mapped:
        return export
    targets = {r.mock_id: (r, address) for r, _, address in mapped if r.mock_id}
    planned, configured = [], []
    for resource, tf_type, address in mapped:
        addresses = _references_of(resource, targets)
        inputs = _terraform_inputs(tf_type, plain(resource.inputs))
        values, expressions = _values_and_references(inputs, addresses, RENAMED.get(tf_type, {}))
        label = address.split(".", 1)[1]
        common = {"address": address, "mode": "managed", "type": tf_type, "name": label}
        planned.append(
            {
                **common,
                "provider_name": PROVIDER,
                "schema_version": 0,
                "values": values,
                "sensitive_values": {},
            }
        )
        configured.append(
            {**common, "provider_config_key": "aws", "schema_version": 0, "expressions": expressions}
        )
        export.owners[address] = resource
    plan = {
        "format_version": "1.2",
        "terraform_version": "1.9.0",
        "planned_values": {"root_module": {"resources": planned}},
        # No provider_config: Pulumi's provider settings are not in the graph, and an empty provider block
        # would only be "checked" for hard-coded keys it cannot contain.
        "configuration": {"root_module": {"resources": configured}},
    }
    export.files[PLAN_FILE] = dumps(plan)
    export.expected = len(mapped)
    return export


def _unique_label(name: str, tf_type: str, taken: set[str]) -> str:
    """A Terraform address for a logical name: letters, digits, ``_`` and ``-``, not starting with a digit."""
    label = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if not label[:1].isalpha() and label[:1] != "_":
        label = f"_{label}"
    address, counter = f"{tf_type}.{label}", 2
    while address in taken:
        address, counter = f"{tf_type}.{label}_{counter}", counter + 1
    return address


def _references_of(resource: Resource, targets: Mapping[str, tuple[Resource, str]]) -> dict[str, str]:
    """The ids ``resource`` may reference -> their addresses: other resources it was computed from (any,
    when the graph records no dependencies at all)."""
    return {
        mock_id: address
        for mock_id, (target, address) in targets.items()
        if target.urn != resource.urn and (not resource.dependencies or target.urn in resource.dependencies)
    }


def _terraform_inputs(tf_type: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs whose Terraform form differs in more than a name: a Lambda function's code archive is
    Terraform's ``filename`` (a path)."""
    if tf_type == "aws_lambda_function" and isinstance(inputs.get("code"), dict):
        archive = inputs.pop("code")
        if isinstance(archive.get("path"), str):
            inputs["filename"] = archive["path"]
    return inputs


def _values_and_references(
    inputs: dict[str, Any], addresses: Mapping[str, str], renamed: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Top-level attribute values, and the expressions of those that reference another resource's id."""
    renamed = renamed or {}
    values: dict[str, Any] = {}
    expressions: dict[str, Any] = {}
    for key, value in inputs.items():
        path = snake_case(key)
        attribute = renamed.get(path, path)
        if isinstance(value, str) and value in addresses and path != "name":
            expressions[attribute] = {"references": [f"{addresses[value]}.id", addresses[value]]}
            continue
        values[attribute] = _attribute(path, value, renamed)
        expressions[attribute] = {"constant_value": values[attribute]}
    return values, expressions


def _attribute(path: str, value: Any, renamed: Mapping[str, str]) -> Any:
    """``value`` in Terraform's shape: objects become one-element block lists with snake_case (and, where
    pulumi-aws renamed them, Terraform) names; maps stay maps. ``path`` is the snake-cased pulumi path."""
    if path.rsplit(".", 1)[-1] in MAP_ATTRIBUTES:
        return value
    if isinstance(value, dict):
        return [_block(path, value, renamed)]
    if isinstance(value, list):
        return [_block(path, item, renamed) if isinstance(item, dict) else item for item in value]
    return value


def _block(path: str, value: dict[str, Any], renamed: Mapping[str, str]) -> dict[str, Any]:
    block = {}
    for key, item in value.items():
        child = f"{path}.{snake_case(key)}"
        block[renamed.get(child, snake_case(key))] = _attribute(child, item, renamed)
    return block


def snake_case(name: str) -> str:
    """``visibilityTimeoutSeconds`` -> ``visibility_timeout_seconds`` (how pulumi-aws derived it)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
