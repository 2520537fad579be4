"""The EKS cluster as planned: a private, encrypted, fully logged control plane; nodes that keep pods away
from their credentials; roles trusted exactly as AWS documents; Pod Identity for one service account."""

from __future__ import annotations

import base64
import fnmatch
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pytest
from pulumi_aws import get_caller_identity_output

from components.aws.context import AwsContext
from components.aws.eks import NODE_ENDPOINTS, EksCluster, EksClusterArgs, kubeconfig
from components.aws.encryption import stack_log_groups
from components.aws.network import Network, NetworkArgs
from core.engine import record
from core.graph import Resource, ResourceGraph
from policies.rules.aws import RULES

REGION = "eu-west-1"
ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000001"
OUTPUTS = "agentstage:test:Outputs"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
CLUSTER_NAME = "ags-dev-agents"
CLUSTER_ARN = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER_NAME}"
SERVICES = tuple(NODE_ENDPOINTS)

Factory = Callable[[AwsContext, Network], Mapping[str, Any] | None]


def build(factory: Factory, services: tuple[str, ...] = SERVICES) -> ResourceGraph:
    """The graph of a network and ``factory(context, network)``; what it returns is recorded as the inputs of
    a test-only ``agentstage:test:Outputs`` resource."""

    def program() -> None:
        account = get_caller_identity_output().account_id
        context = AwsContext(
            "ags", "dev", REGION, account, {"agentstage-environment": "dev"}, kms_key_arn=KEY
        )
        outputs = factory(context, Network("network", context, NetworkArgs(interface_services=services)))
        if outputs:
            pulumi.CustomResource(OUTPUTS, "outputs", dict(outputs))

    return record(program, config={"aws:region": REGION})


def cluster(context: AwsContext, network: Network, **args: Any) -> EksCluster:
    return EksCluster("agents", context, EksClusterArgs(network=network, **args))


def only(graph: ResourceGraph, type_: str, name: str | None = None) -> Resource:
    found = [r for r in graph.of_type(type_) if name is None or r.name == name]
    assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
    return found[0]


def trust(graph: ResourceGraph, role: str) -> list[dict[str, Any]]:
    return json.loads(only(graph, ROLE, f"{role}-role").get("assumeRolePolicy"))["Statement"]


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    """A default cluster; the worker agent's pods run as ``agents/worker``."""

    def factory(context: AwsContext, network: Network) -> dict[str, Any]:
        eks = cluster(context, network)
        role = eks.pod_role("worker", "agents", "worker")
        association = eks.grant_pod_identity(role, "agents", "worker")
        return {
            "cluster_name": eks.cluster_name,
            "cluster_arn": eks.cluster_arn,
            "endpoint": eks.endpoint,
            "node_role_arn": eks.node_role_arn,
            "association_id": association.association_id,
            "cluster_security_group_id": eks.cluster_security_group_id,
            "autoscaling_group_name": eks.autoscaling_group_name,
        }

    return build(factory)


@pytest.fixture(scope="module")
def outputs(graph: ResourceGraph) -> dict[str, Any]:
    return only(graph, OUTPUTS).inputs


def test_the_api_endpoint_is_private_by_default(graph: ResourceGraph) -> None:
    eks = only(graph, "aws:eks/cluster:Cluster")
    group = only(graph, "aws:ec2/securityGroup:SecurityGroup", "agents-cluster")
    assert eks.get("vpcConfig.endpointPrivateAccess") is True
    assert eks.get("vpcConfig.endpointPublicAccess") is False
    assert not eks.get("vpcConfig.publicAccessCidrs")
    assert eks.get("vpcConfig.securityGroupIds") == [group.mock_id]
    assert sorted(eks.get("vpcConfig.subnetIds")) == sorted(
        s.mock_id for s in graph.of_type("aws:ec2/subnet:Subnet")
    )
    assert not [
        rule for rule in graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if rule.get("securityGroupId") == group.mock_id
    ], "no API client is admitted unless named"  # fmt: skip


def test_public_access_is_only_for_the_named_cidrs() -> None:
    graph = build(
        lambda c, n: (
            cluster(c, n, public_access_cidrs=["84.17.32.0/24"], api_client_cidrs=["10.99.0.0/16"]) and None
        )
    )
    eks = only(graph, "aws:eks/cluster:Cluster")
    assert (eks.get("vpcConfig.endpointPublicAccess"), eks.get("vpcConfig.publicAccessCidrs")) == (
        True,
        ["84.17.32.0/24"],
    )
    assert eks.get("vpcConfig.endpointPrivateAccess") is True
    rule = only(graph, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "agents-api-client-1")
    assert (rule.get("cidrIpv4"), rule.get("fromPort"), rule.get("toPort")) == ("10.99.0.0/16", 443, 443)


