"""Stage 3 on AWS - the enterprise stage: hybrid agents in a private network, with account-level guard rails.

The AWS foundation's system (the gateway behind WAF and its token authorizer, the orchestrator and agents
over SQS, the shared knowledge index, dashboards and alarms, the monthly budget) is built again with three
changes, as the Azure enterprise stage does:

- **Private network.** One VPC over two or three zones with subnets per role (``lambda``, ``nodes``,
  ``endpoints``, ``data``), no internet route, an interface endpoint for every AWS API the workloads call
  (:data:`ENDPOINTS`; AGS-AWS-031 derives the list from the graph's grants and fails a missing one) and
  gateway endpoints for S3 and DynamoDB. Every function runs in it but the gateway's authorizer, which
  fetches the issuer's signing keys from the internet. The state tables, the settings secret, the task
  queues and the documents refuse their data outside the VPC's endpoints (``aws:SourceVpce``), where their
  every legitimate caller is inside it (:mod:`components.aws.data_perimeter`).
- **Hybrid agents.** Agents named in ``kubernetes.agents`` run as queue workers on a private EKS cluster,
  pulled by digest from the stage's ECR repository by the node role only, scaled by KEDA on their SQS queue
  (to zero when idle) through a scaler role that reads that queue's depth and nothing else, with the same
  grants and runtime settings they would have on Lambda, through EKS Pod Identity. Their metrics reach the
  same per-agent dashboard through the CloudWatch agent (Container Insights); the Cluster Autoscaler grows
  the node group when pods wait. Nodes reach no registry but ECR: KEDA's and the autoscaler's images come
  through ECR's pull-through cache (see the README for seeding it once).
- **Guard rails.** AWS Config managed rules for the stage's own guarantees (functions in the VPC, the
  stage behind WAF, the cluster's endpoint private and its secrets sealed, images scanned...), beside the
  foundation's alarms and budget.
"""

from __future__ import annotations

import re

import pulumi

from agent_runtime.settings_contract import env_for
from blueprints.aws_foundation import IN_VPC_SERVICES, AwsFoundation
from blueprints.own_cluster import WORKER_DEFAULTS
from blueprints.topology import task_queue
from components.aws.cluster_autoscaler import ClusterAutoscaler
from components.aws.config_rules import ConfigRules, ConfigRulesArgs
from components.aws.container_insights import EMF_PORT, ContainerInsights
from components.aws.container_insights import NAMESPACE as INSIGHTS_NAMESPACE
from components.aws.eks import NODE_ENDPOINTS, EksCluster, EksClusterArgs
from components.aws.keda import Keda
from components.aws.network import ExistingVpc, NetworkArgs, VpcPlacement
from components.aws.registry import AgentRegistry, ImageCache, ImageCacheArgs, RegistryArgs
from components.aws.role import ExecutionRole
from components.aws.secrets import SETTINGS_SECRET_VARIABLE
from components.kubernetes.identity import PodIdentity
from components.kubernetes.namespace import AgentNamespace, AgentNamespaceArgs
from components.kubernetes.network import Egress
from components.kubernetes.scaling import QueueScaling, sqs_queue
from components.kubernetes.workload import AgentWorkload, AgentWorkloadArgs
from core.config import StackConfig
from core.config.aws import EKS_DEFAULT_KUBERNETES_VERSION, VpcConfig

