"""The architecture as a diagram (Mermaid or Graphviz), derived from the resource graph alone.

Nodes are the building blocks (agentstage components); edges are what actually connects them in the
deployment, so the diagram cannot drift from the code:

- a role assignment: the block whose compute runs as the identity (a Function App's, a Kubernetes
  service account's through Workload ID, the cluster's kubelet or KEDA operator) -> the block holding the scope;
- an API gateway backend whose URL is another block's app: gateway -> that app;
- an app setting or container environment variable whose value names another block's resource (an
  endpoint, a namespace): app or workload -> block;
- a private endpoint: network -> the block it reaches privately;
- a Kubernetes resource deployed through a cluster's provider: workload -> cluster;
- an alert rule: alerts -> the block it watches and the block it pages;
- on AWS, an IAM role's inline policy: the block running as the role (a function, or the workload whose
  service account an EKS Pod Identity association binds to it) -> each block whose ARNs it names; a
  Lambda permission: the gateway -> the function it may invoke; an alarm on a function: monitoring -> agent;
  a queue's event source mapping, or a KEDA ScaledObject on it: bus -> the function or workload it delivers
  to; a web ACL association: firewall -> the stage it filters; a bucket's event notification: the bucket's
  block -> the queue it announces on.

Blocks without any connection (a policy assignment set, a budget) are shown too: they are part of the stage.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from agentstage.render import role_name
from core.graph import Resource, ResourceGraph

ROLE_ASSIGNMENTS = (
    "azure-native:authorization:RoleAssignment",
    "azure-native:cosmosdb:SqlResourceSqlRoleAssignment",
)
SETTINGS_PREFIX = "AGENTSTAGE_"
"""The runtime settings' environment prefix (agent_runtime.settings), kept here so drawing imports no runtime."""

IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
FEDERATED_CREDENTIAL = "azure-native:managedidentity:FederatedIdentityCredential"
CLUSTER = "azure-native:containerservice:ManagedCluster"
AWS_ROLE = "aws:iam/role:Role"
IDENTITY_BLOCKS = (":Identity", ":ExecutionRole")
"""Identities appear as the compute that runs as them, not as blocks of their own."""
AWS_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
AWS_QUEUE = "aws:sqs/queue:Queue"
POD_IDENTITY_ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
DATABASE_USER_ARN = "arn:aws:rds-db:"
AURORA_CLUSTER = "aws:rds/cluster:Cluster"
COSMOS_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"


@dataclass(frozen=True)
class Architecture:
    """The diagram's content, whatever draws it: blocks (id, label) and labelled connections."""

    nodes: tuple[tuple[str, str], ...]
    edges: tuple[tuple[str, str, tuple[str, ...]], ...]
    """(source id, target id, labels) - one edge per connected pair, every reason on it."""


def architecture(graph: ResourceGraph) -> Architecture:
    """One node per block and one edge per connected pair of blocks, in the graph's order."""
    blocks = _Blocks(graph)
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    connections = (
        *_access(graph, blocks),
        *_routes(graph, blocks),
        *_settings(graph, blocks),
        *_private_endpoints(graph, blocks),
        *_runs_on(graph, blocks),
        *_alerts(graph, blocks),
        *_aws_grants(graph, blocks),
        *_aws_invocations(graph, blocks),
        *_aws_alarms(graph, blocks),
        *_aws_connections(graph, blocks),
        *_scaled_on(graph, blocks),
    )
    for source, target, label in connections:
        if source != target:
            edges[(source, target)].add(label)
    shown = {urn for edge in edges for urn in edge} | set(blocks.standalone())
    nodes = tuple((blocks.node_id(urn), blocks.label(urn)) for urn in sorted(shown, key=blocks.order))
    ordered = sorted(edges.items(), key=lambda e: (blocks.order(e[0][0]), blocks.order(e[0][1])))
    return Architecture(
        nodes,
        tuple((blocks.node_id(s), blocks.node_id(t), tuple(sorted(labels))) for (s, t), labels in ordered),
    )


def mermaid_lines(graph: ResourceGraph) -> Iterator[str]:
    """``flowchart LR`` with one node per block and one labelled edge per connection."""
    drawing = architecture(graph)
    yield "flowchart LR"
    for node_id, label in drawing.nodes:
        yield f'  {node_id}["{label}"]'
    for source, target, labels in drawing.edges:
        yield f'  {source} -->|"{", ".join(labels)}"| {target}'


