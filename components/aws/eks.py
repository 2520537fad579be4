"""A private EKS cluster for containerized agents: control plane, one managed node group, EKS Pod Identity.

- control plane: in the network's private subnets, its API reachable through the VPC only (a public
  endpoint only when asked, restricted to named CIDRs); Kubernetes secrets envelope-encrypted with the
  stack's key; every control-plane log type (api, audit, authenticator, controllerManager, scheduler) to
  ``/aws/eks/<cluster>/cluster``, created first so it has retention and is sealed with the stack's key.
- access: authentication mode ``API`` (access entries, no ``aws-auth`` ConfigMap). The principal running
  ``pulumi up`` gets cluster admin through an explicit access entry instead of the implicit creator admin
  (``bootstrap_cluster_creator_admin_permissions``), which is invisible in the graph and cannot be revoked
  by the program; here it is a reviewed resource that another ``pulumi up`` can change.
- nodes: a managed node group in the private subnets, scaled between ``min_size`` and ``max_size`` (by
  ``components.aws.cluster_autoscaler``, which finds it by the tags EKS puts on its Auto Scaling group),
  from a launch template that requires IMDSv2 with a hop limit of 1 - a pod's packets cross one more hop,
  so no pod (unless on the host network) reaches the node role's credentials - and encrypts the root
  volume with the stack's key.
- pods: the EKS Pod Identity Agent add-on. :meth:`EksCluster.pod_role` makes a role only this cluster's
  ``namespace/service_account`` may assume; :meth:`EksCluster.grant_pod_identity` associates them.

IAM: EKS's own service roles cannot be written as exact statements - AWS documents them as managed
policies and changes them with the service - so the cluster role carries ``AmazonEKSClusterPolicy`` and
the node role ``AmazonEKSWorkerNodePolicy``, ``AmazonEKS_CNI_Policy`` (the VPC CNI on the host network) and
``AmazonEC2ContainerRegistryPullOnly`` (image pulls only). None is an admin or ``*FullAccess`` policy
(AGS-AWS-012). Both roles trust their service for this account only, the cluster role for this cluster only.

The nodes have no route to the internet: they reach AWS through the network's interface endpoints, which
must include :data:`NODE_ENDPOINTS` (what the nodes and the cluster's add-ons call, each with its reason);
the cluster admits them to the endpoints' security group on 443. Images come from ECR only: the stack's
own repositories, EKS's add-on images, and the pull-through cache (``components.aws.registry.ImageCache``)
for the charts' upstream images.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import pulumi
import pulumi_kubernetes as k8s
from pulumi_aws import ec2, eks, get_caller_identity_output, iam, vpc

from components.aws.context import PARTITION, AwsContext
from components.aws.iam import Statement
from components.aws.logs import log_group, retention
from components.aws.network import HTTPS, Network
from components.aws.role import ExecutionRole
from components.base import Component

CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
POD_IDENTITY_SERVICE = "pods.eks.amazonaws.com"
POD_IDENTITY_ACTIONS = ("sts:AssumeRole", "sts:TagSession")
"""EKS Pod Identity assumes the role and tags the session (cluster, namespace, service account)."""
POD_IDENTITY_AGENT = "eks-pod-identity-agent"
VPC_CNI = "vpc-cni"
VPC_CNI_CONFIGURATION = {"enableNetworkPolicy": "true"}
"""The cluster's CNI as a managed add-on with its network policy agent on: without it EKS accepts
Kubernetes NetworkPolicies and enforces none, and every agent's default-deny policy would be decoration.
The add-on version is EKS's default for the cluster's Kubernetes version."""
NODE_ENDPOINTS: Mapping[str, str] = MappingProxyType(
    {
        "ec2": "the VPC CNI assigns pod addresses; the Cluster Autoscaler reads instance types, images and "
        "launch template versions; the CloudWatch agent reads the node's volumes and tags",
        "ecr.api": "image pulls: registry login and manifests of the stack's images, the pull-through cache "
        "and EKS's add-on images (layers come through the S3 gateway endpoint)",
        "ecr.dkr": "image pulls: the registry (Docker) API",
        "sts": "the KEDA operator assumes each queue's scaler role",
        "eks-auth": "the Pod Identity Agent's AssumeRoleForPodIdentity: every pod role's credentials",
        "eks": "the Cluster Autoscaler reads its managed node group (eks:DescribeNodegroup)",
        "autoscaling": "the Cluster Autoscaler reads and resizes the node group's Auto Scaling group",
        "logs": "Fluent Bit ships container logs; the CloudWatch agent writes Container Insights and the pods' "
        "EMF metrics (metrics are log events: nothing calls CloudWatch's PutMetricData)",
        "sqs": "the KEDA operator reads each queue's depth; the agents' pods receive their tasks",
    }
)
"""Every AWS API something on the nodes calls, and why: a node without internet reaches only these."""
MANAGED_POLICY = f"arn:{PARTITION}:iam::aws:policy/"
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly")
CLUSTER_ADMIN_POLICY = f"arn:{PARTITION}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
ROOT_DEVICE = "/dev/xvda"
"""The root device of the EKS-optimized Amazon Linux 2023 AMIs."""
_VERSION = re.compile(r"1\.(\d{2})")
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")


@dataclass(frozen=True)
class EksClusterArgs:
    """The cluster in ``network``'s private subnets.

    ``public_access_cidrs``: empty (the default) keeps the API endpoint private - ``pulumi up`` and
    ``kubectl`` then run from inside the VPC or a network routed to it (``api_client_cidrs``, admitted on
    443). Listing public CIDRs (an office, a CI egress) turns the public endpoint on for those only; the
    private endpoint stays on, so nodes never leave the VPC to reach the API.
    """

    network: Network
    kubernetes_version: str = "1.33"
    instance_types: Sequence[str] = ("m6i.large",)
    ami_type: str = "AL2023_x86_64_STANDARD"
    min_size: int = 1
    max_size: int = 3
    desired_size: int = 2
    root_volume_gb: int = 50
    public_access_cidrs: Sequence[str] = ()
    api_client_cidrs: Sequence[str] = ()
    log_retention_days: int = 90
    reaches: Sequence[str] = ("endpoints",)
    """What the nodes' pods reach in the network (:meth:`Network.admit`): the endpoints, and the
    ``database`` where a pod on the cluster searches the knowledge index."""

    def __post_init__(self) -> None:
        if not _VERSION.fullmatch(self.kubernetes_version):
            raise ValueError(
                f"kubernetes_version: '{self.kubernetes_version}' is not a Kubernetes minor version such as 1.33"
            )
        missing = [s for s in NODE_ENDPOINTS if s not in self.network.interface_services]
        if missing:
            raise ValueError(
                f"network: nodes without internet need the endpoints {missing}; add them to the network's "
                "interface_services"
            )
        if isinstance(self.instance_types, str) or not self.instance_types:
            raise ValueError(
                f"instance_types: a non-empty list such as ['m6i.large'], not {self.instance_types!r}"
            )
        if not 0 <= self.min_size <= self.desired_size <= self.max_size or self.max_size < 1:
            raise ValueError(
                f"min_size, desired_size, max_size: {self.min_size}, {self.desired_size}, {self.max_size} must "
                "satisfy 0 <= min_size <= desired_size <= max_size and max_size >= 1"
            )
        if not 20 <= self.root_volume_gb <= 16384:
            raise ValueError(f"root_volume_gb: {self.root_volume_gb} is outside 20-16384 (the AMI needs 20)")
        _check_cidrs("public_access_cidrs", self.public_access_cidrs, public=True)
        _check_cidrs("api_client_cidrs", self.api_client_cidrs, public=False)


def _check_cidrs(field: str, cidrs: Sequence[str], *, public: bool) -> None:
    if isinstance(cidrs, str):
        raise TypeError(f"{field}: a list of CIDRs, not the text '{cidrs}'")
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr)
        except ValueError:
            raise ValueError(f"{field}: '{cidr}' is not an IPv4 CIDR such as 10.99.0.0/16") from None
        if network.version != 4 or network.prefixlen == 0:
            raise ValueError(f"{field}: '{cidr}' must be a narrow IPv4 range, not the whole internet")
        if not (network.is_global if public else network.is_private):
            kind = "public (an office or CI egress)" if public else "private (a VPN or peered network)"
            raise ValueError(f"{field}: '{cidr}' must be a {kind} range")


class EksCluster(Component):
    """``agentstage:aws:EksCluster``: cluster, logs, roles, deployer access, node group, Pod Identity Agent
    and a ``kubernetes.Provider`` for the cluster.

    Outputs: ``cluster_name``, ``cluster_arn``, ``endpoint``, ``cluster_security_group_id``,
    ``node_role_arn`` (what a registry grants pulls to), ``node_group_arn``, ``autoscaling_group_name``
    (the node group's Auto Scaling group, which EKS creates and names); :attr:`provider` for the cluster's
    resources. :attr:`node_role` is the role the kubelet pulls images with (a pull-through cache grants it
    the import); :attr:`physical_name` and :attr:`kubernetes_version` are what the add-ons are configured
    and pinned for.
    """

    def __init__(
        self, name: str, context: AwsContext, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "EksCluster", name, opts)
        self._context = context
        self._name = name
        cluster_name = context.name(name)
        self.physical_name = cluster_name
        self.kubernetes_version = args.kubernetes_version
        self._cluster_arn = context.arn("eks", f"cluster/{cluster_name}")
        self._pod_roles: dict[str, tuple[ExecutionRole, str, str]] = {}
        cluster_role = self._cluster_role(name, context)
        logs = log_group(
            name, context, f"/aws/eks/{cluster_name}/cluster", retention(args.log_retention_days), self
        )
        security_group = self._security_group(name, context, args)
        self.cluster = eks.Cluster(
            f"{name}-cluster",
            name=cluster_name,
            version=args.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config={
                "subnet_ids": args.network.subnet_ids_of("nodes"),
                "security_group_ids": [security_group.id],
                "endpoint_private_access": True,
                "endpoint_public_access": bool(args.public_access_cidrs),
                "public_access_cidrs": list(args.public_access_cidrs) or None,
            },
            encryption_config={"provider": {"key_arn": context.key}, "resources": ["secrets"]},
            enabled_cluster_log_types=list(CONTROL_PLANE_LOGS),
            access_config={
                "authentication_mode": "API",
                "bootstrap_cluster_creator_admin_permissions": False,
            },
            tags=context.tags,
            opts=self.child(depends_on=[logs, *cluster_role.attachments]),
        )
        cluster_security_group = self.cluster.vpc_config.apply(lambda c: c.cluster_security_group_id)
        self.security_group_id: pulumi.Output[str] = cluster_security_group
        args.network.admit("nodes", cluster_security_group, args.reaches)
        deployer = self._deployer_access(name)
        nodes = self._node_group(name, context, args)
        self.node_group = nodes
        self.node_group_arn: pulumi.Output[str] = nodes.arn
        self.autoscaling_group_name: pulumi.Output[str] = nodes.resources.apply(_autoscaling_group)
        agent = eks.Addon(
            f"{name}-pod-identity-agent",
            cluster_name=self.cluster.name,
            addon_name=POD_IDENTITY_AGENT,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=context.tags,
            opts=self.child(depends_on=[nodes]),  # a DaemonSet: active once there are nodes to run on
        )
        self._agent = agent
        eks.Addon(
            f"{name}-vpc-cni",
            cluster_name=self.cluster.name,
            addon_name=VPC_CNI,
            configuration_values=json.dumps(VPC_CNI_CONFIGURATION),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=context.tags,
            opts=self.child(depends_on=[nodes]),
        )
        self.cluster_name: pulumi.Output[str] = self.cluster.name
        self.cluster_arn: pulumi.Output[str] = self.cluster.arn
        self.endpoint: pulumi.Output[str] = self.cluster.endpoint
        self.cluster_security_group_id: pulumi.Output[str] = cluster_security_group
        self.provider = k8s.Provider(
            f"{name}-provider",
            # Not a credential (the AWS CLI signs a token per call), but it names the private API server.
            kubeconfig=pulumi.Output.secret(
                pulumi.Output.all(
                    self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority
                ).apply(lambda known: kubeconfig(known[0], known[1], known[2]["data"], context.region))
            ),
            opts=self.child(depends_on=deployer),
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_arn": self.cluster_arn,
                "endpoint": self.endpoint,
                "cluster_security_group_id": self.cluster_security_group_id,
                "node_role_arn": self.node_role_arn,
                "node_group_arn": self.node_group_arn,
                "autoscaling_group_name": self.autoscaling_group_name,
            }
        )

    def pod_role(self, name: str, namespace: str, service_account: str) -> ExecutionRole:
        """A role that EKS Pod Identity may assume for ``namespace/service_account`` of this cluster only.

        AWS's Pod Identity trust is ``pods.eks.amazonaws.com`` with ``sts:AssumeRole`` and
        ``sts:TagSession``. It is narrowed to this account (``aws:SourceAccount``), this cluster
        (``aws:SourceArn``, the cluster's ARN) and the session tags EKS sets from the association
        (``kubernetes-namespace``, ``kubernetes-service-account``): a role associated by mistake with another
        cluster or service account cannot be assumed. Grant it with :meth:`grant_pod_identity`.
        """
        _check_binding(namespace, service_account)
        role = ExecutionRole(
            name,
            self._context,
            service=POD_IDENTITY_SERVICE,
            trust_actions=POD_IDENTITY_ACTIONS,
            trust_conditions={
                "ArnEquals": {"aws:SourceArn": self._cluster_arn},
                "StringEquals": {
                    "aws:RequestTag/kubernetes-namespace": namespace,
                    "aws:RequestTag/kubernetes-service-account": service_account,
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._pod_roles[name] = (role, namespace, service_account)
        return role

    def grant_pod_identity(
        self, role: ExecutionRole, namespace: str, service_account: str
    ) -> eks.PodIdentityAssociation:
        """Pods running as ``namespace/service_account`` get ``role``'s credentials from the Pod Identity
        Agent (their service account needs no annotation). ``role`` must come from :meth:`pod_role` for the
        same service account: its trust admits that one only."""
        _check_binding(namespace, service_account)
        bound = next((entry for entry in self._pod_roles.values() if entry[0] is role), None)
        if bound is None:
            raise ValueError(
                f"role: it trusts {role.service}, not this cluster's pods; create it with "
                f"{self._name}.pod_role(name, '{namespace}', '{service_account}')"
            )
        if bound[1:] != (namespace, service_account):
            raise ValueError(
                f"namespace/service_account: the role trusts {bound[1]}/{bound[2]} only, not "
                f"{namespace}/{service_account}"
            )
        return eks.PodIdentityAssociation(
            f"{self._name}-{namespace}-{service_account}",
            cluster_name=self.cluster.name,
            namespace=namespace,
            service_account=service_account,
            role_arn=role.arn,
            tags=self._context.tags,
            opts=self.child(depends_on=[self._agent]),
        )

    def _cluster_role(self, name: str, context: AwsContext) -> _ServiceRole:
        """Trusted by EKS for this cluster only (EKS documents ``aws:SourceArn`` on its cluster role); KMS
        use on the stack key for envelope encryption (AmazonEKSClusterPolicy has none)."""
        role = ExecutionRole(
            f"{name}-cluster",
            context,
            service="eks.amazonaws.com",
            trust_conditions={"ArnEquals": {"aws:SourceArn": self._cluster_arn}},
            opts=self.child(),
        )
        grant = role.allow(
            "secrets-encryption",
            Statement(
                "EnvelopeEncryptSecrets",
                ("kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"),
                (context.key,),
            ),
        )
        return _ServiceRole(role, (grant, *self._attach(f"{name}-cluster", role, CLUSTER_POLICIES)))

    def _attach(self, name: str, role: ExecutionRole, policies: Sequence[str]) -> list[pulumi.Resource]:
        return [
            iam.RolePolicyAttachment(
                f"{name}-{policy}", role=role.name, policy_arn=MANAGED_POLICY + policy, opts=self.child()
            )
            for policy in policies
        ]

    def _security_group(self, name: str, context: AwsContext, args: EksClusterArgs) -> ec2.SecurityGroup:
        """The control plane's interfaces: HTTPS from ``api_client_cidrs`` only. Nodes and the control plane
        talk through the security group EKS creates for the cluster."""
        group = ec2.SecurityGroup(
            f"{name}-cluster",
            name=context.name(name, "cluster"),
            description="EKS API endpoint: HTTPS from the named client networks",
            vpc_id=args.network.vpc_id,
            tags={**context.tags, "Name": context.name(name, "cluster")},
            opts=self.child(),
        )
        for index, cidr in enumerate(args.api_client_cidrs):
            vpc.SecurityGroupIngressRule(
                f"{name}-api-client-{index + 1}",
                security_group_id=group.id,
                cidr_ipv4=cidr,
                ip_protocol="tcp",
                from_port=HTTPS,
                to_port=HTTPS,
                description=f"Kubernetes API from {cidr}",
                tags=context.tags,
                opts=self.child(),
            )
        return group

    def _deployer_access(self, name: str) -> list[pulumi.Resource]:
        """Cluster admin for the IAM role running ``pulumi up`` (its role ARN, not the session's)."""
        caller = get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        principal = iam.get_session_context_output(
            arn=caller.arn, opts=pulumi.InvokeOutputOptions(parent=self)
        ).issuer_arn
        entry = eks.AccessEntry(
            f"{name}-deployer",
            cluster_name=self.cluster.name,
            principal_arn=principal,
            type="STANDARD",
            tags=self._context.tags,
            opts=self.child(),
        )
        policy = eks.AccessPolicyAssociation(
            f"{name}-deployer-admin",
            cluster_name=self.cluster.name,
            principal_arn=entry.principal_arn,
            policy_arn=CLUSTER_ADMIN_POLICY,
            access_scope={"type": "cluster"},
            opts=self.child(),
        )
        return [entry, policy]

    def _node_group(self, name: str, context: AwsContext, args: EksClusterArgs) -> eks.NodeGroup:
        node_role = ExecutionRole(f"{name}-nodes", context, service="ec2.amazonaws.com", opts=self.child())
        attachments = self._attach(f"{name}-nodes", node_role, NODE_POLICIES)
        self.node_role = node_role
        self.node_role_arn: pulumi.Output[str] = node_role.arn
        template = ec2.LaunchTemplate(
            f"{name}-nodes",
            name=context.name(name, "nodes"),
            description="EKS nodes: IMDSv2 only, hop limit 1, root volume sealed with the stack key",
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
                "instance_metadata_tags": "disabled",
            },
            block_device_mappings=[
                {
                    "device_name": ROOT_DEVICE,
                    "ebs": {
                        "volume_size": args.root_volume_gb,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "kms_key_id": context.key,
                        "delete_on_termination": "true",
                    },
                }
            ],
            tag_specifications=[
                {"resource_type": kind, "tags": context.tags} for kind in ("instance", "volume")
            ],
            update_default_version=True,
            tags=context.tags,
            opts=self.child(),
        )
        return eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=self.cluster.name,
            node_group_name=context.name(name, "nodes"),
            node_role_arn=node_role.arn,
            subnet_ids=args.network.subnet_ids_of("nodes"),
            ami_type=args.ami_type,
            instance_types=list(args.instance_types),
            capacity_type="ON_DEMAND",
            scaling_config={
                "min_size": args.min_size,
                "max_size": args.max_size,
                "desired_size": args.desired_size,
            },
            update_config={"max_unavailable": 1},
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            tags=context.tags,
            # A node autoscaler moves the desired size; the next `pulumi up` must not undo it.
            opts=self.child(depends_on=attachments, ignore_changes=["scalingConfig.desiredSize"]),
        )


@dataclass(frozen=True)
class _ServiceRole:
    """A service role and what must exist before the service uses it (its policies)."""

    role: ExecutionRole
    attachments: tuple[pulumi.Resource, ...]

    @property
    def arn(self) -> pulumi.Output[str]:
        return self.role.arn


def _autoscaling_group(resources: Sequence[eks.outputs.NodeGroupResource] | None) -> str:
    """The name of the Auto Scaling group EKS made for the node group (``eks-<node group>-<uuid>``): a
    managed node group has exactly one."""
    names = [group.name for resource in resources or () for group in resource.autoscaling_groups or ()]
    if len(names) != 1 or not names[0]:
        raise ValueError(
            f"node group: EKS reports the Auto Scaling groups {names}; a managed node group has one"
        )
    return names[0]


def _check_binding(namespace: str, service_account: str) -> None:
    if not _DNS_LABEL.fullmatch(namespace):
        raise ValueError(f"namespace: '{namespace}' is not a Kubernetes namespace name (a DNS label)")
    if not _DNS_SUBDOMAIN.fullmatch(service_account):
        raise ValueError(f"service_account: '{service_account}' is not a Kubernetes service account name")


def kubeconfig(cluster: str, endpoint: str, certificate_authority: str, region: str) -> str:
    """A kubeconfig for ``cluster`` whose user runs ``aws eks get-token``: a short-lived token signed with
    the caller's AWS credentials at each use, never stored."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster,
                    "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority},
                }
            ],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
            "current-context": cluster,
            "users": [
                {
                    "name": cluster,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", cluster, "--region", region],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )
