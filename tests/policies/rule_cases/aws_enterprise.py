"""Fixtures for the AWS enterprise rules: an EKS cluster and its node group, Pod Identity, a function and its
role in the VPC, endpoints, the agent registry and a fenced queue, as pulumi-aws inputs the way components/aws
renders them (ids and ARNs in the AWS mock profile's account)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from core.graph import Resource
from policies.rules import Stage
from rule_cases.aws import ACCOUNT, KEY_ARN, REGION, ROLE, ROLE_POLICY, key, statement
from rule_cases.base import Case, flip, merged, ref, res

CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
POD_IDENTITY = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
FUNCTION = "aws:lambda/function:Function"
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
REPOSITORY = "aws:ecr/repository:Repository"
REPOSITORY_POLICY = "aws:ecr/repositoryPolicy:RepositoryPolicy"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"

CLUSTER_NAME = "ags-prod-agents"
CLUSTER_ARN = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER_NAME}"
LOG_GROUP_NAME = f"/aws/eks/{CLUSTER_NAME}/cluster"
SUBNETS = ("subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788")
FUNCTIONS_SG = "sg-0c0ffee0c0ffee000"
TEMPLATE_ID = "lt-0123456789abcdef0"
SQS_ENDPOINT = "vpce-0a0a0a0a0a0a0a0a0"
QUEUE_NAME = "ags-prod-tasks-research"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{QUEUE_NAME}"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE_NAME}"
REPOSITORY_NAME = "ags-prod-agents"
REPOSITORY_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{REPOSITORY_NAME}"
PULL = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
ENTERPRISE = Stage.ENTERPRISE


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def service_trust(service: str, **conditions: dict[str, Any]) -> dict[str, Any]:
    """A trust statement as iam.service_trust renders it (this account only, plus ``conditions``)."""
    condition = {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    for operator, values in conditions.items():
        condition[operator] = {**condition.get(operator, {}), **values}
    actions = (
        ["sts:AssumeRole", "sts:TagSession"] if service == "pods.eks.amazonaws.com" else "sts:AssumeRole"
    )
    return {"Effect": "Allow", "Principal": {"Service": service}, "Action": actions, "Condition": condition}


def role(name: str, *trust: dict[str, Any]) -> Resource:
    return res(ROLE, f"{name}-role", {"name": name, "assumeRolePolicy": document(*trust)}, arn=role_arn(name))


def grant(owner: Resource, name: str, *statements: dict[str, Any]) -> Resource:
    """A role policy as ExecutionRole.allow renders it: ``role`` is the role's id (its name)."""
    inputs = {"role": owner.get("name"), "name": name, "policy": document(*statements)}
    return res(ROLE_POLICY, f"{owner.get('name')}-{name}", inputs, dependencies=(owner.urn,))


# --- EKS -----------------------------------------------------------------------------------------------

CLUSTER_INPUTS: dict[str, Any] = {
    "name": CLUSTER_NAME,
    "version": "1.33",
    "roleArn": role_arn("ags-prod-agents-cluster"),
    "vpcConfig": {
        "endpointPrivateAccess": True,
        "endpointPublicAccess": False,
        "subnetIds": list(SUBNETS),
        "securityGroupIds": ["sg-0123456789abcdef0"],
    },
    "encryptionConfig": {"provider": {"keyArn": KEY_ARN}, "resources": ["secrets"]},
    "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
    "accessConfig": {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False},
}


def control_plane_logs() -> Resource:
    return res(LOG_GROUP, "agents-logs", {"name": LOG_GROUP_NAME, "retentionInDays": 90, "kmsKeyId": KEY_ARN})


def cluster(change: dict[str, Any] | None = None, *, logged: bool = True) -> list[Resource]:
    """The stack's key, the control plane's log group and the cluster created after it."""
    logs = control_plane_logs()
    inputs = merged(CLUSTER_INPUTS, change or {})
    depends = (logs.urn,) if logged else ()
    return [key(), logs, res(CLUSTER, "agents-cluster", inputs, dependencies=depends, arn=CLUSTER_ARN)]


METADATA = {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}


