"""AWS Config rules as planned: one managed rule per guarantee, named after the stack, change-triggered rules
scoped to the stack's tag and pinned to its subnets, web ACL and key, periodic rules account-wide."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_aws import get_caller_identity_output

from components.aws.config_rules import MANAGED_RULES, RECORDED_TYPES, ConfigRules, ConfigRulesArgs
from components.aws.context import AwsContext
from core.engine import record
from core.graph import Resource, ResourceGraph

REGION = "eu-west-1"
ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000001"
TAGS = {"agentstage-environment": "dev", "managed-by": "pulumi"}
SUBNETS = ("subnet-0123456789abcdef0", "subnet-0fedcba9876543210")
WEB_ACL = (
    f"arn:aws:wafv2:{REGION}:{ACCOUNT}:regional/webacl/ags-dev-gateway/11111111-2222-3333-4444-555555555555"
)
RULE = "aws:cfg/rule:Rule"

PERIODIC = {
    "EKS_ENDPOINT_NO_PUBLIC_ACCESS",
    "EKS_SECRETS_ENCRYPTED",
    "ECR_PRIVATE_IMAGE_SCANNING_ENABLED",
    "VPC_FLOW_LOGS_ENABLED",
    "CLOUDWATCH_LOG_GROUP_ENCRYPTED",
}
"""The rules the Developer Guide lists with trigger type Periodic; every other one is change-triggered."""


def build(
    args: ConfigRulesArgs, *, tags: dict[str, str] = TAGS, key: str | None = KEY
) -> dict[str, Resource]:
    """The stack's rules, by key of MANAGED_RULES."""

    def program() -> None:
        account = get_caller_identity_output().account_id
        ConfigRules("compliance", AwsContext("ags", "dev", REGION, account, tags, kms_key_arn=key), args)

    graph: ResourceGraph = record(program, config={"aws:region": REGION})
    return {rule.name.removeprefix("compliance-"): rule for rule in graph.of_type(RULE)}


@pytest.fixture(scope="module")
def rules() -> dict[str, Resource]:
    return build(ConfigRulesArgs(function_subnet_ids=SUBNETS, web_acl_arns=(WEB_ACL,)))


def test_every_guarantee_has_its_aws_managed_rule_named_after_the_stack(rules: dict[str, Resource]) -> None:
    assert set(rules) == set(MANAGED_RULES)
    for key, rule in rules.items():
        assert rule.get("name") == f"ags-dev-{key}"
        assert rule.get("source") == {"owner": "AWS", "sourceIdentifier": MANAGED_RULES[key].identifier}
        assert rule.get("description") == MANAGED_RULES[key].guarantee
        assert rule.get("tags") == TAGS
    assert {rule.get("source.sourceIdentifier") for rule in rules.values()} >= {
        "LAMBDA_INSIDE_VPC", "EKS_ENDPOINT_NO_PUBLIC_ACCESS", "EKS_SECRETS_ENCRYPTED",
        "ECR_PRIVATE_IMAGE_SCANNING_ENABLED", "ECR_PRIVATE_TAG_IMMUTABILITY_ENABLED",
        "RDS_INSTANCE_PUBLIC_ACCESS_CHECK", "RDS_STORAGE_ENCRYPTED", "S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED",
        "API_GW_ASSOCIATED_WITH_WAF", "VPC_FLOW_LOGS_ENABLED", "CLOUDWATCH_LOG_GROUP_ENCRYPTED",
    }  # fmt: skip


def test_change_triggered_rules_evaluate_the_stacks_tagged_resources_only(rules: dict[str, Resource]) -> None:
    changed = {
        key: rule for key, rule in rules.items() if rule.get("source.sourceIdentifier") not in PERIODIC
    }
    assert len(changed) == len(MANAGED_RULES) - len(PERIODIC)
    for key, rule in changed.items():
        assert MANAGED_RULES[key].trigger == "change", key
        assert rule.get("scope") == {"tagKey": "agentstage-environment", "tagValue": "dev"}, key
        assert "maximumExecutionFrequency" not in rule.inputs, key


def test_periodic_rules_run_daily_account_wide_and_pin_nothing_of_this_stack(
    rules: dict[str, Resource],
) -> None:
    periodic = {key: rule for key, rule in rules.items() if rule.get("source.sourceIdentifier") in PERIODIC}
    assert len(periodic) == len(PERIODIC)
    for key, rule in periodic.items():
        assert MANAGED_RULES[key].trigger == "periodic", key
        assert rule.get("maximumExecutionFrequency") == "TwentyFour_Hours", key
        assert "scope" not in rule.inputs, key
        assert "inputParameters" not in rule.inputs, (
            "a stack's values would flag every other stack's resources"
        )


def test_the_stacks_subnets_web_acl_and_key_are_what_the_rules_check_against(
    rules: dict[str, Resource],
) -> None:
    parameters = {
        key: json.loads(rule.get("inputParameters"))
        for key, rule in rules.items()
        if rule.get("inputParameters")
    }
    assert parameters == {
        "lambda-inside-vpc": {"subnetIds": ",".join(SUBNETS)},
        "api-gw-associated-with-waf": {"WebAclArns": WEB_ACL},
        "rds-storage-encrypted": {"kmsKeyId": KEY},
    }


def test_without_subnets_or_web_acls_any_passes() -> None:
    rules = build(ConfigRulesArgs())
    assert "inputParameters" not in rules["lambda-inside-vpc"].inputs
    assert "inputParameters" not in rules["api-gw-associated-with-waf"].inputs
    assert json.loads(rules["rds-storage-encrypted"].get("inputParameters")) == {"kmsKeyId": KEY}


def test_the_recorder_must_record_every_evaluated_type() -> None:
    assert RECORDED_TYPES == (
        "AWS::ApiGateway::Stage", "AWS::EC2::VPC", "AWS::ECR::Repository", "AWS::EKS::Cluster",
        "AWS::Lambda::Function", "AWS::Logs::LogGroup", "AWS::RDS::DBCluster", "AWS::RDS::DBInstance",
        "AWS::S3::Bucket",
    )  # fmt: skip


def test_excluded_rules_are_not_deployed_and_frequency_is_configurable() -> None:
    exclusions = ("eks-endpoint-no-public-access", "eks-secrets-encrypted", "rds-storage-encrypted")
    rules = build(ConfigRulesArgs(exclusions=exclusions, periodic_frequency="Six_Hours"), key=None)
    assert set(rules) == set(MANAGED_RULES) - set(exclusions), "without the key rule, no key is needed"
    assert rules["vpc-flow-logs-enabled"].get("maximumExecutionFrequency") == "Six_Hours"


def test_the_key_rule_needs_the_stack_key() -> None:
    with pytest.raises(ValueError, match="the stack's KMS key is not set"):
        build(ConfigRulesArgs(), key=None)


def test_a_stack_without_the_scope_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="scope_tag_key: the stack's tags have no 'agentstage-environment'"):
        build(ConfigRulesArgs(), tags={"managed-by": "pulumi"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"exclusions": ("eks-public",)},
            "exclusions name unknown rules: eks-public; known: lambda-inside-vpc",
        ),
        ({"periodic_frequency": "Daily"}, "periodic_frequency: 'Daily' is not one of One_Hour"),
    ],
)
def test_bad_arguments_are_named(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConfigRulesArgs(**args)