def test_secrets_are_sealed_and_every_control_plane_log_is_kept(graph: ResourceGraph) -> None:
    eks = only(graph, "aws:eks/cluster:Cluster")
    assert eks.get("encryptionConfig") == {"provider": {"keyArn": KEY}, "resources": ["secrets"]}
    assert sorted(eks.get("enabledClusterLogTypes")) == sorted(
        ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    )
    logs = only(graph, "aws:cloudwatch/logGroup:LogGroup", "agents-logs")
    assert (logs.get("name"), logs.get("kmsKeyId"), logs.get("retentionInDays")) == (
        f"/aws/eks/{CLUSTER_NAME}/cluster",
        KEY,
        90,
    )
    assert logs.urn in eks.dependencies, "EKS would create the group itself: unsealed, kept forever"
    patterns = stack_log_groups(AwsContext("ags", "dev", REGION, ACCOUNT), ACCOUNT)
    assert any(fnmatch.fnmatchcase(logs.arn, p) for p in patterns), "the stack key's policy must admit it"


def test_the_cluster_role_is_trusted_for_this_cluster_and_may_use_the_key(graph: ResourceGraph) -> None:
    assert trust(graph, "agents-cluster") == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "eks.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnEquals": {"aws:SourceArn": CLUSTER_ARN},
            },
        }
    ]
    policy = only(graph, ROLE_POLICY, "agents-cluster-secrets-encryption")
    assert json.loads(policy.get("policy"))["Statement"] == [
        {
            "Sid": "EnvelopeEncryptSecrets",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:ListGrants"],
            "Resource": KEY,
        }
    ]
    eks = only(graph, "aws:eks/cluster:Cluster")
    assert eks.get("roleArn") == f"arn:aws:iam::{ACCOUNT}:role/ags-dev-agents-cluster"
    assert {
        policy.urn,
        *(a.urn for a in graph.of_type(ATTACHMENT) if a.name.startswith("agents-cluster-")),
    } <= set(eks.dependencies), "EKS checks the role's permissions when it creates the cluster"


def test_service_roles_carry_only_the_managed_policies_eks_documents(graph: ResourceGraph) -> None:
    attached = {(a.get("role"), a.get("policyArn").rsplit("/", 1)[-1]) for a in graph.of_type(ATTACHMENT)}
    assert attached == {
        ("ags-dev-agents-cluster", "AmazonEKSClusterPolicy"),
        ("ags-dev-agents-nodes", "AmazonEKSWorkerNodePolicy"),
        ("ags-dev-agents-nodes", "AmazonEKS_CNI_Policy"),
        ("ags-dev-agents-nodes", "AmazonEC2ContainerRegistryPullOnly"),
    }
    assert trust(graph, "agents-nodes") == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ]
    rules = {rule.id: rule for rule in RULES}
    for resource in (*graph.of_type(ATTACHMENT), *graph.of_type(ROLE)):
        for rule_id in ("AGS-AWS-012", "AGS-AWS-013"):
            rule = rules[rule_id]
            if resource.type in rule.types:
                verdict = rule.check(resource, graph, None)  # type: ignore[arg-type]
                assert verdict.passed, (rule_id, resource.name, verdict)


def test_nodes_keep_pods_away_from_their_credentials(graph: ResourceGraph) -> None:
    template = only(graph, "aws:ec2/launchTemplate:LaunchTemplate")
    assert template.get("metadataOptions") == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1,
        "instanceMetadataTags": "disabled",
    }
    assert template.get("blockDeviceMappings") == [
        {
            "deviceName": "/dev/xvda",
            "ebs": {
                "volumeSize": 50,
                "volumeType": "gp3",
                "encrypted": "true",
                "kmsKeyId": KEY,
                "deleteOnTermination": "true",
            },
        }
    ]
    assert "imageId" not in template.inputs and "iamInstanceProfile" not in template.inputs, "EKS sets both"
    nodes = only(graph, "aws:eks/nodeGroup:NodeGroup")
    assert {key: nodes.get(key) for key in (
        "clusterName", "nodeGroupName", "amiType", "instanceTypes", "scalingConfig", "launchTemplate", "nodeRoleArn",
    )} == {
        "clusterName": CLUSTER_NAME, "nodeGroupName": "ags-dev-agents-nodes", "amiType": "AL2023_x86_64_STANDARD",
        "instanceTypes": ["m6i.large"], "scalingConfig": {"minSize": 1, "maxSize": 3, "desiredSize": 2},
        "launchTemplate": {"id": template.mock_id, "version": "1"},
        "nodeRoleArn": f"arn:aws:iam::{ACCOUNT}:role/ags-dev-agents-nodes",
    }  # fmt: skip
    assert sorted(nodes.get("subnetIds")) == sorted(s.mock_id for s in graph.of_type("aws:ec2/subnet:Subnet"))