def nodes(metadata: dict[str, Any] | None = None, *, template: bool = True) -> list[Resource]:
    launch = res(
        LAUNCH_TEMPLATE,
        "agents-nodes-template",
        {"name": "ags-prod-agents-nodes", "metadataOptions": {**METADATA, **(metadata or {})}},
    )
    inputs: dict[str, Any] = {
        "clusterName": CLUSTER_NAME,
        "nodeGroupName": "ags-prod-agents-nodes",
        "nodeRoleArn": role_arn("ags-prod-agents-nodes"),
        "instanceTypes": ["m6i.large"],
        "scalingConfig": {"minSize": 1, "maxSize": 3, "desiredSize": 2},
    }
    if template:
        inputs["launchTemplate"] = {"id": ref(launch), "version": "1"}
    group = res(NODE_GROUP, "agents-nodes", inputs, dependencies=(launch.urn,))
    return [launch, group]


def pod_role(*extra: dict[str, Any]) -> Resource:
    pods = service_trust(
        "pods.eks.amazonaws.com",
        ArnEquals={"aws:SourceArn": CLUSTER_ARN},
        StringEquals={
            "aws:RequestTag/kubernetes-namespace": "agents",
            "aws:RequestTag/kubernetes-service-account": "research",
        },
    )
    return role("ags-prod-research-pods", pods, *extra)


def pod_identity(*extra: dict[str, Any], service_account: str = "research") -> list[Resource]:
    pods = pod_role(*extra)
    inputs = {
        "clusterName": CLUSTER_NAME,
        "namespace": "agents",
        "serviceAccount": service_account,
        "roleArn": pods.arn,
    }
    return [pods, res(POD_IDENTITY, "agents-agents-research", inputs, dependencies=(pods.urn,))]


# --- the VPC -------------------------------------------------------------------------------------------


def vpc() -> list[Resource]:
    network = res(VPC, "network-vpc", {"cidrBlock": "10.20.0.0/16"})
    subnets = [
        res(SUBNET, f"network-private-{i + 1}", {"vpcId": ref(network), "cidrBlock": f"10.20.{16 * i}.0/20"})
        for i in range(2)
    ]
    return [network, *subnets]


def subnet_ids(resources: list[Resource]) -> list[str]:
    return [ref(r) for r in resources if r.type == SUBNET]


def endpoint(service: str, kind: str = "Interface", **change: Any) -> Resource:
    inputs = {
        "serviceName": f"com.amazonaws.{REGION}.{service}",
        "vpcEndpointType": kind,
        **({"privateDnsEnabled": True, "subnetIds": list(SUBNETS)} if kind == "Interface" else {}),
        **change,
    }
    return res(ENDPOINT, f"network-{service.replace('.', '-')}", inputs)


def in_vpc(network: list[Resource], **change: Any) -> dict[str, Any]:
    placement = {"subnetIds": subnet_ids(network), "securityGroupIds": [FUNCTIONS_SG]}
    inputs = {
        "name": "ags-prod-writer",
        "role": role_arn("ags-prod-writer"),
        "runtime": "python3.11",
        "kmsKeyArn": KEY_ARN,
        "vpcConfig": placement,
    }
    return merged(inputs, change)


def function_in(*, placed: bool = True) -> list[Resource]:
    network = vpc()
    inputs = in_vpc(network) if placed else merged(in_vpc(network), {"vpcConfig": None})
    return [*network, res(FUNCTION, "writer-function", inputs)]


SEND = statement(["sqs:SendMessage", "sqs:GetQueueUrl"], QUEUE_ARN, Sid="SendTasks")


def caller(*endpoints: Resource) -> list[Resource]:
    """A function in the VPC whose role sends to a queue, and the VPC's ``endpoints``."""
    network = vpc()
    writer = role("ags-prod-writer", service_trust("lambda.amazonaws.com"))
    function = res(FUNCTION, "writer-function", in_vpc(network), dependencies=(writer.urn,))
    return [*network, *endpoints, writer, grant(writer, "queues-send", SEND), function]


# --- the agent registry --------------------------------------------------------------------------------

REPOSITORY_INPUTS: dict[str, Any] = {
    "name": REPOSITORY_NAME,
    "imageTagMutability": "IMMUTABLE",
    "imageScanningConfiguration": {"scanOnPush": True},
    "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": KEY_ARN}],
}
NODE_ROLE = role_arn("ags-prod-agents-nodes")
NODES_PULL = {"Sid": "NodesPull", "Effect": "Allow", "Principal": {"AWS": NODE_ROLE}, "Action": PULL}
ONLY_NODES_PULL = {
    "Sid": "OnlyNodesPull",
    "Effect": "Deny",
    "Principal": "*",
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
    "Condition": {"ArnNotEquals": {"aws:PrincipalArn": NODE_ROLE}},
}


