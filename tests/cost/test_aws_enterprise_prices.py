"""The AWS enterprise stage's services are priced from the price rows: the EKS control plane, the nodes and their
root volumes, AWS Config rule evaluations; everything else it adds is free for a stated reason.

The graph is built by hand in the shape the enterprise components give it (inputs camelCase, ids and ARNs as the
mock profile makes them), so each figure can be followed from the resource to the row.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml

from components.aws.config_rules import MANAGED_RULES
from core.graph import Resource, ResourceGraph
from cost import estimate
from cost.aws import CONFIG_RULE_TYPES, FREE, PRICERS
from cost.model import CostLine, Estimate
from cost.prices import PRICES_DIR
from cost.usage import UsageProfile

ROWS = yaml.safe_load((PRICES_DIR / "aws.yaml").read_text(encoding="utf-8"))["prices"]
ACCOUNT, REGION = "123456789012", "eu-west-1"
CLUSTER, TEMPLATE = "ags-prod-agents", "lt-0a1b2c3d4e5f60718"
HOURS, RUNS_A_DAY = 730, 730 / 24

ENTERPRISE_TYPES = (
    "aws:eks/cluster:Cluster",
    "aws:eks/nodeGroup:NodeGroup",
    "aws:eks/addon:Addon",
    "aws:eks/accessEntry:AccessEntry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:ecr/repository:Repository",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy",
    "aws:ecr/pullThroughCacheRule:PullThroughCacheRule",
    "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate",
    "aws:cfg/rule:Rule",
    "aws:budgets/budget:Budget",
    "aws:sns/topicPolicy:TopicPolicy",
    "aws:secretsmanager/secretPolicy:SecretPolicy",
    "aws:dynamodb/resourcePolicy:ResourcePolicy",
    "aws:sqs/queuePolicy:QueuePolicy",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
)
CONFIG_TYPES = {
    "AWS::Lambda::Function": "aws:lambda/function:Function",
    "AWS::EKS::Cluster": "aws:eks/cluster:Cluster",
    "AWS::ECR::Repository": "aws:ecr/repository:Repository",
    "AWS::RDS::DBInstance": "aws:rds/clusterInstance:ClusterInstance",
    "AWS::RDS::DBCluster": "aws:rds/cluster:Cluster",
    "AWS::S3::Bucket": "aws:s3/bucket:Bucket",
    "AWS::ApiGateway::Stage": "aws:apigateway/stage:Stage",
    "AWS::EC2::VPC": "aws:ec2/vpc:Vpc",
    "AWS::Logs::LogGroup": "aws:cloudwatch/logGroup:LogGroup",
}
"""AWS Config's resource types in pulumi-aws terms."""


def row(meter: str, sku: str, region: str = REGION) -> float:
    """The price of a row of cost/prices/aws.yaml, read from the file itself."""
    [price] = [r["price"] for r in ROWS if (r["meter"], r["sku"], r["region"]) == (meter, sku, region)]
    return float(price)


def cloud(type_: str, logical: str, mock_id: str | None = None, /, **inputs: Any) -> Resource:
    arn = f"arn:aws:test:{REGION}:{ACCOUNT}:{logical}"  # a regional ARN: the region the plan shows
    return Resource(
        urn=f"urn:pulumi:prod::agentstage::{type_}::{logical}",
        type=type_,
        name=logical,
        custom=True,
        inputs=inputs,
        mock_id=mock_id or arn,
        arn=arn,
    )


def config_rule(key: str, identifier: str, frequency: str | None = None) -> Resource:
    inputs: dict[str, Any] = {
        "name": f"ags-prod-{key}",
        "source": {"owner": "AWS", "sourceIdentifier": identifier},
    }
    if frequency:
        inputs["maximumExecutionFrequency"] = frequency
    else:
        inputs["scope"] = {"tagKey": "agentstage-environment", "tagValue": "prod"}
    return cloud("aws:cfg/rule:Rule", f"compliance-{key}", **inputs)


