"""The AWS enterprise stage's building blocks, planned under the AWS mocks as its components render them.

One program with every resource type the stage adds: the private network and its endpoints, the EKS cluster
(node group from a launch template, Pod Identity for one agent's service account), the agent registry, AWS
Config rules, the sealed alarm topic, an agent function placed in the VPC, and resource
policies that keep the data services to the VPC's endpoints. The exporter, checkov and the enterprise rules
are tested on it; nothing here is a blueprint (the stage's composition is not this module's business).
"""

from __future__ import annotations

import json
from functools import cache

import pulumi
from pulumi_aws import dynamodb, ecr, get_caller_identity_output, lambda_, secretsmanager, sns, sqs

from components.aws.config_rules import ConfigRules, ConfigRulesArgs
from components.aws.context import AwsContext
from components.aws.eks import NODE_ENDPOINTS, EksCluster, EksClusterArgs
from components.aws.encryption import Encryption
from components.aws.iam import Statement
from components.aws.network import Network, NetworkArgs
from components.aws.registry import AgentRegistry, RegistryArgs
from components.aws.role import ExecutionRole
from core.engine import record
from core.graph import ResourceGraph

REGION = "eu-west-1"
ACCOUNT = "123456789012"
TAGS = {"agentstage-environment": "prod", "managed-by": "pulumi"}
SERVICES = tuple(
    dict.fromkeys(
        (*NODE_ENDPOINTS, "sqs", "secretsmanager", "bedrock-runtime", "kms", "logs", "monitoring", "xray")
    )
)
"""The interface endpoints: what the nodes call, and what the agents call from inside the VPC."""
ENTERPRISE_TYPES = {
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
    "aws:cfg/rule:Rule": "aws_config_config_rule",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "aws_vpc_endpoint",
    "aws:ec2/subnet:Subnet": "aws_subnet",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
    "aws:secretsmanager/secretPolicy:SecretPolicy": "aws_secretsmanager_secret_policy",
    "aws:dynamodb/resourcePolicy:ResourcePolicy": "aws_dynamodb_resource_policy",
    "aws:sqs/queuePolicy:QueuePolicy": "aws_sqs_queue_policy",
}
"""Every pulumi-aws type the stage adds (and the network and IAM types it uses more of), with the Terraform type
the checkov export maps it to."""
AGENT_NAMESPACE = "agents"
AGENT = "research"


@cache
def enterprise_graph() -> ResourceGraph:
    """The stage's resources, planned once per test session."""
    return record(_program, config={"aws:region": REGION})


def _program() -> None:
    account = get_caller_identity_output().account_id
    context = AwsContext("ags", "prod", REGION, account, TAGS)
    encryption = Encryption("encryption", context, ebs_volumes=True)
    context = context.with_key(encryption.key_arn)
    network = Network("network", context, NetworkArgs(interface_services=SERVICES))
    cluster = EksCluster("agents", context, EksClusterArgs(network=network))
    pod_role = cluster.pod_role(f"{AGENT}-pods", AGENT_NAMESPACE, AGENT)
    cluster.grant_pod_identity(pod_role, AGENT_NAMESPACE, AGENT)
    registry = AgentRegistry("registry", context, RegistryArgs(node_role_arn=cluster.node_role_arn))
    _image_cache(context, registry)
    ConfigRules(
        "compliance",
        context,
        ConfigRulesArgs(function_subnet_ids=network.subnet_ids, exclusions=("api-gw-associated-with-waf",)),
    )
    sns.Topic("monitoring-alarms", name=context.name("alarms"), kms_master_key_id=context.key)
    _agent_function(context, network, encryption)
    _data_services(context, network, pod_role)


