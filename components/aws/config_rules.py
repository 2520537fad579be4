"""Automated audit: AWS Config managed rules for the stage's own guarantees.

The AWS counterpart of the Azure stage's policy assignments (``components/azure/policy_assignments.py``).
The components deploy secure settings; these rules keep checking them after ``pulumi up``, also on
resources changed by hand or by another tool, and show drift in the Config compliance view. AWS Config
rules only detect: nothing is denied (the preventive layer on AWS is the organisation's SCPs).

Every entry of :data:`MANAGED_RULES` was read from its page in the AWS Config Developer Guide
(``https://docs.aws.amazon.com/config/latest/developerguide/<source>.html``): identifier, resource type,
trigger type and parameters. A guarantee without a managed rule whose page could be read is not in the
table - SQS queue encryption among them: the queues' KMS key is checked by the kit's own policy rules
before deployment instead.

Scope. A change-triggered rule is scoped to the stack's resources by the tag ``scope_tag_key`` (the
value the stack's context carries): AWS Config takes either resource types or one tag as a rule's scope,
and the managed rule evaluates its own resource type only. A resource without the tag is not evaluated,
so every component tags what it creates. Periodic rules evaluate every resource of their type in the
account and region - AWS Config offers them no narrower scope - so their parameters never pin this
stack's key or subnets, which would flag every other stack's resources; their findings may include
resources other stacks own (the default VPC has no flow logs, for one).

The recorder. Managed rules read what the account's configuration recorder records. This component
relies on the recorder the organisation already runs in the account and region (there can be only one
per region, and a landing zone usually owns it): without any recorder, AWS refuses to create a rule
(``NoAvailableConfigurationRecorderException``), so ``pulumi up`` fails loudly. A recorder that exists
but is stopped, or does not record a type of :data:`RECORDED_TYPES`, makes the rules report nothing,
silently. Check both before trusting an empty compliance view::

    aws configservice describe-configuration-recorder-status --region <region>
        # "recording": true and "lastStatus": "SUCCESS"
    aws configservice describe-configuration-recorders --region <region>
        # "allSupported": true, or every type of RECORDED_TYPES in "resourceTypes"

Cost. AWS Config bills every rule evaluation and every configuration item the recorder records; the
cost model of the stage is kept elsewhere (the ``agentstage cost`` estimate), not here.

Deploying needs ``config:PutConfigRule``, ``config:DeleteConfigRule``, ``config:DescribeConfigRules``
and ``config:TagResource`` in the account.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
from pulumi_aws import cfg

from components.aws.context import AwsContext
from components.base import Component

Trigger = Literal["change", "periodic"]
Frequency = Literal["One_Hour", "Three_Hours", "Six_Hours", "Twelve_Hours", "TwentyFour_Hours"]
FREQUENCIES: tuple[Frequency, ...] = (
    "One_Hour",
    "Three_Hours",
    "Six_Hours",
    "Twelve_Hours",
    "TwentyFour_Hours",
)


@dataclass(frozen=True)
class ManagedRule:
    """One AWS Config managed rule and the guarantee it keeps.

    ``identifier``: the rule's source identifier. ``resource_type``: what it evaluates. ``trigger``: its
    trigger type as documented (``change``: configuration changes; ``periodic``). ``parameter``: the
    rule parameter this stage sets, if any (see :class:`ConfigRulesArgs`). ``guarantee``: what the stage
    promises, in one sentence (the rule's description). ``source``: the Developer Guide page it was read
    from.
    """

    identifier: str
    resource_type: str
    trigger: Trigger
    guarantee: str
    source: str
    parameter: str | None = None


# key -> rule. Keys name the rules (``<prefix>-<env>-<key>``) and are what ConfigRulesArgs.exclusions lists.
MANAGED_RULES: Mapping[str, ManagedRule] = {
    "lambda-inside-vpc": ManagedRule(
        identifier="LAMBDA_INSIDE_VPC",
        resource_type="AWS::Lambda::Function",
        trigger="change",
        guarantee="The stack's functions run in its VPC's private subnets, reaching AWS through endpoints.",
        source="lambda-inside-vpc",
        parameter="subnetIds",
    ),
    "eks-endpoint-no-public-access": ManagedRule(
        identifier="EKS_ENDPOINT_NO_PUBLIC_ACCESS",
        resource_type="AWS::EKS::Cluster",
        trigger="periodic",
        guarantee="The cluster's API endpoint is private.",
        source="eks-endpoint-no-public-access",
    ),
    "eks-secrets-encrypted": ManagedRule(
        identifier="EKS_SECRETS_ENCRYPTED",
        resource_type="AWS::EKS::Cluster",
        trigger="periodic",
        guarantee="Kubernetes secrets are envelope-encrypted with a KMS key.",
        source="eks-secrets-encrypted",
    ),
    "ecr-private-image-scanning-enabled": ManagedRule(
        identifier="ECR_PRIVATE_IMAGE_SCANNING_ENABLED",
        resource_type="AWS::ECR::Repository",
        trigger="periodic",
        guarantee="Every image pushed to the agent registry is scanned.",
        source="ecr-private-image-scanning-enabled",
    ),
    "ecr-private-tag-immutability-enabled": ManagedRule(
        identifier="ECR_PRIVATE_TAG_IMMUTABILITY_ENABLED",
        resource_type="AWS::ECR::Repository",
        trigger="change",
        guarantee="A tag in the agent registry names one image for good.",
        source="ecr-private-tag-immutability-enabled",
    ),
    "rds-instance-public-access-check": ManagedRule(
        identifier="RDS_INSTANCE_PUBLIC_ACCESS_CHECK",
        resource_type="AWS::RDS::DBInstance",
        trigger="change",
        guarantee="The vector database's instances are not publicly accessible.",
        source="rds-instance-public-access-check",
    ),
    "rds-storage-encrypted": ManagedRule(
        identifier="RDS_STORAGE_ENCRYPTED",
        resource_type="AWS::RDS::DBInstance",
        trigger="change",
        guarantee="The vector database's instances store data encrypted with the stack's key.",
        source="rds-storage-encrypted",
        parameter="kmsKeyId",
    ),
    "rds-cluster-encrypted-at-rest": ManagedRule(
        identifier="RDS_CLUSTER_ENCRYPTED_AT_REST",
        resource_type="AWS::RDS::DBCluster",
        trigger="change",
        guarantee="The Aurora cluster of the vector database is encrypted at rest.",
        source="rds-cluster-encrypted-at-rest",
    ),
    "s3-bucket-level-public-access-prohibited": ManagedRule(
        identifier="S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED",
        resource_type="AWS::S3::Bucket",
        trigger="change",
        guarantee="No bucket of the stack is public.",
        source="s3-bucket-level-public-access-prohibited",
    ),
    "api-gw-associated-with-waf": ManagedRule(
        identifier="API_GW_ASSOCIATED_WITH_WAF",
        resource_type="AWS::ApiGateway::Stage",
        trigger="change",
        guarantee="The gateway's stage is behind the stack's WAF web ACL.",
        source="api-gw-associated-with-waf",
        parameter="WebAclArns",
    ),
    "vpc-flow-logs-enabled": ManagedRule(
        identifier="VPC_FLOW_LOGS_ENABLED",
        resource_type="AWS::EC2::VPC",
        trigger="periodic",
        guarantee="The stack's VPC logs its flows.",
        source="vpc-flow-logs-enabled",
    ),
    "cloudwatch-log-group-encrypted": ManagedRule(
        identifier="CLOUDWATCH_LOG_GROUP_ENCRYPTED",
        resource_type="AWS::Logs::LogGroup",
        trigger="periodic",
        guarantee="Log groups are sealed with a KMS key.",
        source="cloudwatch-log-group-encrypted",
    ),
}

RECORDED_TYPES: tuple[str, ...] = tuple(sorted({rule.resource_type for rule in MANAGED_RULES.values()}))
"""The resource types the account's configuration recorder must record for every rule to evaluate."""


@dataclass(frozen=True)
class ConfigRulesArgs:
    """What the rules check against, and which are deployed.

    ``function_subnet_ids``: the private subnets the stack's functions must use (``LAMBDA_INSIDE_VPC``'s
    ``subnetIds``; empty: any VPC subnet passes). ``web_acl_arns``: the web ACL(s) the gateway's stage must
    use (``API_GW_ASSOCIATED_WITH_WAF``'s ``WebAclArns``; empty: any web ACL passes). The stack's KMS key
    (``RDS_STORAGE_ENCRYPTED``'s ``kmsKeyId``) comes from the context. ``exclusions``: keys of
    :data:`MANAGED_RULES` not to deploy, e.g. a rule the organisation already runs for the account, or
    the EKS rules in a stage without a cluster. ``scope_tag_key`` (default ``agentstage-environment``):
    the tag that marks the stack's resources. ``periodic_frequency`` (default ``TwentyFour_Hours``): how
    often periodic rules run - each run is billed per evaluated resource.
    """

    function_subnet_ids: Sequence[pulumi.Input[str]] = ()
    web_acl_arns: Sequence[pulumi.Input[str]] = ()
    exclusions: tuple[str, ...] = ()
    scope_tag_key: str = "agentstage-environment"
    periodic_frequency: Frequency = "TwentyFour_Hours"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.exclusions) - set(MANAGED_RULES))
        if unknown:
            raise ValueError(
                f"exclusions name unknown rules: {', '.join(unknown)}; known: {', '.join(MANAGED_RULES)}"
            )
        if self.periodic_frequency not in FREQUENCIES:
            raise ValueError(
                f"periodic_frequency: '{self.periodic_frequency}' is not one of {', '.join(FREQUENCIES)}"
            )


