"""The curated map from pulumi-aws to the Terraform AWS provider, for the Terraform-plan exporter.

pulumi-aws is generated from the Terraform AWS provider, so each resource is a Terraform resource under
another name; pulumi-aws ships no map back, so every type is written out here. The attribute names are the
inputs' camelCase turned back into snake_case, except where pulumi-aws changed more than the case:

- ``RENAMED``: a repeated block gets a plural name (Terraform's ``attribute`` blocks of a table are
  ``attributes``, a web ACL's ``rule`` blocks are ``rules``) and some references drop their suffix (a
  subscription's ``topic_arn`` is ``topic``, a REST API stage's ``rest_api_id`` is ``restApi``). Keyed by
  Terraform type and by the snake-cased pulumi path (parents under their pulumi names), so that checkov
  reads the attribute its checks name; a path not listed keeps its name, and a wrong or missing entry makes
  checkov skip the checks that read it without a word.
- ``SINGLE_ITEM_LISTS``: Terraform lists that hold at most one value, which pulumi-aws flattened to the value
  (a REST API's endpoint ``types``).
- ``MAP_ATTRIBUTES``: Terraform maps, whose keys are data: they stay objects (not blocks, not snake-cased).
- ``REFERENCEABLE``: attributes besides ``id`` and ``arn`` by which other resources name one of this type,
  as Terraform configuration does (``stage_name = aws_api_gateway_stage.live.stage_name``).
- ``NAMED_BY_VALUE``: types whose id and ARN stay values where other resources hold them, never references.
- ``OWN_NAMES``: the attribute that holds a resource's own physical name where Terraform does not call it
  ``name`` (a bucket's ``bucket``): it names the resource itself, never another one with the same id.

To add a type: map its token to the Terraform type, then compare the inputs' list-valued and renamed
properties (the pulumi-aws docstrings say "See `rule` below" where the Terraform block is singular) with
the Terraform attributes the checkov checks of that type read.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

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
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (
            "aws_s3_bucket_lifecycle_configuration"
        ),
        "aws:s3/bucketNotification:BucketNotification": "aws_s3_bucket_notification",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "aws_s3_bucket_ownership_controls",
        "aws:dynamodb/table:Table": "aws_dynamodb_table",
        "aws:dynamodb/resourcePolicy:ResourcePolicy": "aws_dynamodb_resource_policy",
        "aws:opensearch/domain:Domain": "aws_opensearch_domain",
        "aws:rds/cluster:Cluster": "aws_rds_cluster",
        "aws:rds/clusterInstance:ClusterInstance": "aws_rds_cluster_instance",
        "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group",
        "aws:rds/clusterParameterGroup:ClusterParameterGroup": "aws_rds_cluster_parameter_group",
        # Messaging.
        "aws:sqs/queue:Queue": "aws_sqs_queue",
        "aws:sqs/queuePolicy:QueuePolicy": "aws_sqs_queue_policy",
        "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": "aws_sqs_queue_redrive_allow_policy",
        "aws:sns/topic:Topic": "aws_sns_topic",
        "aws:sns/topicSubscription:TopicSubscription": "aws_sns_topic_subscription",
        # Compute.
        "aws:lambda/function:Function": "aws_lambda_function",
        "aws:lambda/permission:Permission": "aws_lambda_permission",
        "aws:lambda/functionUrl:FunctionUrl": "aws_lambda_function_url",
        "aws:lambda/eventSourceMapping:EventSourceMapping": "aws_lambda_event_source_mapping",
        "aws:lambda/alias:Alias": "aws_lambda_alias",
        "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig": (
            "aws_lambda_provisioned_concurrency_config"
        ),
        "aws:lambda/invocation:Invocation": "aws_lambda_invocation",
        # Containers: EKS and the image registry.
        "aws:eks/cluster:Cluster": "aws_eks_cluster",
        "aws:eks/nodeGroup:NodeGroup": "aws_eks_node_group",
        "aws:eks/addon:Addon": "aws_eks_addon",
        "aws:eks/accessEntry:AccessEntry": "aws_eks_access_entry",
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "aws_eks_access_policy_association",
        "aws:eks/podIdentityAssociation:PodIdentityAssociation": "aws_eks_pod_identity_association",
        "aws:ec2/launchTemplate:LaunchTemplate": "aws_launch_template",
        "aws:ecr/repository:Repository": "aws_ecr_repository",
        "aws:ecr/lifecyclePolicy:LifecyclePolicy": "aws_ecr_lifecycle_policy",
        "aws:ecr/repositoryPolicy:RepositoryPolicy": "aws_ecr_repository_policy",
        "aws:ecr/pullThroughCacheRule:PullThroughCacheRule": "aws_ecr_pull_through_cache_rule",
        "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate": "aws_ecr_repository_creation_template",
        # HTTP APIs (API Gateway v2).
        "aws:apigatewayv2/api:Api": "aws_apigatewayv2_api",
        "aws:apigatewayv2/stage:Stage": "aws_apigatewayv2_stage",
        "aws:apigatewayv2/route:Route": "aws_apigatewayv2_route",
        "aws:apigatewayv2/integration:Integration": "aws_apigatewayv2_integration",
        "aws:apigatewayv2/authorizer:Authorizer": "aws_apigatewayv2_authorizer",
        # REST APIs (API Gateway v1).
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
        "aws:wafv2/webAcl:WebAcl": "aws_wafv2_web_acl",
        "aws:wafv2/webAclAssociation:WebAclAssociation": "aws_wafv2_web_acl_association",
        "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": (
            "aws_wafv2_web_acl_logging_configuration"
        ),
        # Identity, keys and secrets.
        "aws:iam/role:Role": "aws_iam_role",
        "aws:iam/policy:Policy": "aws_iam_policy",
        "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
        "aws:kms/key:Key": "aws_kms_key",
        "aws:kms/alias:Alias": "aws_kms_alias",
        "aws:secretsmanager/secret:Secret": "aws_secretsmanager_secret",
        "aws:secretsmanager/secretPolicy:SecretPolicy": "aws_secretsmanager_secret_policy",
        # Models.
        "aws:bedrock/guardrail:Guardrail": "aws_bedrock_guardrail",
        "aws:bedrock/guardrailVersion:GuardrailVersion": "aws_bedrock_guardrail_version",
        # Observability and cost.
        "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
        "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": "aws_cloudwatch_log_resource_policy",
        "aws:cloudwatch/metricAlarm:MetricAlarm": "aws_cloudwatch_metric_alarm",
        "aws:cloudwatch/dashboard:Dashboard": "aws_cloudwatch_dashboard",
        "aws:cloudwatch/eventRule:EventRule": "aws_cloudwatch_event_rule",
        "aws:cloudwatch/eventTarget:EventTarget": "aws_cloudwatch_event_target",
        "aws:budgets/budget:Budget": "aws_budgets_budget",
        "aws:cfg/rule:Rule": "aws_config_config_rule",
        # Network.
        "aws:ec2/vpc:Vpc": "aws_vpc",
        "aws:ec2/subnet:Subnet": "aws_subnet",
        "aws:ec2/routeTable:RouteTable": "aws_route_table",
        "aws:ec2/routeTableAssociation:RouteTableAssociation": "aws_route_table_association",
        "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "aws_default_security_group",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "aws_vpc_security_group_ingress_rule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "aws_vpc_security_group_egress_rule",
        "aws:ec2/vpcEndpoint:VpcEndpoint": "aws_vpc_endpoint",
        "aws:ec2/flowLog:FlowLog": "aws_flow_log",
    }
)

MAP_ATTRIBUTES = frozenset(
    {
        "tags",
        "tags_all",
        "variables",  # a Lambda function's environment, a REST API stage's variables
        "dimensions",  # a metric alarm's (and its metric queries')
        "stage_variables",
        "stage_variable_overrides",  # a REST API stage's canary settings
        "request_parameters",  # an integration's parameter mapping, a REST API method's parameters
        "request_templates",
        "request_models",
        "mappings",  # an integration's response parameter mappings
        "additional_version_weights",  # a Lambda alias' routing
        "triggers",  # a REST API deployment's and a Lambda invocation's redeploy triggers
        "labels",  # an EKS node group's Kubernetes node labels
        "resource_tags",  # the tags an ECR repository creation template gives the repositories it creates
    }
)


def _web_acl_statements() -> dict[str, str]:
    """A web ACL rule's statements with repeated blocks, one level deep (nested and/or/not statements
    and scope-down statements would each need their own entries)."""
    renamed = {
        "rules.statement.and_statement.statements": "statement",
        "rules.statement.or_statement.statements": "statement",
        "rules.statement.managed_rule_group_statement.rule_action_overrides": "rule_action_override",
        "rules.statement.rule_group_reference_statement.rule_action_overrides": "rule_action_override",
        "rules.statement.rule_group_reference_statement.excluded_rules": "excluded_rule",
        "rules.statement.rate_based_statement.custom_keys": "custom_key",
    }
    for statement in (
        "byte_match_statement",
        "regex_match_statement",
        "regex_pattern_set_reference_statement",
        "size_constraint_statement",
        "sqli_match_statement",
        "xss_match_statement",
    ):
        renamed[f"rules.statement.{statement}.text_transformations"] = "text_transformation"
    return renamed


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
        "aws_api_gateway_authorizer": {"rest_api": "rest_api_id"},
        "aws_api_gateway_deployment": {"rest_api": "rest_api_id"},
        "aws_api_gateway_integration": {"rest_api": "rest_api_id"},
        "aws_api_gateway_method": {"rest_api": "rest_api_id"},
        "aws_api_gateway_method_settings": {"rest_api": "rest_api_id"},
        "aws_api_gateway_request_validator": {"rest_api": "rest_api_id"},
        "aws_api_gateway_resource": {"rest_api": "rest_api_id"},
        "aws_api_gateway_stage": {"rest_api": "rest_api_id", "deployment": "deployment_id"},
        "aws_api_gateway_usage_plan": {"api_stages.throttles": "throttle"},
        "aws_wafv2_web_acl": {
            "rules": "rule",
            "rules.rule_labels": "rule_label",
            **_web_acl_statements(),
            "custom_response_bodies": "custom_response_body",
            "association_config.request_bodies": "request_body",
            "data_protection_config.data_protections": "data_protection",
        },
        "aws_wafv2_web_acl_logging_configuration": {
            "logging_filter.filters": "filter",
            "logging_filter.filters.conditions": "condition",
        },
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
        "aws_s3_bucket_lifecycle_configuration": {
            "rules": "rule",
            "rules.transitions": "transition",
            "rules.noncurrent_version_transitions": "noncurrent_version_transition",
        },
        "aws_s3_bucket_notification": {
            "queues": "queue",
            "topics": "topic",
            "lambda_functions": "lambda_function",
        },
        "aws_ecr_repository": {
            "encryption_configurations": "encryption_configuration",
            "image_tag_mutability_exclusion_filters": "image_tag_mutability_exclusion_filter",
        },
        "aws_ecr_repository_creation_template": {
            "applied_fors": "applied_for",
            "encryption_configurations": "encryption_configuration",
            "image_tag_mutability_exclusion_filters": "image_tag_mutability_exclusion_filter",
        },
        "aws_eks_addon": {"pod_identity_associations": "pod_identity_association"},
        "aws_eks_node_group": {"taints": "taint"},
        "aws_launch_template": {"license_specifications": "license_specification"},
        "aws_config_config_rule": {
            "evaluation_modes": "evaluation_mode",
            "source.source_details": "source_detail",
        },
        "aws_lambda_event_source_mapping": {"filter_criteria.filters": "filter"},
        "aws_route_table": {"routes": "route"},
        "aws_rds_cluster_parameter_group": {"parameters": "parameter"},
    }
)
"""Terraform attribute names pulumi-aws renamed, by Terraform type and snake-cased pulumi path."""

SINGLE_ITEM_LISTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {"aws_api_gateway_rest_api": frozenset({"endpoint_configuration.types"})}
)
"""Terraform list attributes pulumi-aws takes as their one value, by Terraform type and snake-cased path."""

REFERENCEABLE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        # A stage is named by its stage_name (method settings, usage plans), not by its id.
        "aws_api_gateway_stage": ("stage_name",),
        # A function by its name where an ARN is not needed (an invocation, a permission).
        "aws_lambda_function": ("function_name",),
        # A repository by its name (its lifecycle and repository policies).
        "aws_ecr_repository": ("name",),
        # An access policy association names the access entry it grants by the entry's principal.
        "aws_eks_access_entry": ("principal_arn",),
    }
)
"""Attributes besides ``id`` and ``arn`` that other resources hold to name one of a Terraform type."""

OWN_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "aws_s3_bucket": "bucket",
        "aws_lambda_function": "function_name",
        "aws_rds_cluster": "cluster_identifier",
        "aws_rds_cluster_instance": "identifier",
        "aws_opensearch_domain": "domain_name",
        "aws_eks_node_group": "node_group_name",
        "aws_eks_addon": "addon_name",
        "aws_api_gateway_stage": "stage_name",
        "aws_cloudwatch_metric_alarm": "alarm_name",
        "aws_cloudwatch_dashboard": "dashboard_name",
        "aws_cloudwatch_log_resource_policy": "policy_name",
    }
)
"""A resource's own name attribute, by Terraform type, where it is not ``name``."""

NAMED_BY_VALUE = frozenset({"aws_kms_key"})
"""Types other resources name by value, not by reference: checks compare which key encrypts a resource
with the AWS-managed keys (CKV2_AWS_73: a queue's ``kms_master_key_id`` is not ``alias/aws/sqs``), and
checkov cannot compare a reference with a value - the check would report nothing at all. No check needs
the link to the key itself."""