def _image_cache(context: AwsContext, registry: AgentRegistry) -> None:
    """Images of registry.k8s.io through ECR, into repositories sealed with the stack's key."""
    ecr.PullThroughCacheRule(
        "registry-k8s-cache",
        ecr_repository_prefix=context.name("k8s"),
        upstream_registry_url="registry.k8s.io",
        opts=pulumi.ResourceOptions(depends_on=[registry]),
    )
    ecr.RepositoryCreationTemplate(
        "registry-k8s-template",
        prefix=context.name("k8s"),
        applied_fors=["PULL_THROUGH_CACHE"],
        image_tag_mutability="IMMUTABLE",
        encryption_configurations=[{"encryption_type": "KMS", "kms_key": context.key}],
        resource_tags=context.tags,
    )


def _agent_function(context: AwsContext, network: Network, encryption: Encryption) -> None:
    """An agent that stays serverless (the hybrid stage), in the VPC's private subnets."""
    role = ExecutionRole("writer", context)
    encryption.grant_use(role)
    placement = network.place(role)
    lambda_.Function(
        "writer-function",
        name=context.name("writer"),
        role=role.arn,
        runtime="python3.11",
        handler="lambda_handler.handler",
        code=pulumi.AssetArchive({}),
        kms_key_arn=context.key,
        environment={"variables": {"AGENTSTAGE_CLOUD": "aws"}},
        tracing_config={"mode": "Active"},
        reserved_concurrent_executions=10,
        vpc_config={
            "subnet_ids": list(placement.subnet_ids),
            "security_group_ids": list(placement.security_group_ids),
        },
        tags=context.tags,
        opts=pulumi.ResourceOptions(depends_on=[placement.grant]),
    )


def _data_services(context: AwsContext, network: Network, pod_role: ExecutionRole) -> None:
    """The research agent's queue, a secret and a table, each refusing requests from outside the VPC."""
    queue = sqs.Queue("tasks-research", name=context.name("tasks-research"), kms_master_key_id=context.key)
    pod_role.allow(
        "receive-tasks",
        Statement("ReceiveOwnQueue", ("sqs:ReceiveMessage", "sqs:DeleteMessage"), (queue.arn,)),
    )
    secret = secretsmanager.Secret("settings", name=context.name("settings"), kms_key_id=context.key)
    table = dynamodb.Table(
        "state-conversations",
        name=context.name("conversations"),
        billing_mode="PAY_PER_REQUEST",
        hash_key="pk",
        attributes=[{"name": "pk", "type": "S"}],
        point_in_time_recovery={"enabled": True},
        server_side_encryption={"enabled": True, "kms_key_arn": context.key},
        deletion_protection_enabled=True,
    )
    endpoints = {service: network.interface_endpoints[service] for service in ("sqs", "secretsmanager")}
    endpoints["dynamodb"] = network.gateway_endpoints["dynamodb"]

    def perimeter(service: str, arn: pulumi.Output[str], *actions: str) -> pulumi.Output[str]:
        return pulumi.Output.all(arn, endpoints[service].id).apply(
            lambda known: vpc_only(known[0], known[1], list(actions))
        )

    sqs.QueuePolicy(
        "tasks-research-perimeter",
        queue_url=queue.url,
        policy=perimeter("sqs", queue.arn, "sqs:ReceiveMessage", "sqs:SendMessage"),
    )
    secretsmanager.SecretPolicy(
        "settings-perimeter",
        secret_arn=secret.arn,
        policy=perimeter("secretsmanager", secret.arn, "secretsmanager:GetSecretValue"),
    )
    dynamodb.ResourcePolicy(
        "state-conversations-perimeter",
        resource_arn=table.arn,
        policy=perimeter("dynamodb", table.arn, "dynamodb:GetItem", "dynamodb:PutItem"),
    )


def vpc_only(resource_arn: str, endpoint_id: str, actions: list[str]) -> str:
    """Deny ``actions`` on the resource to every request that does not come through ``endpoint_id``."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ThroughTheVpcOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": actions,
                    "Resource": resource_arn,
                    "Condition": {"StringNotEquals": {"aws:SourceVpce": endpoint_id}},
                }
            ],
        }
    )