class ConfigRules(Component):
    """AWS Config managed rules for the stack (``agentstage:aws:ConfigRules``).

    Outputs: ``rule_names`` and ``rule_arns``, both by key of :data:`MANAGED_RULES`.
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        args: ConfigRulesArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "ConfigRules", name, opts)
        tag_value = context.tags.get(args.scope_tag_key)
        if not tag_value:
            raise ValueError(
                f"scope_tag_key: the stack's tags have no '{args.scope_tag_key}', so change-triggered rules "
                "would evaluate nothing; tag the stack's resources with it or name a tag they carry"
            )
        parameters: dict[str, Callable[[], Sequence[pulumi.Input[str]]]] = {
            "subnetIds": lambda: args.function_subnet_ids,
            "WebAclArns": lambda: args.web_acl_arns,
            "kmsKeyId": lambda: (context.key,),  # asked only when the rule is deployed
        }
        self.rule_names: dict[str, str] = {}
        self.rule_arns: dict[str, pulumi.Output[str]] = {}
        for key, rule in MANAGED_RULES.items():
            if key in args.exclusions:
                continue
            values = parameters[rule.parameter]() if rule.parameter else ()
            periodic = rule.trigger == "periodic"
            scope = cfg.RuleScopeArgs(tag_key=args.scope_tag_key, tag_value=tag_value)
            created = cfg.Rule(
                f"{name}-{key}",
                name=context.name(key),
                description=rule.guarantee,
                source=cfg.RuleSourceArgs(owner="AWS", source_identifier=rule.identifier),
                input_parameters=_csv_parameter(rule.parameter, values) if values else None,
                scope=None if periodic else scope,
                maximum_execution_frequency=args.periodic_frequency if periodic else None,
                tags=context.tags,
                opts=self.child(),
            )
            self.rule_names[key] = context.name(key)
            self.rule_arns[key] = created.arn
        self.register_outputs({"rule_names": self.rule_names, "rule_arns": self.rule_arns})


def _csv_parameter(parameter: str | None, values: Sequence[pulumi.Input[str]]) -> pulumi.Output[str]:
    """The rule's input parameters: ``{parameter: "a,b"}`` (AWS Config passes every value as a string)."""
    return pulumi.Output.all(*values).apply(lambda known: json.dumps({parameter: ",".join(known)}))