def enterprise() -> ResourceGraph:
    """A cluster with one node group on a launch template, its access and Pod Identity, the registry, two Config
    rules, the budget and the data services' resource policies."""
    resources = [
        cloud(
            "aws:eks/cluster:Cluster",
            "agents-cluster",
            CLUSTER,
            name=CLUSTER,
            version="1.33",
            enabledClusterLogTypes=["api", "audit", "authenticator", "controllerManager", "scheduler"],
        ),
        cloud(
            "aws:ec2/launchTemplate:LaunchTemplate",
            "agents-nodes",
            TEMPLATE,
            name="ags-prod-agents-nodes",
            metadataOptions={"httpTokens": "required", "httpPutResponseHopLimit": 1},
            blockDeviceMappings=[
                {
                    "deviceName": "/dev/xvda",
                    "ebs": {"volumeSize": 50, "volumeType": "gp3", "encrypted": "true"},
                }
            ],
        ),
        cloud(
            "aws:eks/nodeGroup:NodeGroup",
            "agents-nodes",
            f"{CLUSTER}:ags-prod-agents-nodes",
            clusterName=CLUSTER,
            nodeGroupName="ags-prod-agents-nodes",
            amiType="AL2023_x86_64_STANDARD",
            capacityType="ON_DEMAND",
            instanceTypes=["m6i.large"],
            scalingConfig={"minSize": 2, "desiredSize": 2, "maxSize": 5},
            launchTemplate={"id": TEMPLATE, "version": "1"},
        ),
        cloud(
            "aws:eks/addon:Addon",
            "agents-pod-identity-agent",
            clusterName=CLUSTER,
            addonName="eks-pod-identity-agent",
        ),
        cloud("aws:eks/accessEntry:AccessEntry", "agents-deployer", clusterName=CLUSTER, type="STANDARD"),
        cloud(
            "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
            "agents-deployer-admin",
            clusterName=CLUSTER,
            accessScope={"type": "cluster"},
        ),
        cloud(
            "aws:eks/podIdentityAssociation:PodIdentityAssociation",
            "agents-agents-research",
            clusterName=CLUSTER,
            namespace="agents",
            serviceAccount="research",
        ),
        cloud("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "agents-nodes-AmazonEKS_CNI_Policy"),
        cloud("aws:ecr/repository:Repository", "registry-repository", name="ags-prod-agents"),
        cloud("aws:ecr/lifecyclePolicy:LifecyclePolicy", "registry-lifecycle", repository="ags-prod-agents"),
        cloud("aws:ecr/repositoryPolicy:RepositoryPolicy", "registry-policy", repository="ags-prod-agents"),
        cloud(
            "aws:ecr/pullThroughCacheRule:PullThroughCacheRule",
            "registry-k8s-cache",
            ecrRepositoryPrefix="k8s",
        ),
        cloud(
            "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate",
            "registry-k8s-template",
            prefix="k8s",
        ),
        config_rule("eks-secrets-encrypted", "EKS_SECRETS_ENCRYPTED", "TwentyFour_Hours"),
        config_rule("ecr-private-tag-immutability-enabled", "ECR_PRIVATE_TAG_IMMUTABILITY_ENABLED"),
        cloud("aws:budgets/budget:Budget", "budgets-cost", name="ags-prod-cost", budgetType="COST"),
        cloud("aws:sns/topicPolicy:TopicPolicy", "budgets-topic-policy"),
        cloud("aws:secretsmanager/secretPolicy:SecretPolicy", "settings-perimeter"),
        cloud("aws:dynamodb/resourcePolicy:ResourcePolicy", "state-conversations-perimeter"),
        cloud("aws:sqs/queuePolicy:QueuePolicy", "tasks-research-perimeter"),
        cloud("aws:ec2/vpcEndpoint:VpcEndpoint", "network-s3", vpcEndpointType="Gateway"),
    ]
    return ResourceGraph(stack="enterprise-aws-test", project="agentstage", resources=resources)


def edited(graph: ResourceGraph, name: str, type_: str, **inputs: Any) -> ResourceGraph:
    """The graph with ``inputs`` of resource ``name`` of ``type_`` replaced (``None`` removes one)."""
    resources = []
    for resource in graph.resources:
        if (resource.name, resource.type) == (name, type_):
            merged = {key: value for key, value in {**resource.inputs, **inputs}.items() if value is not None}
            resource = dataclasses.replace(resource, inputs=merged)
        resources.append(resource)
    return ResourceGraph(graph.stack, graph.project, resources)


def lines_of(result: Estimate) -> dict[tuple[str, str], CostLine]:
    return {(line.resource, line.price.meter): line for line in result.lines if line.kind == "fixed"}


NODES = "aws:eks/nodeGroup:NodeGroup"


def test_every_enterprise_type_is_priced_or_free_for_a_reason() -> None:
    assert not set(PRICERS) & set(FREE)
    missing = [t for t in ENTERPRISE_TYPES if t not in PRICERS and t not in FREE]
    assert missing == [], "add a pricer in cost/aws.py or a reason it is free"
    assert all(len(FREE[t]) > 10 for t in ENTERPRISE_TYPES if t in FREE)
    result = estimate(enterprise())
    assert result.unpriced == ()


def test_every_regional_row_of_the_enterprise_is_priced_in_both_regions() -> None:
    for meter, sku in (
        ("eks.cluster", "standard"),
        ("ec2.instance", "m6i.large"),
        ("ebs.volume", "gp3"),
        ("config.rule-evaluation", "standard"),
    ):
        assert row(meter, sku, "eu-west-1") > 0 and row(meter, sku, "us-east-1") > 0, (meter, sku)


def test_fixed_cost_of_the_enterprise_services_from_the_price_rows() -> None:
    fixed = lines_of(estimate(enterprise()))
    control_plane = fixed[("agents-cluster", "eks.cluster")]
    assert control_plane.quantity == HOURS and control_plane.monthly == pytest.approx(HOURS * 0.10)
    assert "standard-support rate (Kubernetes 1.33" in control_plane.basis
    # Two m6i.large nodes at the group's autoscaling minimum, every hour; a 50 GB gp3 root volume each.
    nodes = fixed[("agents-nodes", "ec2.instance")]
    assert (nodes.price.sku, nodes.quantity) == ("m6i.large", 2 * HOURS)
    assert (
        nodes.monthly == pytest.approx(2 * HOURS * row("ec2.instance", "m6i.large")) == pytest.approx(156.22)
    )
    assert nodes.basis == "2 x m6i.large (autoscaling minimum; desired 2, up to 5) x 730 h"
    volumes = fixed[("agents-nodes", "ebs.volume")]
    assert (volumes.price.sku, volumes.quantity) == ("gp3", 2 * 50)
    assert volumes.monthly == pytest.approx(100 * row("ebs.volume", "gp3")) == pytest.approx(8.80)
    # A periodic Config rule evaluates the plan's one cluster once a day.
    rule = fixed[("compliance-eks-secrets-encrypted", "config.rule-evaluation")]
    assert rule.quantity == pytest.approx(RUNS_A_DAY) and rule.monthly == pytest.approx(RUNS_A_DAY * 0.001)
    assert estimate(enterprise()).fixed == pytest.approx(73 + 156.22 + 8.80 + RUNS_A_DAY * 0.001)


def test_what_costs_nothing_of_its_own_says_why() -> None:
    reasons = {(f.resource, f.type): f.reason for f in estimate(enterprise()).free}
    assert (
        "one each time a resource in its scope changes"
        in reasons[("compliance-ecr-private-tag-immutability-enabled", "aws:cfg/rule:Rule")]
    )
    assert "bills only action-enabled budgets" in reasons[("budgets-cost", "aws:budgets/budget:Budget")]
    assert (
        "GB-month of the images it stores"
        in reasons[("registry-repository", "aws:ecr/repository:Repository")]
    )
    assert "bill on their node group" in reasons[("agents-nodes", "aws:ec2/launchTemplate:LaunchTemplate")]
    assert "their pods run on the nodes" in reasons[("agents-pod-identity-agent", "aws:eks/addon:Addon")]


def test_usage_adds_nothing_to_the_cluster() -> None:
    """Nodes bill whether the agents are busy or not; the autoscaler's extra nodes are not sized by a profile."""
    profile = UsageProfile.model_validate({"agents": {"*": {"requestsPerDay": 1000}}})
    assert [line for line in estimate(enterprise(), usage=profile).lines if line.kind == "usage"] == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"capacityType": "SPOT"}, "Spot capacity bills the hour's Spot price"),
        ({"amiType": "WINDOWS_CORE_2022_x86_64"}, "amiType WINDOWS_CORE_2022_x86_64: only Linux instances"),
        (
            {"instanceTypes": ["c7g.large"]},
            "no price for ec2.instance sku c7g.large in eu-west-1 (priced there: m6i.large)",
        ),
        ({"launchTemplate": None}, "root volumes take EKS's default size and type"),
    ],
)
def test_node_groups_the_table_cannot_price_are_named(change: dict[str, Any], reason: str) -> None:
    unpriced = estimate(edited(enterprise(), "agents-nodes", NODES, **change)).unpriced
    assert [u.resource for u in unpriced] == ["agents-nodes"] and reason in unpriced[0].reason, unpriced


