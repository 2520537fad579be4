"""AWS enterprise stage: the EKS cluster, the private network, the agent registry and the data perimeter.

checkov reads one Terraform resource at a time: it sees that a launch template requires IMDSv2, not that the
node group runs on it; that a cluster encrypts secrets, not with whose key; that a repository policy is not
public, not who may pull. These rules follow the graph's references (:func:`policies.rules.aws.referenced`)
between clusters, node groups, roles, functions, endpoints and resource policies.

Where they apply. The EKS and registry rules judge what exists, so they hold wherever such resources appear.
The network rules apply from the enterprise stage: the foundation's VPC is for its database functions only -
its API-facing functions run outside it and reach the same queues, tables and Bedrock over public endpoints,
and AWS services act on its in-VPC functions' behalf from outside (Lambda creating their network interfaces
and writing their logs, SQS and DynamoDB calling KMS) - so "every function in the VPC", "an endpoint for
every service a role's actions name" and "data services only through the VPC" would fail it by design. The
enterprise stage runs every workload in the VPC, so there they are the stage's guarantees; a stack of that
stage without any VPC resource (not enterprise-like) passes them with a message saying so. Private DNS on
interface endpoints holds from the foundation on, whose endpoints have it.
"""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from core.aws_endpoints import UnknownServicePrefix, required_endpoints
from core.graph import SECRET, Resource, ResourceGraph
from core.workloads import LAMBDA_FUNCTION
from policies.findings import Severity
from policies.rules.aws import (
    KMS_ALIAS,
    KMS_KEY,
    LOG_GROUP,
    POLICY,
    QUEUE,
    ROLE,
    ROLE_POLICY,
    SECRET_TYPE,
    TABLE,
    Arn,
    Document,
    action_covers,
    allows,
    as_list,
    documents,
    referenced,
)
from policies.rules.context import StackContext
from policies.rules.model import Rule, Stage, Verdict, failed, glob_matches, passed
from policies.rules.predicates import is_unknown, shown

CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
POD_IDENTITY = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
API_AUTHORIZER = "aws:apigateway/authorizer:Authorizer"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
REPOSITORY = "aws:ecr/repository:Repository"
REPOSITORY_POLICY = "aws:ecr/repositoryPolicy:RepositoryPolicy"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
SECRET_POLICY = "aws:secretsmanager/secretPolicy:SecretPolicy"
TABLE_POLICY = "aws:dynamodb/resourcePolicy:ResourcePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"

CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
POD_IDENTITY_SERVICE = "pods.eks.amazonaws.com"
POD_IDENTITY_ACTIONS = frozenset({"sts:assumerole", "sts:tagsession"})
WORKLOAD_SERVICES = frozenset({"lambda.amazonaws.com", POD_IDENTITY_SERVICE, "ec2.amazonaws.com"})
"""Whose roles run the stage's code: functions, pods and the nodes they run on."""
PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
PUSH = ("ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload")
PERIMETER_POLICIES: dict[str, tuple[tuple[str, str], ...]] = {
    QUEUE: ((QUEUE, "policy"), (QUEUE_POLICY, "queueUrl")),
    SECRET_TYPE: ((SECRET_TYPE, "policy"), (SECRET_POLICY, "secretArn")),
    TABLE: ((TABLE, "resourcePolicy"), (TABLE_POLICY, "resourceArn")),
}
"""Where a data service's resource policy lives: inline (the resource's own input), or in a policy resource
whose input names the resource."""
PERIMETER_SERVICES = {QUEUE: "sqs", SECRET_TYPE: "secretsmanager", TABLE: "dynamodb"}
SOURCE_VPCE = "aws:sourcevpce"
SOURCE_KEYS = ("aws:sourceaccount", "aws:sourcearn")


# --- documents -----------------------------------------------------------------------------------------


def _parsed(where: str, value: Any) -> Document:
    """A policy document held as a JSON string (a trust, a resource policy), or why it cannot be read."""
    try:
        parsed = json.loads(value) if isinstance(value, str) and value != SECRET else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return Document(where, [], f"{where} is {shown(value)}: not a policy document that can be reviewed")
    statements = parsed.get("Statement")
    return Document(where, [s for s in as_list(statements) if isinstance(s, dict)])