def registry(*statements: dict[str, Any]) -> list[Resource]:
    """The repository, its policy and the node group whose role it admits."""
    repository = res(REPOSITORY, "registry-repository", REPOSITORY_INPUTS, arn=REPOSITORY_ARN)
    policy = res(
        REPOSITORY_POLICY,
        "registry-policy",
        {"repository": REPOSITORY_NAME, "policy": document(*statements)},
        dependencies=(repository.urn,),
    )
    node_role = role("ags-prod-agents-nodes", service_trust("ec2.amazonaws.com"))
    return [repository, policy, node_role, *nodes()]


# --- the data perimeter --------------------------------------------------------------------------------


def perimeter(endpoint_id: str = SQS_ENDPOINT) -> dict[str, Any]:
    return {
        "Sid": "OnlyThroughVpcEndpoints",
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["sqs:ReceiveMessage", "sqs:SendMessage"],
        "Resource": QUEUE_ARN,
        "Condition": {
            "StringNotEquals": {"aws:SourceVpce": [endpoint_id]},
            "BoolIfExists": {"aws:PrincipalIsAWSService": "false", "aws:ViaAWSService": "false"},
        },
    }


def fenced_queue(*statements: dict[str, Any]) -> list[Resource]:
    """The research queue in a stack with a VPC and an sqs endpoint; ``statements`` make its queue policy."""
    sqs_endpoint = dataclasses.replace(endpoint("sqs"), mock_id=SQS_ENDPOINT)
    queue = res(QUEUE, "bus-tasks-research", {"name": QUEUE_NAME, "kmsMasterKeyId": KEY_ARN}, arn=QUEUE_ARN)
    queue = dataclasses.replace(queue, mock_id=QUEUE_URL)  # SQS names a queue by its URL
    policies = (
        [
            res(
                QUEUE_POLICY,
                "bus-tasks-research-policy",
                {"queueUrl": QUEUE_URL, "policy": document(*statements)},
                dependencies=(queue.urn,),
            )
        ]
        if statements
        else []
    )
    return [*vpc(), sqs_endpoint, queue, *policies]


CASES = {
    "AGS-AWS-024": Case(
        target="agents-cluster",
        passing=cluster,
        failing=lambda: cluster(
            {"vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}}
        ),
    ),
    "AGS-AWS-025": Case(
        target="agents-cluster",
        passing=cluster,
        failing=lambda: cluster({"encryptionConfig": {"provider": {"keyArn": None}}}),
    ),
    "AGS-AWS-026": Case(
        target="agents-cluster",
        passing=cluster,
        failing=lambda: cluster(logged=False),
    ),
    "AGS-AWS-027": Case(
        target="agents-cluster",
        passing=cluster,
        failing=lambda: cluster({"accessConfig": {"authenticationMode": "API_AND_CONFIG_MAP"}}),
    ),
    "AGS-AWS-028": Case(
        target="agents-nodes",
        passing=nodes,
        failing=lambda: nodes({"httpPutResponseHopLimit": 2}),
    ),
    "AGS-AWS-029": Case(
        target="agents-agents-research",
        passing=pod_identity,
        failing=lambda: pod_identity(service_trust("lambda.amazonaws.com")),
    ),
    "AGS-AWS-030": Case(
        target="writer-function",
        passing=function_in,
        failing=lambda: function_in(placed=False),
        stage=ENTERPRISE,
    ),
    "AGS-AWS-031": Case(
        target="ags-prod-writer-role",
        passing=lambda: caller(endpoint("sqs"), endpoint("ec2")),
        failing=lambda: caller(endpoint("ec2")),
        stage=ENTERPRISE,
    ),
    "AGS-AWS-032": flip(
        ENDPOINT,
        "network-sqs",
        {
            "serviceName": f"com.amazonaws.{REGION}.sqs",
            "vpcEndpointType": "Interface",
            "privateDnsEnabled": True,
        },
        {"privateDnsEnabled": False},
        stage=Stage.FOUNDATION,
    ),
    "AGS-AWS-033": flip(
        REPOSITORY,
        "registry-repository",
        REPOSITORY_INPUTS,
        {"imageTagMutability": "MUTABLE"},
        extra=lambda: [key()],
    ),
    "AGS-AWS-034": Case(
        target="registry-repository",
        passing=lambda: registry(NODES_PULL, ONLY_NODES_PULL),
        failing=lambda: registry(NODES_PULL),
    ),
    "AGS-AWS-035": Case(
        target="bus-tasks-research",
        passing=lambda: fenced_queue(perimeter()),
        failing=fenced_queue,
        stage=ENTERPRISE,
    ),
}