def test_nodes_reach_the_endpoints(graph: ResourceGraph, outputs: dict[str, Any]) -> None:
    endpoints = only(graph, "aws:ec2/securityGroup:SecurityGroup", "network-endpoints")
    rule = only(
        graph, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "network-endpoints-from-nodes"
    )
    assert re.fullmatch(r"sg-[0-9a-f]{17}", outputs["cluster_security_group_id"])
    assert (rule.get("securityGroupId"), rule.get("referencedSecurityGroupId"), rule.get("fromPort")) == (
        endpoints.mock_id,
        outputs["cluster_security_group_id"],
        443,
    )


def test_the_deployer_is_admin_through_an_access_entry(graph: ResourceGraph) -> None:
    eks = only(graph, "aws:eks/cluster:Cluster")
    assert eks.get("accessConfig") == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": False,
    }
    deployer = f"arn:aws:iam::{ACCOUNT}:role/agentstage-deployer"  # the role, not its assumed-role session
    entry = only(graph, "aws:eks/accessEntry:AccessEntry")
    assert (entry.get("clusterName"), entry.get("principalArn"), entry.get("type")) == (
        CLUSTER_NAME,
        deployer,
        "STANDARD",
    )
    admin = only(graph, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert (admin.get("principalArn"), admin.get("policyArn"), admin.get("accessScope")) == (
        deployer,
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
        {"type": "cluster"},
    )


def test_pods_get_their_role_through_pod_identity(graph: ResourceGraph, outputs: dict[str, Any]) -> None:
    assert trust(graph, "worker") == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {
                "StringEquals": {
                    "aws:SourceAccount": ACCOUNT,
                    "aws:RequestTag/kubernetes-namespace": "agents",
                    "aws:RequestTag/kubernetes-service-account": "worker",
                },
                "ArnEquals": {"aws:SourceArn": CLUSTER_ARN},
            },
        }
    ]
    agent = only(graph, "aws:eks/addon:Addon", "agents-pod-identity-agent")
    assert (agent.get("clusterName"), agent.get("addonName")) == (CLUSTER_NAME, "eks-pod-identity-agent")
    association = only(graph, "aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert {
        key: association.get(key) for key in ("clusterName", "namespace", "serviceAccount", "roleArn")
    } == {
        "clusterName": CLUSTER_NAME,
        "namespace": "agents",
        "serviceAccount": "worker",
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/ags-dev-worker",
    }
    assert agent.urn in association.dependencies
    assert re.fullmatch(r"a-[a-z0-9]{17}", outputs["association_id"])


def test_outputs(outputs: dict[str, Any]) -> None:
    assert (outputs["cluster_name"], outputs["cluster_arn"]) == (CLUSTER_NAME, CLUSTER_ARN)
    assert re.fullmatch(rf"https://[0-9A-F]{{32}}\.gr7\.{REGION}\.eks\.amazonaws\.com", outputs["endpoint"])
    assert outputs["node_role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/ags-dev-agents-nodes"


def test_the_provider_signs_in_with_aws_eks_get_token(graph: ResourceGraph) -> None:
    provider = only(graph, "pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "<secret>", "it names the private API server: kept secret"
    access = {r.urn for r in graph.of_type("aws:eks/accessEntry:AccessEntry")} | {
        r.urn for r in graph.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    }
    assert len(access) == 2 and access <= set(provider.dependencies), "the deployer is admin before any use"
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()
    config = json.loads(kubeconfig(CLUSTER_NAME, "https://ABC.gr7.eu-west-1.eks.amazonaws.com", ca, REGION))
    assert config["clusters"] == [
        {
            "name": CLUSTER_NAME,
            "cluster": {
                "server": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
                "certificate-authority-data": ca,
            },
        }
    ]
    assert config["current-context"] == CLUSTER_NAME
    assert config["users"] == [
        {
            "name": CLUSTER_NAME,
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "aws",
                    "args": ["eks", "get-token", "--cluster-name", CLUSTER_NAME, "--region", REGION],
                    "interactiveMode": "Never",
                }
            },
        }
    ], "no token is stored: the AWS CLI signs one at each use"