def test_a_node_group_at_zero_costs_nothing_idle_and_defaults_to_t3_medium() -> None:
    idle = lines_of(
        estimate(edited(enterprise(), "agents-nodes", NODES, scalingConfig={"minSize": 0, "maxSize": 3}))
    )
    assert (
        idle[("agents-nodes", "ec2.instance")].monthly == 0
        and idle[("agents-nodes", "ebs.volume")].monthly == 0
    )
    [default] = estimate(edited(enterprise(), "agents-nodes", NODES, instanceTypes=None)).unpriced
    assert "sku t3.medium" in default.reason


def test_gp3_beyond_its_included_performance_is_named() -> None:
    template = "aws:ec2/launchTemplate:LaunchTemplate"
    fast = [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 50, "volumeType": "gp3", "iops": 6000}}]
    result = estimate(edited(enterprise(), "agents-nodes", template, blockDeviceMappings=fast))
    assert ["3000 IOPS or 125 MB/s bill the excess" in u.reason for u in result.unpriced] == [True]
    assert lines_of(result)[("agents-nodes", "ebs.volume")].quantity == 100


def test_the_us_east_rows_price_the_same_stack_there() -> None:
    graph = enterprise()
    graph = ResourceGraph(
        graph.stack,
        graph.project,
        [dataclasses.replace(r, inputs={**r.inputs, "region": "us-east-1"}) for r in graph.resources],
    )
    fixed = lines_of(estimate(graph))
    assert fixed[("agents-nodes", "ec2.instance")].monthly == pytest.approx(
        2 * HOURS * row("ec2.instance", "m6i.large", "us-east-1")
    )
    assert fixed[("agents-nodes", "ebs.volume")].price.region == "us-east-1"


def test_config_rules_run_at_their_frequency_on_the_resources_they_evaluate() -> None:
    hourly = config_rule("eks-secrets-encrypted", "EKS_SECRETS_ENCRYPTED", "One_Hour")
    graph = ResourceGraph(
        "t", "agentstage", [r for r in enterprise().resources if r.name != hourly.name] + [hourly]
    )
    line = lines_of(estimate(graph))[("compliance-eks-secrets-encrypted", "config.rule-evaluation")]
    assert line.quantity == HOURS and "1 of the plan's Cluster resources x 730.0 runs" in line.basis
    custom = config_rule("custom", "MY_OWN_RULE", "One_Hour")
    [unpriced] = estimate(ResourceGraph("t", "agentstage", [custom])).unpriced
    assert "MY_OWN_RULE: cost/aws.py does not know which resources it evaluates" in unpriced.reason


def test_every_managed_rule_of_the_stage_is_known_with_the_types_it_evaluates() -> None:
    for key, rule in MANAGED_RULES.items():
        assert CONFIG_TYPES[rule.resource_type] in CONFIG_RULE_TYPES[rule.identifier], key