def dot_source(graph: ResourceGraph) -> str:
    """The same architecture in Graphviz's language (the HTML report renders it to SVG with ``dot``)."""
    drawing = architecture(graph)
    lines = [
        "digraph architecture {",
        '  graph [rankdir=LR, fontname="DejaVu Sans", fontsize=11, nodesep=0.35, ranksep=0.9, bgcolor="transparent"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#3b6fb6", fontname="DejaVu Sans", fontsize=11];',
        '  edge [color="#6b7a90", fontname="DejaVu Sans", fontsize=9, fontcolor="#3c4655"];',
    ]
    lines += [
        f"  {node_id} [id={_quoted(node_id)}, label={_quoted(label)}];" for node_id, label in drawing.nodes
    ]
    lines += [
        f"  {source} -> {target} [label={_quoted(chr(10).join(labels))}];"
        for source, target, labels in drawing.edges
    ]
    return "\n".join([*lines, "}"]) + "\n"


def _quoted(text: str) -> str:
    """A Graphviz string: quotes and backslashes escaped, line breaks as centred line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _Blocks:
    """Which block (top-level agentstage component) each resource belongs to."""

    def __init__(self, graph: ResourceGraph) -> None:
        self.graph = graph
        self._position = {r.urn: i for i, r in enumerate(graph.resources)}
        self._ids: dict[str, str] = {}

    def of(self, resource: Resource) -> str | None:
        block = None
        current: Resource | None = resource
        while current is not None:
            if current.type.startswith("agentstage:") and not current.type.endswith(IDENTITY_BLOCKS):
                block = current.urn
            current = self.graph.by_urn(current.parent) if current.parent else None
        return block

    def standalone(self) -> Iterator[str]:
        """Top-level blocks that are not identities (identities appear as the compute that uses them)."""
        for resource in self.graph.resources:
            top_level = resource.type.startswith("agentstage:") and resource.parent is None
            if top_level and not resource.type.endswith(IDENTITY_BLOCKS):
                yield resource.urn

    def order(self, urn: str) -> int:
        return self._position.get(urn, 0)

    def node_id(self, urn: str) -> str:
        if urn not in self._ids:
            self._ids[urn] = re.sub(r"\W", "_", self.graph.by_urn(urn).name) + f"_{len(self._ids)}"
        return self._ids[urn]

    def label(self, urn: str) -> str:
        resource = self.graph.by_urn(urn)
        return f"{resource.type.rsplit(':', 1)[-1]}: {resource.name}"


def _identity_users(graph: ResourceGraph, blocks: _Blocks) -> dict[str, str]:
    """Managed identity id -> the block whose compute runs as it.

    Azure compute names it in ``identity.userAssignedIdentities``; on Kubernetes, a service account
    annotated with it (Workload ID) or a federated credential for the KEDA operator built from it does.
    """
    users: dict[str, str] = {}
    by_urn = {r.urn: r.mock_id for r in graph.of_type(IDENTITY)}
    for resource in graph.cloud_resources():
        identity = resource.inputs.get("identity")
        assigned = list(identity.get("userAssignedIdentities") or ()) if isinstance(identity, dict) else []
        if resource.type in (SERVICE_ACCOUNT, FEDERATED_CREDENTIAL):
            assigned = [by_urn[urn] for urn in resource.dependencies if urn in by_urn]
            if resource.type == FEDERATED_CREDENTIAL and ":kube-system:" not in str(
                resource.inputs.get("subject")
            ):
                continue  # an agent's own federation: its service account already says who uses it
        block = blocks.of(resource)
        for identity_id in assigned:
            if block is not None:
                users[identity_id] = block
    return users


def _access(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    identities = {r.urn: r.mock_id for r in graph.of_type(IDENTITY)}
    users = _identity_users(graph, blocks)
    for assignment in (r for type_ in ROLE_ASSIGNMENTS for r in graph.of_type(type_)):
        holders = [users.get(identities[urn]) for urn in assignment.dependencies if urn in identities]
        if not holders:  # a principal of another resource: the AKS kubelet identity pulling images
            holders = [blocks.of(r) for r in _dependencies(graph, assignment) if r.type == CLUSTER]
        scope = _scope_resource(graph, assignment)
        target = blocks.of(scope) if scope is not None else None
        role = str(assignment.inputs.get("roleDefinitionId", ""))
        label = "data access" if role.endswith(COSMOS_DATA_CONTRIBUTOR) else role_name(role)
        for holder in holders:
            if holder is not None and target is not None:
                yield holder, target, label


def _dependencies(graph: ResourceGraph, resource: Resource) -> Iterator[Resource]:
    for urn in resource.dependencies:
        dependency = graph.by_urn(urn)
        if dependency is not None:
            yield dependency


def _private_endpoints(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    for endpoint in graph.of_type("azure-native:network:PrivateEndpoint"):
        for connection in endpoint.inputs.get("privateLinkServiceConnections") or ():
            target = graph.by_mock_id(str(connection.get("privateLinkServiceId")))
            source, reached = blocks.of(endpoint), blocks.of(target) if target else None
            if source and reached:
                yield source, reached, "private endpoint"


def _runs_on(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    """Kubernetes resources deployed through a provider that belongs to another block (the cluster)."""
    for resource in graph.cloud_resources():
        if resource.type.startswith("kubernetes:") and resource.provider:
            provider, source = graph.by_urn(resource.provider), blocks.of(resource)
            target = blocks.of(provider) if provider else None
            if source and target:
                yield source, target, "runs on"


def _alerts(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    for rule in graph.of_type("azure-native:monitor:ScheduledQueryRule"):
        source = blocks.of(rule)
        watched = [str(scope) for scope in rule.inputs.get("scopes") or ()]
        paged = [str(group) for group in (rule.inputs.get("actions") or {}).get("actionGroups") or ()]
        for label, ids in (("alerts on", watched), ("pages", paged)):
            for resource in filter(None, map(graph.by_mock_id, ids)):
                target = blocks.of(resource)
                if source and target:
                    yield source, target, label


def _aws_grants(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    """An IAM role's inline policy: the block running as the role -> each block whose resources it names.

    The role's users are the functions whose ``role`` is its ARN; the grant is labelled by its name
    (``bedrock-invoke``, ``state-data``). Statements on ``*`` name no block and draw no edge."""
    roles = {r.inputs.get("name"): r for r in graph.of_type(AWS_ROLE)}
    for policy in graph.of_type(AWS_ROLE_POLICY):
        role = roles.get(policy.inputs.get("role"))
        if role is None:
            continue
        users = (
            [blocks.of(f) for f in graph.cloud_resources() if f.inputs.get("role") == role.arn]
            or [*_pod_identity_users(graph, blocks, role)]
            or [blocks.of(role)]
        )
        for target in {blocks.of(resource) for resource in _named_by(graph, policy)} - {None}:
            for user in users:
                if user is not None and target is not None:
                    yield user, target, str(policy.inputs.get("name"))


def _pod_identity_users(graph: ResourceGraph, blocks: _Blocks, role: Resource) -> Iterator[str | None]:
    """The workloads whose service account an EKS Pod Identity association binds to ``role``."""
    for association in graph.of_type(POD_IDENTITY_ASSOCIATION):
        if association.inputs.get("roleArn") != role.arn:
            continue
        for account in graph.of_type(SERVICE_ACCOUNT):
            if (account.get("metadata.namespace"), account.get("metadata.name")) == (
                association.inputs.get("namespace"),
                association.inputs.get("serviceAccount"),
            ):
                yield blocks.of(account)


def _scaled_on(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    """A KEDA ScaledObject on an SQS queue: the queue's block delivers to the workload it scales."""
    queues = {r.mock_id: r for r in graph.of_type(AWS_QUEUE) if r.mock_id}
    for scaled in graph.of_type(SCALED_OBJECT):
        for trigger in scaled.get("spec.triggers") or []:
            queue = queues.get((trigger.get("metadata") or {}).get("queueURL"))
            source, target = blocks.of(queue) if queue else None, blocks.of(scaled)
            if source and target:
                yield source, target, "delivers to"