def test_a_role_must_come_from_pod_role_for_the_same_service_account() -> None:
    from components.aws.role import ExecutionRole

    with pytest.raises(ValueError, match="it trusts lambda.amazonaws.com, not this cluster's pods"):
        build(
            lambda c, n: cluster(c, n).grant_pod_identity(ExecutionRole("fn", c), "agents", "worker") and None
        )

    def other_service_account(context: AwsContext, network: Network) -> None:
        eks = cluster(context, network)
        eks.grant_pod_identity(eks.pod_role("worker", "agents", "worker"), "agents", "planner")

    with pytest.raises(ValueError, match="the role trusts agents/worker only, not agents/planner"):
        build(other_service_account)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"kubernetes_version": "1.3"}, "kubernetes_version: '1.3' is not a Kubernetes minor version"),
        ({"min_size": 3, "desired_size": 2}, "must satisfy 0 <= min_size <= desired_size <= max_size"),
        ({"max_size": 0, "min_size": 0, "desired_size": 0}, "max_size >= 1"),
        ({"instance_types": "m6i.large"}, "instance_types: a non-empty list"),
        ({"root_volume_gb": 10}, "root_volume_gb: 10 is outside 20-16384"),
        ({"public_access_cidrs": ["0.0.0.0/0"]}, "must be a narrow IPv4 range, not the whole internet"),
        ({"public_access_cidrs": ["10.0.0.0/8"]}, "public_access_cidrs: '10.0.0.0/8' must be a public"),
        ({"api_client_cidrs": ["84.17.32.0/24"]}, "api_client_cidrs: '84.17.32.0/24' must be a private"),
        ({"api_client_cidrs": ["10.0.0.0/33"]}, "api_client_cidrs: '10.0.0.0/33' is not an IPv4 CIDR"),
    ],
)
def test_bad_cluster_arguments_are_named(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build(lambda c, n: cluster(c, n, **args) and None)


def test_the_nodes_need_their_endpoints() -> None:
    without_pod_identity = tuple(s for s in NODE_ENDPOINTS if s != "eks-auth")
    with pytest.raises(ValueError, match=r"nodes without internet need the endpoints \['eks-auth'\]"):
        build(lambda c, n: cluster(c, n) and None, services=without_pod_identity)


def test_every_endpoint_the_nodes_call_is_listed_with_its_reason() -> None:
    assert sorted(NODE_ENDPOINTS) == sorted(
        ["ec2", "ecr.api", "ecr.dkr", "sts", "eks-auth", "eks", "autoscaling", "logs", "sqs"]
    )
    assert all(len(reason) > 20 for reason in NODE_ENDPOINTS.values())
    assert "monitoring" not in NODE_ENDPOINTS, (
        "nothing on the nodes calls PutMetricData: EMF goes through logs"
    )


def test_the_node_group_and_its_auto_scaling_group_are_outputs(graph: ResourceGraph) -> None:
    nodes = only(graph, "aws:eks/nodeGroup:NodeGroup")
    assert re.fullmatch(
        rf"arn:aws:eks:{REGION}:{ACCOUNT}:nodegroup/{CLUSTER_NAME}/ags-dev-agents-nodes/[0-9a-f-]{{36}}",
        nodes.arn,
    )
    uuid = nodes.arn.rsplit("/", 1)[-1]
    assert only(graph, OUTPUTS).inputs["autoscaling_group_name"] == f"eks-ags-dev-agents-nodes-{uuid}"


@pytest.mark.parametrize(("namespace", "account"), [("Agents", "worker"), ("agents", "Worker_1")])
def test_bad_service_account_names_are_named(namespace: str, account: str) -> None:
    with pytest.raises(ValueError, match="is not a Kubernetes"):
        build(lambda c, n: cluster(c, n).pod_role("worker", namespace, account) and None)


def test_network_policies_are_enforced_by_the_vpc_cni(graph: ResourceGraph) -> None:
    """Without the CNI's policy agent, EKS stores NetworkPolicies and enforces none."""
    addons = {a.get("addonName"): a for a in graph.of_type("aws:eks/addon:Addon")}
    assert json.loads(addons["vpc-cni"].get("configurationValues")) == {"enableNetworkPolicy": "true"}
    assert addons["vpc-cni"].get("resolveConflictsOnCreate") == "OVERWRITE"