SUBNET_ROLES = ("lambda", "nodes", "endpoints", "data")
ENDPOINTS = tuple(dict.fromkeys((*IN_VPC_SERVICES, "kms", "sts", "xray", *NODE_ENDPOINTS)))
"""Interface endpoints: what the functions call (Bedrock, SQS, Secrets Manager), what the pods add (KMS for
the stack's key, STS), what the nodes and their add-ons call (:data:`NODE_ENDPOINTS`: EC2, ECR, EKS, EKS
Auth, Auto Scaling, CloudWatch Logs) and X-Ray for the functions' traces. Nothing calls CloudWatch's own
API: metrics are embedded-metric log records, so there is no ``monitoring`` endpoint (24 USD a month)."""
POD_IDENTITY_AGENT = "169.254.170.23/32"
"""Where the EKS Pod Identity Agent serves a pod its role's credentials (HTTP on the node, port 80)."""
POD_EGRESS_PORTS = (80, 443, 5432, EMF_PORT)
"""The pods' only connections: credentials (80, the Pod Identity Agent), AWS APIs through the endpoints
(443), the knowledge index (5432) and the CloudWatch agent's EMF listener. The agent is reached through its
Service, whose address is outside the VPC's range and which EKS's policy enforcer matches only against a
namespace peer: the agent's namespace is admitted by name."""
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")