def _named_by(graph: ResourceGraph, policy: Resource) -> Iterator[Resource]:
    """The resources an IAM document's statements name (``<arn>:*`` and ``<arn>/index/...`` included)."""
    try:
        statements = json.loads(str(policy.inputs.get("policy")))["Statement"]
    except (ValueError, KeyError, TypeError):
        return
    arns = {r.arn: r for r in graph.resources if r.arn}
    for statement in statements:
        named = statement.get("Resource", [])
        for resource in [named] if isinstance(named, str) else named:
            if resource.startswith(DATABASE_USER_ARN):
                # ``dbuser:<cluster resource id>/<user>`` names no ARN of the graph: the cluster it was
                # built from is among the policy's dependencies.
                yield from (r for r in _dependencies(graph, policy) if r.type == AURORA_CLUSTER)
                continue
            match = next(
                (
                    r
                    for arn, r in arns.items()
                    if resource == arn or resource.startswith((f"{arn}:", f"{arn}/"))
                ),
                None,
            )
            if match is not None:
                yield match


def _aws_invocations(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    """A Lambda permission: the block it belongs to (the gateway) may invoke the function it names."""
    for permission in graph.of_type("aws:lambda/permission:Permission"):
        function = graph.by_arn(str(permission.inputs.get("function")))
        source, target = blocks.of(permission), blocks.of(function) if function else None
        if source and target:
            yield source, target, "invokes"


def _aws_alarms(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    """A CloudWatch alarm on a function's metrics: the monitoring block watches the agent."""
    functions = {f.inputs.get("name"): f for f in graph.of_type("aws:lambda/function:Function")}
    for alarm in graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        function = functions.get((alarm.inputs.get("dimensions") or {}).get("FunctionName"))
        source, target = blocks.of(alarm), blocks.of(function) if function else None
        if source and target:
            yield source, target, "alarms on"


AWS_CONNECTIONS: dict[str, tuple[str | None, str, str]] = {
    "aws:lambda/eventSourceMapping:EventSourceMapping": ("eventSourceArn", "functionName", "delivers to"),
    "aws:wafv2/webAclAssociation:WebAclAssociation": ("webAclArn", "resourceArn", "filters"),
    "aws:s3/bucketNotification:BucketNotification": (None, "queues[].queueArn", "announces on"),
}
"""Resources that connect two others by ARN: type -> (source input or None for the resource's own block,
target input (``[]`` for each item of a list), label)."""


def _aws_connections(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    for type_, (source_input, target_input, label) in AWS_CONNECTIONS.items():
        for connector in graph.of_type(type_):
            source_resource = (
                graph.by_arn(str(connector.inputs.get(source_input))) if source_input else connector
            )
            source = blocks.of(source_resource) if source_resource else None
            for arn in _input_values(connector.inputs, target_input):
                target_resource = graph.by_arn(str(arn))
                target = blocks.of(target_resource) if target_resource else None
                if source and target and source != target:
                    yield source, target, label


def _input_values(inputs: dict[str, object], path: str) -> Iterator[object]:
    """The values at ``path`` (``queues[].queueArn``: the queueArn of each item of queues)."""
    head, _, rest = path.partition("[].")
    value = inputs.get(head)
    if not rest:
        yield value
        return
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            yield item.get(rest)


def _scope_resource(graph: ResourceGraph, assignment: Resource) -> Resource | None:
    scope = graph.by_mock_id(str(assignment.inputs.get("scope", "")))
    if scope is not None:
        return scope
    # Cosmos data-plane scopes are paths below the account ("<account id>/dbs/<db>").
    account = str(assignment.inputs.get("scope", "")).split("/dbs/")[0]
    return graph.by_mock_id(account)


def _routes(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    apps = {
        f"https://{a.inputs.get('name')}.azurewebsites.net": a
        for a in graph.of_type("azure-native:web:WebApp")
    }
    for backend in graph.of_type("azure-native:apimanagement:Backend"):
        app = apps.get(str(backend.inputs.get("url", "")).rstrip("/"))
        source, target = blocks.of(backend), blocks.of(app) if app else None
        if source and target:
            yield source, target, f"routes {backend.inputs.get('backendId')}"


def _settings(graph: ResourceGraph, blocks: _Blocks) -> Iterator[tuple[str, str, str]]:
    """Runtime settings naming another block's resource, e.g. the gateway URL as the model endpoint.

    Only the runtime's own (``AGENTSTAGE_*``): the platform's settings for the same service (the Service
    Bus trigger's connection) would label the edge twice."""
    named = {
        str(r.inputs.get(key)): r
        for r in graph.cloud_resources()
        for key in ("serviceName", "namespaceName", "accountName", "name")
        if key in r.inputs and len(str(r.inputs.get(key))) > 8 and not r.type.endswith("RoleAssignment")
    }
    for app, variables in _environments(graph):
        for variable in variables:
            if not str(variable.get("name", "")).startswith(SETTINGS_PREFIX):
                continue
            value, source = str(variable.get("value", "")), blocks.of(app)
            for name, resource in named.items():
                target = blocks.of(resource)
                if name in value and source and target and target != source:
                    yield source, target, variable["name"].removeprefix(SETTINGS_PREFIX).lower()


def _environments(graph: ResourceGraph) -> Iterator[tuple[Resource, list[dict[str, object]]]]:
    """Each app's settings and each workload container's environment, as ``{"name", "value"}`` lists."""
    for app in graph.of_type("azure-native:web:WebApp"):
        settings = app.inputs.get("siteConfig", {})
        yield app, list(settings.get("appSettings", [])) if isinstance(settings, dict) else []
    for deployment in graph.of_type("kubernetes:apps/v1:Deployment"):
        pod = ((deployment.inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers") or ():
            yield deployment, list(container.get("env") or ())