def _operators(statement: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(operator, condition key in lower case, value) of every condition of ``statement``."""
    condition = statement.get("Condition")
    for operator, block in condition.items() if isinstance(condition, dict) else ():
        for key, value in block.items() if isinstance(block, dict) else ():
            yield str(operator), str(key).lower(), value


def _actions_match(statement: dict[str, Any], actions: Iterable[str]) -> list[str]:
    """Which of ``actions`` the statement's ``Action`` patterns (or ``NotAction``) cover."""
    if "NotAction" in statement:
        excluded = as_list(statement["NotAction"])
        return [a for a in actions if not any(action_covers(p, a) for p in excluded)]
    return [a for a in actions if any(action_covers(p, a) for p in as_list(statement.get("Action")))]


def _principals(statement: dict[str, Any]) -> tuple[list[str], list[str], bool]:
    """(AWS principals, service principals, whether anyone is): ``"*"`` and ``{"AWS": "*"}`` are anyone."""
    principal = statement.get("Principal")
    if principal == "*":
        return [], [], True
    if not isinstance(principal, dict):
        return [], [], False
    aws = [str(p) for p in as_list(principal.get("AWS"))]
    services = [str(s) for s in as_list(principal.get("Service"))]
    others = [k for k in principal if k not in ("AWS", "Service")]
    return aws, services + [f"{k} principal" for k in others], "*" in aws


def _trust(role: Resource) -> Document:
    return _parsed("assumeRolePolicy", role.get("assumeRolePolicy"))


def _trusted_services(role: Resource) -> set[str]:
    document = _trust(role)
    return {s for statement in document.statements if allows(statement) for s in _principals(statement)[1]}


# --- roles and what they may call ----------------------------------------------------------------------


def _role_of(graph: ResourceGraph, resource: Resource, value: Any) -> Resource | None:
    """The stack's role ``value`` names: by ARN, id or reference, else by its name."""
    role = referenced(graph, resource, value, (ROLE,))
    if role is None and isinstance(value, str):
        role = next((r for r in graph.of_type(ROLE) if r.get("name") == value), None)
    return role


def _role_documents(graph: ResourceGraph, role: Resource) -> list[Document]:
    """Every identity policy of ``role``: inline, its role policies, and the stack's policies attached to it
    (AWS managed policies cannot be read from the graph)."""
    return [*documents(role), *graph.derived(_attached_documents).get(role.urn, ())]


def _attached_documents(graph: ResourceGraph) -> dict[str, list[Document]]:
    """The documents of the stack's role policies and attached policies, by the URN of the role they are
    for: worked out once per graph, not once per role (each lookup scans the stack's roles)."""
    by_role: dict[str, list[Document]] = defaultdict(list)
    for policy in graph.of_type(ROLE_POLICY):
        owner = _role_of(graph, policy, policy.get("role"))
        if owner is not None:
            by_role[owner.urn] += [
                Document(f"role policy {policy.name}", d.statements, d.problem) for d in documents(policy)
            ]
    for attachment in graph.of_type(ATTACHMENT):
        owner = _role_of(graph, attachment, attachment.get("role"))
        attached = referenced(graph, attachment, attachment.get("policyArn"), (POLICY,))
        if owner is not None and attached is not None:
            by_role[owner.urn] += [
                Document(f"policy {attached.name}", d.statements, d.problem) for d in documents(attached)
            ]
    return by_role


def _role_label(role: Resource) -> str:
    return f"role {role.get('name') or role.name}"


# --- the VPC -------------------------------------------------------------------------------------------


def _has_vpc(graph: ResourceGraph) -> bool:
    """Enterprise-like: the stack creates a VPC, subnets or endpoints (a brought VPC still gets endpoints)."""
    return any(graph.of_type(t) for t in (VPC, SUBNET, ENDPOINT))


NO_VPC = "the stack defines no VPC, subnet or VPC endpoint: not an enterprise-like stack, nothing to run in"


def _in_vpc(function: Resource) -> bool:
    return bool(as_list(function.get("vpcConfig.subnetIds")))


@dataclass(frozen=True)
class _Endpoints:
    """The stack's VPC endpoints by service name (``sqs``, ``ecr.dkr``) and kind."""

    interface: dict[str, list[Resource]]
    gateway: dict[str, list[Resource]]

    @classmethod
    def of(cls, graph: ResourceGraph) -> _Endpoints:
        interface: dict[str, list[Resource]] = {}
        gateway: dict[str, list[Resource]] = {}
        for endpoint in graph.of_type(ENDPOINT):
            service = _endpoint_service(endpoint)
            if service is None:
                continue
            kind = gateway if endpoint.get("vpcEndpointType") == "Gateway" else interface
            kind.setdefault(service, []).append(endpoint)
        return cls(interface, gateway)

    def service_of(self, endpoint_id: str) -> str | None:
        for service, endpoints in (*self.interface.items(), *self.gateway.items()):
            if any(endpoint_id in (e.mock_id, e.urn) for e in endpoints):
                return service
        return None


def _endpoint_service(endpoint: Resource) -> str | None:
    """``com.amazonaws.eu-west-1.ecr.dkr`` -> ``ecr.dkr`` (``None`` while unknown)."""
    name = endpoint.get("serviceName")
    if not isinstance(name, str) or is_unknown(name):
        return None
    parts = name.split(".", 3)
    return parts[3] if len(parts) == 4 and parts[0] == "com" else name


# --- EKS -----------------------------------------------------------------------------------------------


def _api_endpoint_private(cluster: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    private = cluster.get("vpcConfig.endpointPrivateAccess")
    public = cluster.get("vpcConfig.endpointPublicAccess")
    if private is not True:
        return failed(
            f"vpcConfig.endpointPrivateAccess is {shown(private)}: the nodes and everything in the VPC reach the "
            "Kubernetes API over its public endpoint"
        )
    if public is False:
        return passed("the Kubernetes API endpoint is private only")
    cidrs = cluster.get("vpcConfig.publicAccessCidrs")
    where = "vpcConfig.endpointPublicAccess is " + (
        "unset (AWS's default: true)" if public is None else "true"
    )
    if not as_list(cidrs):
        return failed(f"{where} and publicAccessCidrs is {shown(cidrs)}: AWS opens it to 0.0.0.0/0")
    broad = [c for c in as_list(cidrs) if _whole_internet(c)]
    if broad:
        return failed(f"{where} with publicAccessCidrs {broad}: open to the whole internet, or unreviewable")
    return passed(f"private endpoint, public one only for {', '.join(map(str, as_list(cidrs)))}")


def _whole_internet(cidr: Any) -> bool:
    """A /0 range, or a value that is no CIDR (unknown until deployment counts: it cannot be reviewed)."""
    try:
        return ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0
    except ValueError:
        return True


def _secrets_sealed(cluster: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    resources = as_list(cluster.get("encryptionConfig.resources"))
    if "secrets" not in resources:
        return failed(
            f"encryptionConfig.resources is {shown(cluster.get('encryptionConfig.resources'))}: Kubernetes "
            "secrets are stored in etcd under AWS's key only"
        )
    key = cluster.get("encryptionConfig.provider.keyArn")
    problem = _customer_key_problem(graph, cluster, key)
    if problem:
        return failed(f"encryptionConfig.provider.keyArn {problem}")
    return passed(f"Kubernetes secrets are envelope-encrypted with {_key_label(graph, cluster, key)}")


def _customer_key_problem(graph: ResourceGraph, resource: Resource, value: Any) -> str | None:
    """Why ``value`` is not a customer-managed KMS key (``None`` when it is one)."""
    if not value:
        return f"is {shown(value)}: the data is sealed with a key AWS owns or manages, not the stack's"
    if isinstance(value, str) and "alias/aws/" in value:
        return f"is {value!r}: an AWS managed key, whose policy the account cannot restrict"
    if referenced(graph, resource, value, (KMS_KEY, KMS_ALIAS)) is not None:
        return None
    arn = Arn.parse(value)
    if arn is not None and arn.service == "kms" and arn.resource_type in ("key", "alias"):
        return None
    return f"is {shown(value)}: not a KMS key of this stack or a customer-managed key ARN"


def _key_label(graph: ResourceGraph, resource: Resource, value: Any) -> str:
    key = referenced(graph, resource, value, (KMS_KEY, KMS_ALIAS))
    return f"the stack's key {key.name}" if key is not None else f"customer-managed key {value!r}"


def _control_plane_logged(cluster: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    enabled = as_list(cluster.get("enabledClusterLogTypes"))
    missing = [kind for kind in CONTROL_PLANE_LOGS if kind not in enabled]
    if missing:
        return failed(
            f"enabledClusterLogTypes lacks {missing}: API calls, authentication decisions or scheduling are "
            "not recorded anywhere"
        )
    name = cluster.get("name")
    group = f"/aws/eks/{name}/cluster" if isinstance(name, str) and not is_unknown(name) else None
    logs = [
        g
        for g in graph.of_type(LOG_GROUP)
        if g.urn in cluster.dependencies
        and (group is None or g.get("name") == group)
        and glob_matches(str(g.get("name")), "/aws/eks/*/cluster")
    ]
    if not logs:
        return failed(
            f"no log group {group or '/aws/eks/<cluster>/cluster'} of the stack is created before the cluster: "
            "EKS creates it itself, never expiring and without the stack's key"
        )
    return passed(f"all five control-plane log types, to the stack's log group {logs[0].get('name')}")


def _access_by_api(cluster: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    mode = cluster.get("accessConfig.authenticationMode")
    creator = cluster.get("accessConfig.bootstrapClusterCreatorAdminPermissions")
    problems = []
    if mode != "API":
        problems.append(
            f"accessConfig.authenticationMode is {shown(mode)}"
            + (" (AWS's default: CONFIG_MAP)" if mode is None else "")
            + ": the aws-auth ConfigMap, which anyone with write access to kube-system edits unseen by IAM, "
            "grants cluster access"
        )
    if creator is not False:
        problems.append(
            f"accessConfig.bootstrapClusterCreatorAdminPermissions is {shown(creator)}"
            + (" (AWS's default: true)" if creator is None else "")
            + ": whoever ran the deployment is cluster admin through an entry no program shows or revokes"
        )
    if problems:
        return failed("; ".join(problems))
    return passed("access entries only (authentication mode API), no implicit creator admin")


def _nodes_imdsv2(group: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    reference = group.get("launchTemplate.id") or group.get("launchTemplate.name")
    if not reference:
        return failed(
            "launchTemplate is unset: EKS's own launch template leaves the metadata hop limit at 2, so every pod "
            "reaches the node role's credentials"
        )
    template = referenced(graph, group, reference, (LAUNCH_TEMPLATE,)) or next(
        (t for t in graph.of_type(LAUNCH_TEMPLATE) if t.get("name") == reference), None
    )
    if template is None:
        return failed(
            f"launchTemplate {shown(reference)} is no launch template of this stack: cannot be reviewed"
        )
    endpoint = template.get("metadataOptions.httpEndpoint")
    if endpoint == "disabled":
        return passed(f"launch template {template.name} turns the instance metadata service off")
    tokens = template.get("metadataOptions.httpTokens")
    hops = template.get("metadataOptions.httpPutResponseHopLimit")
    problems = []
    if tokens != "required":
        problems.append(
            f"metadataOptions.httpTokens is {shown(tokens)}: IMDSv1 answers any request a pod can make the node "
            "send (SSRF)"
        )
    if hops != 1:
        problems.append(
            f"metadataOptions.httpPutResponseHopLimit is {shown(hops)}: a pod's request crosses one more hop, so "
            "only 1 keeps pods from the node role's credentials"
        )
    if problems:
        return failed(f"launch template {template.name}: " + "; ".join(problems))
    return passed(f"launch template {template.name} requires IMDSv2 with a hop limit of 1")


def _applies_to_pod_identity(resource: Resource) -> bool:
    return resource.type == POD_IDENTITY or POD_IDENTITY_SERVICE in _trusted_services(resource)


def _pods_only(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    if resource.type == ROLE:
        problems = _trust_problems(resource)
        if problems:
            return failed("; ".join(problems))
        return passed(f"only {POD_IDENTITY_SERVICE} may assume it, for this account")
    role = _role_of(graph, resource, resource.get("roleArn"))
    if role is None:
        return failed(
            f"roleArn {shown(resource.get('roleArn'))} is no role of this stack: its trust cannot be reviewed"
        )
    if POD_IDENTITY_SERVICE not in _trusted_services(role):
        return failed(
            f"{_role_label(role)} does not trust {POD_IDENTITY_SERVICE}: it is another workload's identity"
        )
    problems = [f"{_role_label(role)}: {p}" for p in _trust_problems(role)]
    problems += _binding_problems(resource, role)
    if problems:
        return failed("; ".join(problems))
    binding = f"{shown(resource.get('namespace'))}/{shown(resource.get('serviceAccount'))}"
    return passed(
        f"service account {binding} gets {_role_label(role)}, which only pods of this account may assume"
    )


def _trust_problems(role: Resource) -> list[str]:
    document = _trust(role)
    if document.problem:
        return [document.problem]
    problems = []
    for index, statement in enumerate(document.statements):
        if not allows(statement):
            continue
        label = f"assumeRolePolicy statement {statement.get('Sid') or index}"
        aws, services, anyone = _principals(statement)
        others = [p for p in (*aws, *services) if p != POD_IDENTITY_SERVICE]
        if anyone or others:
            problems.append(f"{label} also trusts {['*'] if anyone else others}: not only pods may assume it")
            continue
        actions = {str(a).lower() for a in as_list(statement.get("Action"))}
        if not actions <= POD_IDENTITY_ACTIONS:
            problems.append(
                f"{label} allows {sorted(actions - POD_IDENTITY_ACTIONS)}: EKS Pod Identity needs "
                "sts:AssumeRole and sts:TagSession only"
            )
        if not any(key in SOURCE_KEYS and _specific(value) for _, key, value in _operators(statement)):
            problems.append(
                f"{label} has no single aws:SourceAccount or aws:SourceArn: pods of any account's cluster may "
                "assume it"
            )
    return problems


def _specific(value: Any) -> bool:
    """Condition values that name exact accounts or ARNs: known, without wildcards."""
    values = as_list(value)
    return bool(values) and all(isinstance(v, str) and "*" not in v and not is_unknown(v) for v in values)


def _binding_problems(association: Resource, role: Resource) -> list[str]:
    """The association's namespace and service account against the session tags the role's trust requires."""
    wanted = {
        key.removeprefix("aws:requesttag/"): value
        for _, key, value in (op for s in _trust(role).statements for op in _operators(s))
        if key in ("aws:requesttag/kubernetes-namespace", "aws:requesttag/kubernetes-service-account")
    }
    given = {
        "kubernetes-namespace": association.get("namespace"),
        "kubernetes-service-account": association.get("serviceAccount"),
    }
    return [
        f"{_role_label(role)} trusts {tag} {expected!r} only, the association binds {shown(given[tag])}"
        for tag, expected in wanted.items()
        if not is_unknown(given[tag])
        and not any(glob_matches(str(given[tag]), str(pattern)) for pattern in as_list(expected))
    ]


# --- the network ---------------------------------------------------------------------------------------


def _function_in_vpc(function: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    if not _has_vpc(graph):
        return passed(NO_VPC)
    subnets = as_list(function.get("vpcConfig.subnetIds"))
    groups = as_list(function.get("vpcConfig.securityGroupIds"))
    if not subnets and _token_authorizer(function, graph):
        return passed(
            "a REST API's token authorizer: it fetches the token issuer's public signing keys from the internet, "
            "which the VPC does not reach; the data it could reach outside is fenced to the VPC's endpoints"
        )
    if not subnets or not groups:
        return failed(
            f"vpcConfig has subnetIds {shown(subnets or None)} and securityGroupIds {shown(groups or None)}: the "
            "function runs in Lambda's own network, beside the stack's VPC, its endpoints and its perimeter"
        )
    stack_subnets = graph.of_type(SUBNET)
    # CrossGuard's graph names resources by URN only: its subnet ids cannot be compared, and are not checked.
    comparable = any(subnet.mock_id != subnet.urn for subnet in stack_subnets)
    own = {identity for subnet in stack_subnets for identity in (subnet.mock_id, subnet.urn)}
    foreign = [s for s in subnets if comparable and not is_unknown(s) and s not in own]
    if foreign:
        return failed(f"vpcConfig.subnetIds {foreign} are not subnets of the stack's VPC")
    return passed(f"runs in {len(subnets)} private subnets of the stack's VPC")


def _token_authorizer(function: Resource, graph: ResourceGraph) -> bool:
    """Whether an API Gateway authorizer invokes ``function``: its ``authorizerUri`` names the function's
    ARN, or (in CrossGuard's preview, where the URI is unknown) is built from the function."""
    return any(
        (
            function.arn is not None
            and f"/functions/{function.arn}/invocations" in str(authorizer.get("authorizerUri"))
        )
        or function.urn in authorizer.dependencies
        for authorizer in graph.of_type(API_AUTHORIZER)
    )


def _endpoints_for_calls(role: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    if not _has_vpc(graph):
        return passed(NO_VPC)
    inside = _runs_inside(graph, role)
    if not inside:
        return passed("the identity of nothing inside the VPC")
    actions, problems = [], []
    for document in _role_documents(graph, role):
        if document.problem:
            problems.append(document.problem)
            continue
        for index, statement in enumerate(document.statements):
            if not allows(statement):
                continue
            if "NotAction" in statement:
                label = f"{document.where} statement {statement.get('Sid') or index}"
                problems.append(f"{label} uses NotAction: the services it allows cannot be listed")
            actions += [str(a) for a in as_list(statement.get("Action"))]
    try:
        needed = required_endpoints(actions)
    except (UnknownServicePrefix, ValueError) as error:
        problems.append(str(error))
        needed = None
    if problems or needed is None:
        return failed("; ".join(problems))
    endpoints = _Endpoints.of(graph)
    missing = [f"{s} (interface)" for s in needed.interface if s not in endpoints.interface]
    missing += [f"{s} (gateway)" for s in needed.gateway if s not in endpoints.gateway]
    if missing:
        return failed(
            f"{_role_label(role)} ({', '.join(inside)}) is granted calls through {', '.join(missing)}, for which "
            "the stack has no VPC endpoint: from subnets without internet those calls time out"
        )
    services = [*needed.interface, *needed.gateway]
    if not services:
        return passed(
            f"the stack's policies of {_role_label(role)} grant no AWS calls (AWS managed policies attached to it "
            "are not in the graph)"
        )
    return passed(f"every service {_role_label(role)} may call has a VPC endpoint ({', '.join(services)})")


def _runs_inside(graph: ResourceGraph, role: Resource, seen: frozenset[str] = frozenset()) -> list[str]:
    """What runs as ``role`` inside the VPC: functions placed in it, pods, nodes - and, one role further, code
    that assumes it from there (KEDA's operator assuming a queue's scaler role)."""
    users = []
    for label, type_, path in (
        ("function", LAMBDA_FUNCTION, "role"),
        ("pods of", POD_IDENTITY, "roleArn"),
        ("nodes of", NODE_GROUP, "nodeRoleArn"),
    ):
        users += [
            f"{label} {user.name}"
            for user in graph.of_type(type_)
            if (type_ != LAMBDA_FUNCTION or _in_vpc(user)) and _names(graph, user, path, role)
        ]
    for assumer in _assumers(graph, role):
        if assumer.urn not in seen and _runs_inside(graph, assumer, seen | {role.urn}):
            users.append(f"whoever assumes it as {_role_label(assumer)}")
    return users


def _assumers(graph: ResourceGraph, role: Resource) -> list[Resource]:
    """The stack's roles that ``role``'s trust names as AWS principals."""
    named = {p for s in _trust(role).statements if allows(s) for p in _principals(s)[0]}
    return [r for r in graph.of_type(ROLE) if r.urn != role.urn and {r.arn, r.urn, r.mock_id} & named]


def _names(graph: ResourceGraph, resource: Resource, path: str, role: Resource) -> bool:
    named = _role_of(graph, resource, resource.get(path))
    return named is not None and named.urn == role.urn


def _private_dns(endpoint: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    enabled = endpoint.get("privateDnsEnabled")
    service = _endpoint_service(endpoint) or shown(endpoint.get("serviceName"))
    if enabled is True:
        return passed(f"{service}'s public name resolves to the endpoint inside the VPC")
    return failed(
        f"privateDnsEnabled is {shown(enabled)}: SDKs resolve {service}'s public name and miss the endpoint (and "
        "its policy and the perimeters that name it) - calls time out without internet, or leave through a NAT"
    )


def _is_interface(endpoint: Resource) -> bool:
    return endpoint.get("vpcEndpointType") == "Interface"


# --- the agent registry ---------------------------------------------------------------------------------


def _repository_locked(repository: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    problems = []
    mutability = repository.get("imageTagMutability")
    if mutability != "IMMUTABLE":
        problems.append(
            f"imageTagMutability is {shown(mutability)}"
            + (" (AWS's default: MUTABLE)" if mutability is None else "")
            + ": a push can move a released tag to another image"
        )
    if repository.get("imageScanningConfiguration.scanOnPush") is not True:
        problems.append(
            f"imageScanningConfiguration.scanOnPush is {shown(repository.get('imageScanningConfiguration.scanOnPush'))}: "
            "images are not scanned for known vulnerabilities when pushed"
        )
    encryption = next(iter(as_list(repository.get("encryptionConfigurations"))), None)
    kind = encryption.get("encryptionType") if isinstance(encryption, dict) else None
    if kind != "KMS":
        problems.append(
            f"encryptionConfigurations[0].encryptionType is {shown(kind)}: images are sealed with AWS's key"
        )
    else:
        problem = _customer_key_problem(graph, repository, encryption.get("kmsKey"))
        if problem:
            problems.append(f"encryptionConfigurations[0].kmsKey {problem}")
    if problems:
        return failed("; ".join(problems))
    return passed("immutable tags, scanned on push, sealed with a customer-managed key")


def _pull_and_push_scoped(repository: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    policies = _repository_policies(graph, repository)
    if not policies:
        return failed(
            "no repository policy: whoever's IAM policy allows pulling or pushing (ecr:* of an administrator, a "
            "CI role, a workload) does so"
        )
    nodes = _node_roles(graph)
    if not nodes:
        return failed(
            "the stack has no EKS node group: no node role the repository policy could admit to pull"
        )
    workloads = _workload_roles(graph)
    problems, denied = [], False
    for document in policies:
        if document.problem:
            problems.append(document.problem)
            continue
        for index, statement in enumerate(document.statements):
            label = f"{document.where} statement {statement.get('Sid') or index}"
            if allows(statement):
                problems += _grant_problems(label, statement, nodes, workloads)
            else:
                denied |= _denies_pull_to_others(statement, nodes)
    if not denied:
        problems.append(
            f"no Deny of {list(PULL)} to every principal but the node role: an Allow adds, it restricts nothing - "
            "any identity of the account whose IAM policy allows ecr:BatchGetImage pulls too"
        )
    problems += [
        f"{_role_label(role)} (a workload) may push through {where}"
        for role, where in _workload_pushers(graph)
    ]
    if problems:
        return failed("; ".join(problems))
    arns = sorted(n for n in nodes if n.startswith("arn:")) or sorted(nodes)
    return passed(f"only {', '.join(arns)} may pull; no workload may push")


def _repository_policies(graph: ResourceGraph, repository: Resource) -> list[Document]:
    """The repository policies naming ``repository`` (by its name, as ECR does, or by reference)."""
    return [
        _parsed(f"{policy.name}.policy", policy.get("policy"))
        for policy in graph.of_type(REPOSITORY_POLICY)
        if policy.get("repository") in (repository.get("name"), repository.urn)
        or (is_unknown(policy.get("repository")) and repository.urn in policy.dependencies)
    ]


def _grant_problems(
    label: str, statement: dict[str, Any], nodes: set[str], workloads: dict[str, Resource]
) -> list[str]:
    aws, services, anyone = _principals(statement)
    problems = []
    if _actions_match(statement, PULL):
        strangers = ["*"] if anyone else [p for p in (*aws, *services) if p not in nodes]
        if strangers:
            problems.append(f"{label} lets {strangers} pull: only the node role may")
    if _actions_match(statement, PUSH):
        pushers = ["*"] if anyone else [p for p in aws if p in workloads]
        if pushers:
            problems.append(f"{label} lets {pushers} push: a workload could replace the images it runs")
    return problems


def _node_roles(graph: ResourceGraph) -> set[str]:
    """The node roles' ARNs (and URNs, in CrossGuard's graph, where the reference is rewritten)."""
    found: set[str] = set()
    for group in graph.of_type(NODE_GROUP):
        value = group.get("nodeRoleArn")
        role = _role_of(graph, group, value)
        found |= {
            v for v in (value, role.arn if role else None, role.urn if role else None) if isinstance(v, str)
        }
    return {v for v in found if not is_unknown(v)}


def _workload_roles(graph: ResourceGraph) -> dict[str, Resource]:
    """Roles that run the stage's code, by every value that names them (ARN, URN, id)."""
    roles = [r for r in graph.of_type(ROLE) if _trusted_services(r) & WORKLOAD_SERVICES]
    return {value: r for r in roles for value in (r.arn, r.urn, r.mock_id) if value}


def _workload_pushers(graph: ResourceGraph) -> Iterator[tuple[Resource, str]]:
    for role in {r.urn: r for r in _workload_roles(graph).values()}.values():
        for document in _role_documents(graph, role):
            for statement in document.statements:
                if allows(statement) and _actions_match(statement, PUSH):
                    yield role, document.where


def _denies_pull_to_others(statement: dict[str, Any], nodes: set[str]) -> bool:
    """A Deny of pulling to ``*`` unless the principal is a node role (``aws:PrincipalArn``)."""
    if set(_actions_match(statement, PULL)) != set(PULL) or not _principals(statement)[2]:
        return False
    return any(
        "not" in operator.lower()
        and key == "aws:principalarn"
        and {str(v) for v in as_list(value)}
        and {str(v) for v in as_list(value)} <= nodes
        for operator, key, value in _operators(statement)
    )


# --- the data perimeter ---------------------------------------------------------------------------------


def _perimeter(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    if not _has_vpc(graph):
        return passed(NO_VPC)
    service = PERIMETER_SERVICES[resource.type]
    policies = list(_resource_policies(graph, resource))
    problems = [d.problem for d in policies if d.problem]
    fences = [
        (d.where, s)
        for d in policies
        for s in d.statements
        if s.get("Effect") == "Deny" and _principals(s)[2] and _source_vpce(s) and _names_service(s, service)
    ]
    if not fences:
        problems.append(
            f"no resource policy denies {service} requests that do not come through the VPC's endpoints "
            "(a Deny on aws:SourceVpce): a role's stolen credentials work from anywhere"
        )
    endpoints = _Endpoints.of(graph)
    for where, statement in fences:
        for value in _source_vpce(statement):
            other = endpoints.service_of(value) if isinstance(value, str) else None
            if other is not None:
                if other != service:
                    problems.append(
                        f"{where} names {value!r}, the stack's {other} endpoint, not a {service} one"
                    )
            elif not (isinstance(value, str) and (value.startswith("vpce-") or is_unknown(value))):
                # An id the stack does not create is a brought or shared VPC's endpoint: its id is all we know.
                problems.append(f"{where} names {shown(value)} as aws:SourceVpce: not a VPC endpoint id")
    if problems:
        return failed("; ".join(problems))
    return passed(f"{service} requests from outside the VPC's endpoints are denied ({fences[0][0]})")


def _resource_policies(graph: ResourceGraph, resource: Resource) -> Iterator[Document]:
    for type_, path in PERIMETER_POLICIES[resource.type]:
        if type_ == resource.type:
            if resource.get(path):
                yield _parsed(path, resource.get(path))
            continue
        for policy in graph.of_type(type_):
            target = referenced(graph, policy, policy.get(path), (resource.type,))
            if target is not None and target.urn == resource.urn:
                yield _parsed(f"{policy.name}.policy", policy.get("policy"))


def _source_vpce(statement: dict[str, Any]) -> list[Any]:
    """The endpoint ids a negated ``aws:SourceVpce`` condition admits (``StringNotEquals``...)."""
    return [
        v
        for operator, key, value in _operators(statement)
        if key == SOURCE_VPCE and "Not" in operator
        for v in as_list(value)
    ]


def _names_service(statement: dict[str, Any], service: str) -> bool:
    return any(
        isinstance(a, str) and (a == "*" or a.lower().startswith(f"{service}:"))
        for a in as_list(statement.get("Action"))
    )


RULES = (
    Rule(
        id="AGS-AWS-024",
        title="EKS API endpoints are private, or public only for named CIDRs",
        severity=Severity.HIGH,
        rationale=(
            "The Kubernetes API of a cluster that runs agents controls every pod, secret and service account: a "
            "public endpoint open to 0.0.0.0/0 (AWS's default when public access is on) exposes it to credential "
            "stuffing and to every future API server vulnerability. Without the private endpoint the nodes "
            "themselves reach the API over the internet, which the stage's subnets do not have."
        ),
        remediation=(
            "Set `vpcConfig.endpointPrivateAccess: true` and `endpointPublicAccess: false`; where an office or CI "
            "must reach the API from outside, keep the public endpoint only with `publicAccessCidrs` naming those "
            "ranges (EksClusterArgs.public_access_cidrs), never 0.0.0.0/0."
        ),
        types=(CLUSTER,),
        check=_api_endpoint_private,
        reference="https://docs.aws.amazon.com/eks/latest/userguide/cluster-endpoint.html",
    ),
    Rule(
        id="AGS-AWS-025",
        title="EKS clusters envelope-encrypt Kubernetes secrets with a customer-managed key",
        severity=Severity.HIGH,
        rationale=(
            "Kubernetes secrets (service account tokens, the agents' settings) sit in etcd. Envelope encryption "
            "with a customer-managed key makes them readable only while the stack's key allows it, and every "
            "decryption shows in CloudTrail; AWS's own key can be neither restricted nor revoked."
        ),
        remediation=(
            "Set `encryptionConfig: {resources: [secrets], provider: {keyArn: <the stack's KMS key>}}` "
            "(EksCluster does this with `context.key`)."
        ),
        types=(CLUSTER,),
        check=_secrets_sealed,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/eks/latest/userguide/envelope-encryption.html",
    ),
    Rule(
        id="AGS-AWS-026",
        title="EKS control planes log all five log types to a log group the stack owns",
        severity=Severity.MEDIUM,
        rationale=(
            "The audit and authenticator logs are the only record of who did what to the cluster; the API, "
            "controller manager and scheduler logs explain outages. EKS writes them to /aws/eks/<cluster>/cluster "
            "and creates that group itself when it does not exist - then it never expires and is not sealed with "
            "the stack's key; the stack must create it first."
        ),
        remediation=(
            "Set `enabledClusterLogTypes` to api, audit, authenticator, controllerManager and scheduler, and create "
            "the log group `/aws/eks/<cluster name>/cluster` (retention, the stack's key) before the cluster "
            "(`depends_on`; EksCluster does both)."
        ),
        types=(CLUSTER,),
        check=_control_plane_logged,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/eks/latest/userguide/control-plane-logs.html",
    ),
    Rule(
        id="AGS-AWS-027",
        title="EKS clusters grant access through access entries only",
        severity=Severity.HIGH,
        rationale=(
            "With the aws-auth ConfigMap (authentication modes CONFIG_MAP and API_AND_CONFIG_MAP) anyone who may "
            "edit kube-system grants themselves cluster admin, invisible to IAM and to the program. The implicit "
            "admin of the cluster's creator is an access nobody sees in the graph and no later deployment revokes."
        ),
        remediation=(
            "Set `accessConfig: {authenticationMode: API, bootstrapClusterCreatorAdminPermissions: false}` and grant "
            "access with `eks.AccessEntry` and `eks.AccessPolicyAssociation` (EksCluster grants the deployer's role)."
        ),
        types=(CLUSTER,),
        check=_access_by_api,
        reference="https://docs.aws.amazon.com/eks/latest/userguide/access-entries.html",
    ),
    Rule(
        id="AGS-AWS-028",
        title="EKS node groups run on a launch template requiring IMDSv2 with a hop limit of 1",
        severity=Severity.HIGH,
        rationale=(
            "A pod that reaches the instance metadata service gets the node role's credentials - ECR, EC2 network "
            "interfaces, every other pod's image - instead of its own Pod Identity role. IMDSv2 with a hop limit "
            "of 1 stops at the node: the pod's request crosses one more hop. EKS's default launch template leaves "
            "the limit at 2; checkov checks launch templates, not whether a node group uses one."
        ),
        remediation=(
            "Give the node group `launchTemplate: {id, version}` of a launch template with `metadataOptions: "
            "{httpEndpoint: enabled, httpTokens: required, httpPutResponseHopLimit: 1}` (EksCluster does this)."
        ),
        types=(NODE_GROUP,),
        check=_nodes_imdsv2,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/eks/latest/best-practices/identity-and-access-management.html",
    ),
    Rule(
        id="AGS-AWS-029",
        title="Pod Identity roles are trusted by EKS Pod Identity only, and bound to their own service account",
        severity=Severity.HIGH,
        rationale=(
            "A pod's role is what an agent on the cluster may do. If the role also trusts a Lambda function, "
            "another account or EC2, that principal acts as the agent; without aws:SourceAccount or aws:SourceArn "
            "pods of another account's cluster may assume it; an association with another service account than "
            "the role's trust names hands one agent's identity to another."
        ),
        remediation=(
            f"Trust `{POD_IDENTITY_SERVICE}` alone with `sts:AssumeRole` and `sts:TagSession`, conditioned on "
            "`aws:SourceAccount` and the cluster's `aws:SourceArn` (and the `kubernetes-namespace` and "
            "`kubernetes-service-account` session tags); associate it with that service account only "
            "(EksCluster.pod_role and grant_pod_identity)."
        ),
        types=(ROLE, POD_IDENTITY),
        check=_pods_only,
        applies=_applies_to_pod_identity,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/eks/latest/userguide/pod-id-role.html",
    ),
    Rule(
        id="AGS-AWS-030",
        title="Every Lambda function of a stack with a VPC runs in that VPC",
        severity=Severity.HIGH,
        rationale=(
            "The enterprise stage keeps the agents' traffic inside the VPC: to the models, queues, secrets and "
            "tables through endpoints, whose policies and the data perimeter admit nothing else. A function "
            "outside it runs in Lambda's own network, where every call goes over the internet and the perimeter "
            "locks it out - or, where the perimeter is waived for it, lets its stolen credentials work anywhere."
        ),
        remediation=(
            "Place the function with `Network.place(role)` (`vpcConfig: {subnetIds: <the stack's private subnets>, "
            "securityGroupIds: [<the functions' group>]}`); a function that must stay outside needs a waiver with "
            "the reason. A REST API's token authorizer may stay outside: it fetches its issuer's signing keys."
        ),
        types=(LAMBDA_FUNCTION,),
        check=_function_in_vpc,
        from_stage=Stage.ENTERPRISE,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html",
    ),
    Rule(
        id="AGS-AWS-031",
        title="Every AWS service an identity inside the VPC may call has a VPC endpoint",
        severity=Severity.HIGH,
        rationale=(
            "The stage's subnets have no route to the internet: a function, pod or node reaches an AWS API only "
            "through its VPC endpoint. The services a role is granted are the services its code calls; one without "
            "an endpoint fails at run time (a timeout, long after deployment), or - where someone adds a NAT - "
            "leaves the VPC past the endpoint policies and the data perimeter."
        ),
        remediation=(
            "Add the missing services to the network's `interface_services` (S3 and DynamoDB have gateway "
            "endpoints); the endpoint each IAM action needs is in core/aws_endpoints.py. An endpoint the VPC "
            "already has (a brought VPC) is not in the graph: waive the rule for the role, naming it."
        ),
        types=(ROLE,),
        check=_endpoints_for_calls,
        from_stage=Stage.ENTERPRISE,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/vpc/latest/privatelink/aws-services-privatelink-support.html",
    ),
    Rule(
        id="AGS-AWS-032",
        title="Interface VPC endpoints have private DNS",
        severity=Severity.MEDIUM,
        rationale=(
            "The AWS SDKs call a service by its public name. Only with private DNS does that name resolve to the "
            "endpoint's addresses in the VPC; without it every call goes to the public endpoint - it times out "
            "in subnets without internet, or leaves the VPC past the endpoint policy and the aws:SourceVpce "
            "perimeters that name the endpoint."
        ),
        remediation="Set `privateDnsEnabled: true` on every interface endpoint (Network does this).",
        types=(ENDPOINT,),
        check=_private_dns,
        applies=_is_interface,
        from_stage=Stage.FOUNDATION,
        reference="https://docs.aws.amazon.com/vpc/latest/privatelink/privatelink-access-aws-services.html",
    ),
    Rule(
        id="AGS-AWS-033",
        title="ECR repositories have immutable tags, scan on push and a customer-managed key",
        severity=Severity.HIGH,
        rationale=(
            "A mutable tag lets a push swap the image a deployment tested for another; unscanned images reach "
            "the cluster with known vulnerabilities; a repository sealed with AWS's key (encryption type KMS "
            "without a key, or AES256) keeps the agents' code outside the stack's key policy and audit. checkov "
            "checks the encryption type, not whose key it is."
        ),
        remediation=(
            "Set `imageTagMutability: IMMUTABLE`, `imageScanningConfiguration: {scanOnPush: true}` and "
            "`encryptionConfigurations: [{encryptionType: KMS, kmsKey: <the stack's key>}]` (AgentRegistry does)."
        ),
        types=(REPOSITORY,),
        check=_repository_locked,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html",
    ),
    Rule(
        id="AGS-AWS-034",
        title="Only the cluster's node role may pull from the agent registry, and no workload may push",
        severity=Severity.HIGH,
        rationale=(
            "The images are the agents' code and prompts. Within the account an Allow in a repository policy only "
            "adds to what IAM policies allow, so only a Deny to every other principal keeps an administrator's or "
            "a workload's ecr:* from pulling; a workload that may push can replace the image it runs with its own."
        ),
        remediation=(
            "Give the repository a policy that allows pulling to the node group's role and denies "
            "ecr:BatchGetImage and ecr:GetDownloadUrlForLayer to `*` unless `aws:PrincipalArn` is that role; "
            "grant pushes to CI's role only (AgentRegistry and grant_push), never to a function's, pod's or node's."
        ),
        types=(REPOSITORY,),
        check=_pull_and_push_scoped,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policies.html",
    ),
    Rule(
        id="AGS-AWS-035",
        title="SQS queues, secrets and DynamoDB tables refuse requests from outside the VPC's endpoints",
        severity=Severity.HIGH,
        rationale=(
            "IAM says who may read a task queue, a secret or a conversation table, not from where: an agent role's "
            "credentials stolen from a pod or a function work from any laptop. A resource policy that denies "
            "requests without the VPC endpoint's aws:SourceVpce keeps them useless outside the VPC."
        ),
        remediation=(
            "Add a statement `{Effect: Deny, Principal: *, Action: <the data-plane actions>, Condition: "
            "{StringNotEquals: {aws:SourceVpce: [<the service's VPC endpoint id>]}}}` to the queue policy, the "
            "secret's policy or the table's resource policy (components.aws.data_perimeter); a resource whose "
            "callers are outside the VPC needs a waiver with the reason."
        ),
        types=tuple(PERIMETER_POLICIES),
        check=_perimeter,
        from_stage=Stage.ENTERPRISE,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-sourcevpce",
    ),
)