class AwsEnterprise(AwsFoundation):
    """The stage-3 system on AWS; see the module docstring."""

    private = True

    def __init__(self, config: StackConfig) -> None:
        assert config.kubernetes and config.eks  # guaranteed by StackConfig
        self.kubernetes = config.kubernetes
        self.eks = config.eks
        self.containerized = frozenset(config.kubernetes.agents)
        super().__init__(config)
        assert self.network is not None
        ConfigRules(
            "compliance",
            self.context,
            ConfigRulesArgs(
                function_subnet_ids=self.network.subnet_ids_of("lambda"),
                web_acl_arns=[self.firewall.web_acl_arn],
            ),
        )

    def _network_args(self) -> NetworkArgs:
        vpc = self.config.vpc or VpcConfig()
        existing = vpc.existing
        return NetworkArgs(
            cidr=vpc.cidr,
            zones=vpc.availability_zones,
            interface_services=ENDPOINTS,
            flow_log_retention_days=self.config.log_retention_days,
            subnet_roles=SUBNET_ROLES,
            database=bool(self.readers),
            existing=None
            if existing is None
            else ExistingVpc(
                vpc_id=existing.vpc_id,
                subnet_ids=dict(existing.subnet_ids),
                route_table_ids=existing.route_table_ids,
                endpoint_ids=dict(existing.endpoint_ids),
                endpoint_security_group_ids=existing.endpoint_security_group_ids,
            ),
        )

    def _prepare(self) -> None:
        """The cluster, its registry, the image cache and the add-ons: the pods' roles are the cluster's."""
        assert self.network is not None
        eks = self.eks
        reads_index = any(name in self.readers for name in self.containerized)
        self.cluster = EksCluster(
            "cluster",
            self.context,
            EksClusterArgs(
                network=self.network,
                kubernetes_version=self.kubernetes.kubernetes_version or EKS_DEFAULT_KUBERNETES_VERSION,
                instance_types=eks.instance_types,
                ami_type=eks.ami_type,
                min_size=eks.min_size,
                max_size=eks.max_size,
                desired_size=eks.desired_size,
                root_volume_gb=eks.root_volume_gb,
                public_access_cidrs=eks.public_access_cidrs,
                api_client_cidrs=eks.api_client_cidrs,
                log_retention_days=self.config.log_retention_days,
                reaches=("endpoints", "database") if reads_index else ("endpoints",),
            ),
        )
        self.registry = AgentRegistry(
            "registry", self.context, RegistryArgs(node_role_arn=self.cluster.node_role_arn)
        )
        self.cache = cache = ImageCache(
            "images",
            self.context,
            ImageCacheArgs(credential_arns={"ghcr.io": eks.image_cache_credentials_arn}),
        )
        self.keda = Keda("keda", self.context, self.cluster, cache)
        ClusterAutoscaler("autoscaler", self.context, self.cluster, cache)
        self.insights = ContainerInsights(
            "insights", self.context, self.cluster, cache, log_retention_days=self.config.log_retention_days
        )

    def _role(self, name: str) -> ExecutionRole | None:
        """A containerized agent's role is its pods' (Pod Identity for its service account, named after it)."""
        if self.serverless(name):
            return None
        return self.cluster.pod_role(name, self.kubernetes.namespace, name)

    def serverless(self, name: str) -> bool:
        return name not in self.containerized

    def _placement(self, name: str, role: ExecutionRole) -> VpcPlacement | None:
        """Every runtime's function runs in the VPC."""
        assert self.network is not None
        return self.network.place(role)

    def _containers(self) -> None:
        """Each containerized agent: a KEDA-scaled worker with its own role, on its own queue."""
        kubernetes, region = self.kubernetes, self.context.region
        namespace = AgentNamespace(
            "agents", AgentNamespaceArgs(name=kubernetes.namespace), provider=self.cluster.provider
        )
        image = self.registry.image(image_digest(kubernetes.image))
        for name in sorted(self.containerized):
            queue = task_queue(name)
            association = self.cluster.grant_pod_identity(self.roles[name], kubernetes.namespace, name)
            scaler = self.keda.scaler_role(f"{name}-scaler", self.bus.queue_arns[queue])
            AgentWorkload(
                name,
                AgentWorkloadArgs(
                    namespace=namespace.name,
                    image=image,
                    env=self._pod_env(name),
                    role="worker",
                    identity=PodIdentity(),  # Pod Identity binds the service account by its name
                    egress=Egress(
                        cidrs=(*self._vpc_cidrs(), POD_IDENTITY_AGENT),
                        namespaces=(INSIGHTS_NAMESPACE,),
                        ports=POD_EGRESS_PORTS,
                    ),
                    scaling=QueueScaling(
                        trigger=sqs_queue(
                            queue_url=self.bus.queues[queue].url,
                            queue=queue,
                            region=region,
                            role_arn=scaler.arn,
                            messages_per_replica=kubernetes.messages_per_replica,
                        ),
                        max_replicas=kubernetes.max_replicas,
                    ),
                ),
                provider=self.cluster.provider,
                opts=pulumi.ResourceOptions(depends_on=[association, self.keda.release]),
            )

    def _pod_env(self, name: str) -> dict[str, pulumi.Input[str]]:
        """The settings the agent would have on Lambda, as the container's environment, with what Lambda
        gives a function itself: the region, the settings secret's ARN, and the CloudWatch agent that
        turns its metrics into the dashboard's (stdout is not read for metrics on EKS)."""
        settings = env_for(
            {
                **WORKER_DEFAULTS,
                **self.runtime_settings(name),
                "emf_agent_endpoint": self.insights.emf_endpoint,
                "emf_log_group": self.insights.emf_log_group_name,
            }
        )
        region = self.context.region
        return {
            **settings,
            SETTINGS_SECRET_VARIABLE: self.shared.secrets.secret_arn,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
        }

    def _vpc_cidrs(self) -> tuple[str, ...]:
        """The VPC's ranges, where the pods' connections go (a brought VPC's, as its stack file states)."""
        vpc = self.config.vpc or VpcConfig()
        return tuple(vpc.existing.cidrs) if vpc.existing is not None else (vpc.cidr,)


def image_digest(image: str) -> str:
    """The ``sha256:...`` digest of the stack file's image: pods run it from the stage's own repository."""
    match = _DIGEST.search(image)
    if match is None:  # the stack model requires a digest on AWS
        raise ValueError(f"kubernetes.image '{image}' names no digest (…@sha256:<64 hex>)")
    return match.group(1)


def deploy_aws_enterprise(config: StackConfig) -> None:
    enterprise = AwsEnterprise(config)
    pulumi.export("url", enterprise.gateway.url)
    pulumi.export("registry", enterprise.registry.repository_url)
    # Pulled once through the cache from a machine with internet access before the add-ons can start.
    pulumi.export("imageCacheSeeds", enterprise.cache.seeds)
