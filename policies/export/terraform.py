"""Export pulumi-aws resources as a Terraform plan (``terraform show -json``), which checkov reads.

pulumi-aws is generated from the Terraform AWS provider, so each resource is a Terraform resource under
another name: the token-to-type map below is curated (pulumi-aws ships none) and the attribute names
are the inputs' camelCase turned back into snake_case. Terraform represents nested blocks as lists of
objects where pulumi-aws uses a single object, so objects become one-element lists - except the map
attributes (``tags``, ``variables``), whose keys are data, not attribute names.

A resource whose input holds another resource's id (a public access block's ``bucket``) is written the
way a real plan writes a not-yet-known reference: absent from ``planned_values`` and listed in
``configuration ... expressions ... references``, which is the only place checkov's cross-resource
(CKV2) checks look for links. The file must end in ``.json`` for checkov to read it as a plan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from agentstage.graph import Resource
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
        # Compute and API.
        "aws:lambda/function:Function": "aws_lambda_function",
        "aws:lambda/permission:Permission": "aws_lambda_permission",
        "aws:lambda/functionUrl:FunctionUrl": "aws_lambda_function_url",
        "aws:lambda/eventSourceMapping:EventSourceMapping": "aws_lambda_event_source_mapping",
        "aws:apigatewayv2/api:Api": "aws_apigatewayv2_api",
        "aws:apigatewayv2/stage:Stage": "aws_apigatewayv2_stage",
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
        # Observability, cost and network.
        "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
        "aws:cloudwatch/metricAlarm:MetricAlarm": "aws_cloudwatch_metric_alarm",
        "aws:budgets/budget:Budget": "aws_budgets_budget",
        "aws:ec2/vpc:Vpc": "aws_vpc",
        "aws:ec2/subnet:Subnet": "aws_subnet",
        "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
        "aws:ec2/vpcEndpoint:VpcEndpoint": "aws_vpc_endpoint",
        "aws:ec2/flowLog:FlowLog": "aws_flow_log",
    }
)

# Terraform map attributes: their keys are data and they stay objects (not blocks, not snake-cased).
MAP_ATTRIBUTES = frozenset({"tags", "tags_all", "variables"})


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
    addresses = {r.mock_id: address for r, _, address in mapped if r.mock_id}
    planned, configured = [], []
    for resource, tf_type, address in mapped:
        values, expressions = _values_and_references(plain(resource.inputs), addresses)
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


def _values_and_references(
    inputs: dict[str, Any], addresses: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Top-level attribute values, and the expressions of those that reference another resource's id."""
    values: dict[str, Any] = {}
    expressions: dict[str, Any] = {}
    for key, value in inputs.items():
        attribute = snake_case(key)
        if isinstance(value, str) and value in addresses:
            expressions[attribute] = {"references": [f"{addresses[value]}.id", addresses[value]]}
            continue
        values[attribute] = _attribute(attribute, value)
        expressions[attribute] = {"constant_value": values[attribute]}
    return values, expressions


def _attribute(name: str, value: Any) -> Any:
    if name in MAP_ATTRIBUTES:
        return value
    if isinstance(value, dict):
        return [{snake_case(k): _attribute(snake_case(k), v) for k, v in value.items()}]
    if isinstance(value, list):
        return [_attribute(name, item)[0] if isinstance(item, dict) else item for item in value]
    return value


def snake_case(name: str) -> str:
    """``visibilityTimeoutSeconds`` -> ``visibility_timeout_seconds`` (how pulumi-aws derived it)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
