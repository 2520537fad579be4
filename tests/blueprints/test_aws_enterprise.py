"""The AWS enterprise stack as planned: nothing that holds data is reachable from outside the VPC, every AWS
API called from inside it has an endpoint there, each identity reaches only its own queue, models and
memory, the containerized agent runs hardened and KEDA scales it on its own queue with its own identity, and
the blocks the foundation had keep their names.

Built offline from stacks/Pulumi.enterprise-aws-prod.yaml: research on EKS; orchestrator, analyst on Lambda.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

import pytest
from graph_queries import by_name, runtime_catalog

from agent_runtime.settings_contract import env_name
from blueprints.aws_enterprise import POD_EGRESS_PORTS, POD_IDENTITY_AGENT, SUBNET_ROLES
from blueprints.own_cluster import WORKER_DEFAULTS
from components.aws.serverless_agent import RUNTIME_DEFAULTS
from core.aws_endpoints import required_endpoints
from core.graph import Resource, ResourceGraph
from core.stacks import load_stack_config

Graphs = Callable[[str], ResourceGraph]
Statements = list[dict[str, Any]]
STACK, FOUNDATION = "enterprise-aws-prod", "foundation-aws-staging"
CONFIG, _ = load_stack_config(STACK)
KUBERNETES = CONFIG.kubernetes
assert KUBERNETES is not None and CONFIG.vpc is not None, f"{STACK} runs agents on EKS in its own VPC"
[CONTAINERIZED] = KUBERNETES.agents
SERVERLESS = ("orchestrator", "analyst")
RUNTIMES = (*SERVERLESS, CONTAINERIZED)
ACCOUNT = "123456789012"  # the AWS mocks' account (core/mocks/aws.py)
REGION = CONFIG.location
PREFIX = f"{CONFIG.name_prefix}-{CONFIG.environment}"
_FOUNDATION, _ = load_stack_config(FOUNDATION)
FOUNDATION_PREFIX = f"{_FOUNDATION.name_prefix}-{_FOUNDATION.environment}"
CALLED = {model.name: model.model for model in CONFIG.models}
"""What Bedrock calls each of the stack file's models."""
MODEL_OF = {CONFIG.orchestrator.name: CONFIG.orchestrator.model} | {a.name: a.model for a in CONFIG.agents}
EMBEDDINGS = f"arn:aws:bedrock:{REGION}::foundation-model/{CALLED[CONFIG.memory.embedding_deployment]}"
TABLES = ("conversations", "ledger", "memories", "tasks")

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
FUNCTION = "aws:lambda/function:Function"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
SUBNET = "aws:ec2/subnet:Subnet"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
POD_IDENTITY = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"

LAMBDA_SERVICE_CALLS = frozenset(
    {
        "ec2:AssignPrivateIpAddresses",
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:UnassignPrivateIpAddresses",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
)
"""What Lambda itself does with a function's execution role, from outside the VPC: it creates and deletes the
function's network interfaces, and writes what the function prints to its log group. The function's code
calls none of these, so they need no endpoint inside the VPC."""
MANAGED_POLICY_CALLS: Mapping[str, tuple[str, ...]] = {
    "AmazonEKSWorkerNodePolicy": (
        "ec2:DescribeInstances",
        "eks:DescribeCluster",
        "eks-auth:AssumeRoleForPodIdentity",
    ),
    "AmazonEKS_CNI_Policy": ("ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface"),
    "AmazonEC2ContainerRegistryPullOnly": (
        "ecr:GetAuthorizationToken",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ),
}
"""The graph names AWS managed policies by ARN only: one action of each service every one of them calls, as
the AWS Managed Policy Reference lists them."""
DATA_SERVICES = ("bedrock:", "dynamodb:", "rds-db:", "s3:", "secretsmanager:", "sqs:")
ECR_PUSH = ("ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload")
TABLE_DATA_ACTIONS = [
    f"dynamodb:{action}"
    for action in (
        "BatchGetItem", "BatchWriteItem", "ConditionCheckItem", "DeleteItem", "GetItem", "PartiQLDelete",
        "PartiQLInsert", "PartiQLSelect", "PartiQLUpdate", "PutItem", "Query", "Scan", "UpdateItem",
    )
]  # fmt: skip
"""Every DynamoDB action that reads or writes items: all of them are fenced to the VPC's endpoint."""


def arn(service: str, resource: str, *, regional: bool = True) -> str:
    return f"arn:aws:{service}:{REGION if regional else ''}:{ACCOUNT}:{resource}"


def named(name: str, prefix: str = PREFIX) -> str:
    """The physical name of the stack's ``name`` (``ags-prod-research``)."""
    return f"{prefix}-{name}"


def role_arn(role: str) -> str:
    return arn("iam", f"role/{named(role)}", regional=False)


def queue_arn(queue: str) -> str:
    return arn("sqs", named(queue))


def table_arns() -> set[str]:
    """The state tables and the tasks table's index: the agents' memory."""
    tables = {arn("dynamodb", f"table/{named(table)}") for table in TABLES}
    return tables | {arn("dynamodb", f"table/{named('tasks')}/index/awaiting_approval")}


def model_arns(runtime: str) -> tuple[str, str]:
    """``runtime``'s model: its cross-region inference profile, and the foundation model that profile routes
    to in any of its regions (``eu.X`` -> ``X``)."""
    profile = CALLED[MODEL_OF[runtime]]
    return (
        arn("bedrock", f"inference-profile/{profile}"),
        f"arn:aws:bedrock:*::foundation-model/{profile.split('.', 1)[1]}",
    )


def as_set(value: str | list[str]) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


def grants(graph: ResourceGraph, role: str, prefix: str = PREFIX) -> dict[str, Statements]:
    """Inline policy name -> its statements, of role ``<prefix>-<role>``."""
    return {
        p.inputs["name"]: json.loads(p.inputs["policy"])["Statement"]
        for p in graph.of_type(ROLE_POLICY)
        if p.inputs["role"] == named(role, prefix)
    }


def actions_on(graph: ResourceGraph, role: str, action: str) -> set[str]:
    """Every resource ``role`` may call ``action`` on."""
    return {
        resource
        for statements in grants(graph, role).values()
        for statement in statements
        if action in statement["Action"]
        for resource in as_set(statement["Resource"])
    }


def trust(graph: ResourceGraph, role: str) -> dict[str, Any]:
    return json.loads(by_name(graph, ROLE, f"{role}-role").inputs["assumeRolePolicy"])


def managed_policies(graph: ResourceGraph, role_name: str) -> set[str]:
    """The AWS managed policies attached to the role named ``role_name``."""
    return {
        a.inputs["policyArn"].removeprefix("arn:aws:iam::aws:policy/")
        for a in graph.of_type(ATTACHMENT)
        if a.inputs["role"] == role_name
    }


def associated(graph: ResourceGraph, role: str) -> dict[str, Any]:
    """The Pod Identity association that hands ``role`` to a service account: there is exactly one."""
    [association] = [a.inputs for a in graph.of_type(POD_IDENTITY) if a.inputs["roleArn"] == role_arn(role)]
    return association


def calls_of(graph: ResourceGraph, role_name: str) -> set[str]:
    """Every action the role named ``role_name`` is allowed: its inline policies' and its managed ones'."""
    inline = {
        action
        for p in graph.of_type(ROLE_POLICY)
        if p.inputs["role"] == role_name
        for statement in json.loads(p.inputs["policy"])["Statement"]
        if statement["Effect"] == "Allow"
        for action in as_set(statement["Action"])
    }
    managed = managed_policies(graph, role_name)
    unknown = managed - set(MANAGED_POLICY_CALLS)
    assert not unknown, f"{role_name}: add the calls of {sorted(unknown)} to MANAGED_POLICY_CALLS"
    return inline | {action for policy in managed for action in MANAGED_POLICY_CALLS[policy]}


def identities_inside_the_vpc(graph: ResourceGraph) -> dict[str, str]:
    """Role ARN -> what runs as it inside the VPC: the functions placed in it, the pods (Pod Identity), the
    nodes, and the roles those assume (whose trust names one of them)."""
    inside = {f.inputs["role"]: "function" for f in graph.of_type(FUNCTION) if f.inputs.get("vpcConfig")}
    inside |= {a.inputs["roleArn"]: "pods" for a in graph.of_type(POD_IDENTITY)}
    inside |= {n.inputs["nodeRoleArn"]: "nodes" for n in graph.of_type(NODE_GROUP)}
    for role in graph.of_type(ROLE):
        principals = {
            principal
            for statement in json.loads(role.inputs["assumeRolePolicy"])["Statement"]
            for principal in as_set(statement["Principal"].get("AWS", []))
        }
        if role.arn not in inside and principals & set(inside):
            inside[role.arn] = "assumed from inside"
    return inside


def admits(policy: Statements, action: str, resource: str, context: Mapping[str, str]) -> bool:
    """Whether ``policy`` allows ``action`` on ``resource`` for a request with the condition keys ``context``:
    some Allow matches with every condition holding (the only operators endpoint policies here use are
    ``StringEquals``/``ArnEquals``), and no Deny matches."""

    def matches(statement: dict[str, Any]) -> bool:
        return any(fnmatchcase(action, a) for a in as_set(statement["Action"])) and any(
            fnmatchcase(resource, r) for r in as_set(statement["Resource"])
        )

    def holds(statement: dict[str, Any]) -> bool:
        return all(
            operator in ("StringEquals", "ArnEquals") and context.get(key) in as_set(values)
            for operator, block in statement.get("Condition", {}).items()
            for key, values in block.items()
        )

    effects = {s["Effect"] for s in policy if matches(s) and holds(s)}
    return effects == {"Allow"}


def deployment(graph: ResourceGraph) -> dict[str, Any]:
    return by_name(graph, DEPLOYMENT, f"{CONTAINERIZED}-deployment").inputs


def pod_env(graph: ResourceGraph) -> dict[str, str]:
    [container] = deployment(graph)["spec"]["template"]["spec"]["containers"]
    return {variable["name"]: variable["value"] for variable in container["env"]}


def function_env(graph: ResourceGraph, function: str) -> dict[str, str]:
    return by_name(graph, FUNCTION, f"{function}-function").inputs["environment"]["variables"]


def subnet_ids(graph: ResourceGraph, role: str) -> list[str]:
    """The ids of the network's ``role`` subnets (``lambda``, ``nodes``...), one per availability zone."""
    subnets = [s for s in graph.of_type(SUBNET) if s.name.startswith(f"network-{role}-")]
    assert (
        len({s.inputs["availabilityZone"] for s in subnets}) == len(subnets) == CONFIG.vpc.availability_zones
    )
    return [str(s.mock_id) for s in subnets]


def endpoints(graph: ResourceGraph, kind: str) -> dict[str, Resource]:
    """The VPC endpoints of ``kind`` (``Interface``, ``Gateway``) by service (``sqs``, ``ecr.dkr``)."""
    return {
        e.inputs["serviceName"].removeprefix(f"com.amazonaws.{REGION}."): e
        for e in graph.of_type(ENDPOINT)
        if e.inputs["vpcEndpointType"] == kind
    }


def endpoint_id(graph: ResourceGraph, service: str) -> str:
    return str(by_name(graph, ENDPOINT, f"network-{service.replace('.', '-')}").mock_id)


def fence(graph: ResourceGraph, type_: str, name: str) -> dict[str, Any]:
    """The statement of a resource policy that denies its data outside the VPC's endpoints."""
    statements = json.loads(by_name(graph, type_, name).inputs["policy"])["Statement"]
    [statement] = [s for s in statements if s.get("Sid") == "OnlyThroughVpcEndpoints"]
    return statement


@pytest.fixture(scope="module")
def graph(stack_graph: Graphs) -> ResourceGraph:
    return stack_graph(STACK)


@pytest.fixture(scope="module")
def foundation(stack_graph: Graphs) -> ResourceGraph:
    return stack_graph(FOUNDATION)


# --- no public data service ------------------------------------------------------------------------------


def test_no_security_group_opens_to_the_internet(graph: ResourceGraph) -> None:
    ingress = graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert ingress
    for rule in ingress:
        cidr = rule.inputs.get("cidrIpv4") or rule.inputs.get("cidrIpv6")
        assert cidr is None or ipaddress.ip_network(cidr).is_private, (rule.name, cidr)
        assert cidr or rule.inputs.get("referencedSecurityGroupId"), rule.name
    for rule in graph.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"):
        peer = rule.inputs.get("referencedSecurityGroupId") or rule.inputs.get("prefixListId")
        assert peer and not rule.inputs.get("cidrIpv4") and not rule.inputs.get("cidrIpv6"), rule.name
    assert not graph.of_type("aws:ec2/securityGroupRule:SecurityGroupRule")
    groups = [
        *graph.of_type(SECURITY_GROUP),
        *graph.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"),
    ]
    for group in groups:
        assert not group.inputs.get("ingress") and not group.inputs.get("egress"), group.name


def test_the_vpc_has_no_way_out(graph: ResourceGraph) -> None:
    for type_ in (
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/route:Route",
        "aws:ec2/vpcPeeringConnection:VpcPeeringConnection",
        "aws:ec2transitgateway/vpcAttachment:VpcAttachment",
    ):
        assert not graph.of_type(type_), type_
    tables = graph.of_type("aws:ec2/routeTable:RouteTable")
    assert len(tables) == len(SUBNET_ROLES) * CONFIG.vpc.availability_zones, "one per subnet"
    assert all(not table.inputs.get("routes") for table in tables), "only the VPC's local route"
    assert all(subnet.inputs["mapPublicIpOnLaunch"] is False for subnet in graph.of_type(SUBNET))


def test_no_data_service_is_public(graph: ResourceGraph) -> None:
    [instance] = graph.of_type("aws:rds/clusterInstance:ClusterInstance")
    assert instance.inputs["publiclyAccessible"] is False
    cluster = by_name(graph, "aws:eks/cluster:Cluster", "cluster-cluster").inputs["vpcConfig"]
    assert (cluster["endpointPrivateAccess"], cluster["endpointPublicAccess"]) == (True, False)
    assert "publicAccessCidrs" not in cluster
    block = by_name(graph, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "documents-private")
    assert block.inputs["bucket"] == f"{named('documents')}-{ACCOUNT}"
    blocked = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert [key for key in blocked if block.inputs[key] is not True] == []


def test_only_the_node_role_pulls_the_agents_images(graph: ResourceGraph) -> None:
    repository = by_name(graph, "aws:ecr/repository:Repository", "registry-repository").inputs
    assert (repository["imageTagMutability"], repository["imageScanningConfiguration"]) == (
        "IMMUTABLE",
        {"scanOnPush": True},
    )
    key = by_name(graph, "aws:kms/key:Key", "encryption-key").arn
    assert repository["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": key}]
    policy = by_name(graph, "aws:ecr/repositoryPolicy:RepositoryPolicy", "registry-policy").inputs
    nodes = role_arn("cluster-nodes")
    assert policy["repository"] == repository["name"]
    assert json.loads(policy["policy"])["Statement"] == [
        {
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Effect": "Allow",
            "Principal": {"AWS": nodes},
            "Sid": "NodesPull",
        },
        {
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": nodes}},
            "Effect": "Deny",
            "Principal": "*",
            "Sid": "OnlyNodesPull",
        },
    ]


# --- every service called from inside the VPC has its endpoint -----------------------------------------


def test_every_service_called_from_inside_the_vpc_has_its_endpoint(graph: ResourceGraph) -> None:
    inside = identities_inside_the_vpc(graph)
    assert set(inside) == {
        role_arn(role)
        for role in (
            *SERVERLESS, "ingest", "knowledge-bootstrap",  # every function but the authorizer
            CONTAINERIZED, "keda-operator", "autoscaler", "insights-agent",  # pods
            "cluster-nodes", f"{CONTAINERIZED}-scaler",  # the nodes; the role KEDA's operator assumes
        )
    }  # fmt: skip
    interface, gateway = endpoints(graph, "Interface"), endpoints(graph, "Gateway")
    missing: dict[str, list[str]] = {}
    needed: set[str] = set()
    for role, kind in inside.items():
        calls = calls_of(graph, role.rsplit("/", 1)[1])
        if kind == "function":
            calls -= LAMBDA_SERVICE_CALLS
        required = required_endpoints(calls)
        needed |= {*required.interface, *required.gateway}
        absent = [s for s in required.interface if s not in interface]
        absent += [s for s in required.gateway if s not in gateway]
        if absent:
            missing[role] = absent
    assert missing == {}
    assert {"bedrock-runtime", "ecr.dkr", "eks-auth", "sts", "sqs", "s3", "dynamodb"} <= needed
    for service in needed & set(interface):
        endpoint = interface[service].inputs
        assert endpoint["privateDnsEnabled"] is True, service
        assert endpoint["subnetIds"] == subnet_ids(graph, "endpoints"), service
    workload_tables = {
        association.inputs["routeTableId"]
        for association in graph.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
        if association.inputs["subnetId"] in {*subnet_ids(graph, "lambda"), *subnet_ids(graph, "nodes")}
    }
    for service in needed & set(gateway):
        assert set(gateway[service].inputs["routeTableIds"]) == workload_tables, service


def test_the_nodes_fetch_image_layers_through_the_s3_endpoint(graph: ResourceGraph) -> None:
    """ECR serves each layer as a URL into its own S3 bucket (the ECR User Guide's "Minimum Amazon S3 bucket
    policy for Amazon ECR access"): neither the bucket nor the URL's signer is this account's."""
    policy = json.loads(by_name(graph, ENDPOINT, "network-s3").inputs["policy"])["Statement"]
    layer = f"arn:aws:s3:::prod-{REGION}-starport-layer-bucket/{ACCOUNT}/ags-prod-agents/sha256:0"
    owned_by_aws = {"aws:PrincipalAccount": "an AWS service account", "aws:ResourceAccount": "an AWS account"}
    assert admits(policy, "s3:GetObject", layer, owned_by_aws)
    foreign = {"aws:PrincipalAccount": ACCOUNT, "aws:ResourceAccount": "210987654321"}
    assert not admits(policy, "s3:PutObject", "arn:aws:s3:::someone-elses-bucket/data", foreign)


# --- functions in the VPC, the authorizer outside ------------------------------------------------------


def test_only_the_orchestrators_function_is_swept_on_schedule(graph: ResourceGraph) -> None:
    """Pods run the worker loop, which sweeps its queue itself; the orchestrator's function is invoked every
    minute to sweep its queue and every queue it delegates to (the pods' included: sweeping twice is
    harmless, each task is re-sent once)."""
    rules = {r.inputs["name"]: r.inputs for r in graph.of_type("aws:cloudwatch/eventRule:EventRule")}
    targets = {
        t.inputs["rule"]: t.inputs["arn"] for t in graph.of_type("aws:cloudwatch/eventTarget:EventTarget")
    }
    assert targets == {
        f"{PREFIX}-orchestrator-sweep": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{PREFIX}-orchestrator"
    }
    assert {rule["scheduleExpression"] for rule in rules.values()} == {"rate(1 minute)"}
    assert set(rules) == set(targets)


def test_every_function_but_the_authorizer_runs_in_the_lambda_subnets(graph: ResourceGraph) -> None:
    functions = {f.name.removesuffix("-function"): f.inputs for f in graph.of_type(FUNCTION)}
    assert set(functions) == {*SERVERLESS, "ingest", "knowledge-bootstrap", "authorizer"}, "research is a pod"
    assert [d.inputs["metadata"]["name"] for d in graph.of_type(DEPLOYMENT)] == [CONTAINERIZED]
    placement = {
        "subnetIds": subnet_ids(graph, "lambda"),
        "securityGroupIds": [by_name(graph, SECURITY_GROUP, "network-functions").mock_id],
    }
    for name, function in functions.items():
        if name != "authorizer":
            assert function["vpcConfig"] == placement, name
    assert "vpcConfig" not in functions["authorizer"], (
        "it fetches the issuer's signing keys from the internet"
    )


def test_the_authorizer_holds_no_data_grant(graph: ResourceGraph) -> None:
    held = grants(graph, "authorizer")
    assert set(held) == {"kms-use", "logs-write", "xray-write"}
    assert actions_on(graph, "authorizer", "logs:PutLogEvents") == {
        arn("logs", f"log-group:/aws/lambda/{named('authorizer')}:*")
    }
    actions = {a for statements in held.values() for s in statements for a in as_set(s["Action"])}
    assert not [a for a in actions if a.startswith(DATA_SERVICES)]
    data_settings = (
        "AGENTSTAGE_DYNAMODB",
        "AGENTSTAGE_TASK_QUEUE",
        "AGENTSTAGE_POSTGRES",
        "AGENTSTAGE_SETTINGS",
    )
    assert not [name for name in function_env(graph, "authorizer") if name.startswith(data_settings)]


# --- every pod hardened ----------------------------------------------------------------------------------


def test_the_agent_pod_is_hardened(graph: ResourceGraph) -> None:
    spec = deployment(graph)["spec"]["template"]["spec"]
    assert spec["securityContext"] == {
        "fsGroup": 10001,
        "runAsGroup": 10001,
        "runAsNonRoot": True,
        "runAsUser": 10001,  # the runtime image's user (runtime/Dockerfile), above any host user
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["automountServiceAccountToken"] is False
    assert not {"hostNetwork", "hostPID", "hostIPC", "initContainers"} & set(spec)
    assert [volume for volume in spec["volumes"] if set(volume) != {"name", "emptyDir"}] == []
    for container in spec["containers"]:
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsGroup": 10001,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        resources = container["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
        assert container["livenessProbe"] and container["readinessProbe"]
        assert container["imagePullPolicy"] == "Always"
    account = by_name(graph, "kubernetes:core/v1:ServiceAccount", f"{CONTAINERIZED}-service-account").inputs
    assert (account["metadata"]["name"], account["automountServiceAccountToken"]) == (CONTAINERIZED, False)
    assert spec["serviceAccountName"] == CONTAINERIZED
    labels = by_name(graph, "kubernetes:core/v1:Namespace", "agents").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_pods_network_is_denied_but_the_vpc_and_their_credentials(graph: ResourceGraph) -> None:
    policies = {p.inputs["metadata"]["name"]: p.inputs for p in graph.of_type(NETWORK_POLICY)}
    assert all(p["metadata"]["namespace"] == KUBERNETES.namespace for p in policies.values())
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    own = policies[f"{CONTAINERIZED}-network-policy"]["spec"]
    pod_labels = deployment(graph)["spec"]["template"]["metadata"]["labels"]
    assert own["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert own["ingress"] == [], "a queue worker accepts no connection"
    [egress] = own["egress"]
    assert egress["ports"] == [{"port": port, "protocol": "TCP"} for port in POD_EGRESS_PORTS]
    blocks = [peer["ipBlock"] for peer in egress["to"] if "ipBlock" in peer]
    assert blocks == [{"cidr": CONFIG.vpc.cidr}, {"cidr": POD_IDENTITY_AGENT}], "the VPC and the credentials"
    selected = [peer for peer in egress["to"] if "ipBlock" not in peer]
    cloudwatch = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "amazon-cloudwatch"}}}
    assert selected in ([], [cloudwatch]), "nothing in the cluster but the CloudWatch agent (see below)"
    cni = by_name(graph, "aws:eks/addon:Addon", "cluster-vpc-cni").inputs
    assert json.loads(cni["configurationValues"]) == {"enableNetworkPolicy": "true"}, (
        "else nothing enforces them"
    )


def test_the_pod_may_send_its_metrics_to_the_cloudwatch_agent(graph: ResourceGraph) -> None:
    """The EKS network policy agent filters on the pod's interface, before kube-proxy turns a Service's
    cluster IP into a pod's address; its controller adds a Service's cluster IP to a policy only for
    namespace/pod selector peers (aws/amazon-network-policy-controller-k8s, pkg/resolvers/endpoints.go). EKS
    takes the Service range outside the VPC (172.20.0.0/16 beside a 10.x VPC), so no ipBlock of the VPC
    matches the agent's Service."""
    endpoint = urlsplit(pod_env(graph)["AGENTSTAGE_EMF_AGENT_ENDPOINT"])
    namespace = str(endpoint.hostname).split(".")[1]
    spec = by_name(graph, NETWORK_POLICY, f"{CONTAINERIZED}-network-policy").inputs["spec"]
    reaching = [
        rule
        for rule in spec["egress"]
        if {"port": endpoint.port, "protocol": "TCP"} in rule["ports"]
        and {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}} in rule["to"]
    ]
    assert reaching, f"no egress rule names the namespace {namespace} on port {endpoint.port}"


# --- each identity reaches only its queue, models and memory --------------------------------------------


def test_the_agents_pod_role_holds_exactly_its_grants(graph: ResourceGraph) -> None:
    profile, model = model_arns(CONTAINERIZED)
    invoke = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    [writer] = actions_on(graph, "ingest", "rds-db:connect")
    queue = queue_arn(f"tasks-{CONTAINERIZED}")
    assert grants(graph, CONTAINERIZED) == {
        "bedrock-invoke": [
            {
                "Action": invoke,
                "Effect": "Allow",
                "Resource": EMBEDDINGS,
                "Sid": "InvokeFoundationModels",
            },
            {"Action": invoke, "Effect": "Allow", "Resource": profile, "Sid": "InvokeProfile0"},
            {
                "Action": invoke,
                "Condition": {"StringEquals": {"bedrock:InferenceProfileArn": profile}},
                "Effect": "Allow",
                "Resource": model,
                "Sid": "InvokeProfileModel0",
            },
            {
                "Action": ["bedrock:ApplyGuardrail"],
                "Effect": "Allow",
                "Resource": by_name(graph, "aws:bedrock/guardrail:Guardrail", "models-guardrail").arn,
                "Sid": "ApplyGuardrail",
            },
        ],
        "database-connect": [
            {
                "Action": ["rds-db:connect"],
                "Effect": "Allow",
                "Resource": writer.replace("agentstage_writer", "agentstage_reader"),
                "Sid": "ConnectAsDatabaseUser",
            }
        ],
        "kms-use": [
            {
                "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"],
                "Effect": "Allow",
                "Resource": by_name(graph, "aws:kms/key:Key", "encryption-key").arn,
                "Sid": "UseStackKey",
            }
        ],
        f"queue-receive-tasks-{CONTAINERIZED}": [
            {
                "Action": [
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                    "sqs:ReceiveMessage",
                ],
                "Effect": "Allow",
                "Resource": queue,
                "Sid": "ReceiveOwnQueue",
            },
            {
                "Action": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"],
                "Effect": "Allow",
                "Resource": f"{queue}-dlq",
                "Sid": "DeadLetterOwnQueue",
            },
        ],
        # Its own queue only: a deferred task is sent again; it sends to no other agent.
        "queues-send": [
            {
                "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
                "Effect": "Allow",
                "Resource": queue,
                "Sid": "SendTasks",
            }
        ],
        "secrets-read": [
            {
                "Action": ["secretsmanager:GetSecretValue"],
                "Effect": "Allow",
                "Resource": by_name(graph, "aws:secretsmanager/secret:Secret", "secrets-settings").arn,
                "Sid": "ReadSettingsSecret",
            }
        ],
        "state-data": [
            {
                "Action": [
                    "dynamodb:BatchGetItem",
                    "dynamodb:BatchWriteItem",
                    "dynamodb:ConditionCheckItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:DescribeTable",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                ],
                "Effect": "Allow",
                "Resource": sorted(table_arns()),
                "Sid": "StateTables",
            }
        ],
    }, "no log group, X-Ray or network interfaces: those are Lambda's, not a pod's"
    assert managed_policies(graph, named(CONTAINERIZED)) == set()


def test_the_agents_pod_role_is_its_service_accounts_only(graph: ResourceGraph) -> None:
    cluster = by_name(graph, "aws:eks/cluster:Cluster", "cluster-cluster")
    assert trust(graph, CONTAINERIZED) == {
        "Statement": [
            {
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": cluster.arn},
                    "StringEquals": {
                        "aws:RequestTag/kubernetes-namespace": KUBERNETES.namespace,
                        "aws:RequestTag/kubernetes-service-account": CONTAINERIZED,
                        "aws:SourceAccount": ACCOUNT,
                    },
                },
                "Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
            }
        ],
        "Version": "2012-10-17",
    }
    bound = associated(graph, CONTAINERIZED)
    assert (bound["clusterName"], bound["namespace"], bound["serviceAccount"]) == (
        cluster.inputs["name"],
        KUBERNETES.namespace,
        CONTAINERIZED,
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_runtime_reaches_its_own_queue_its_model_and_the_memory(
    graph: ResourceGraph, runtime: str
) -> None:
    own = queue_arn(f"tasks-{runtime}")
    assert (
        actions_on(graph, runtime, "sqs:ReceiveMessage")
        == actions_on(graph, runtime, "sqs:DeleteMessage")
        == {own}
    )
    delegates = (
        {queue_arn(f"tasks-{name}") for name in RUNTIMES} if runtime == CONFIG.orchestrator.name else {own}
    )
    assert actions_on(graph, runtime, "sqs:SendMessage") == delegates | {f"{own}-dlq"}
    # Its own model and the embeddings (memory search embeds queries): no other agent's.
    assert actions_on(graph, runtime, "bedrock:InvokeModel") == {*model_arns(runtime), EMBEDDINGS}
    assert actions_on(graph, runtime, "dynamodb:PutItem") == actions_on(graph, runtime, "dynamodb:Query")
    assert actions_on(graph, runtime, "dynamodb:Query") == table_arns()
    readers = {agent.name for agent in CONFIG.agents if "knowledge_search" in agent.tools}
    assert bool(actions_on(graph, runtime, "rds-db:connect")) is (runtime in readers)


@pytest.mark.parametrize("runtime", [*SERVERLESS, "ingest", "authorizer"])
def test_the_functions_roles_keep_the_foundations_shape(
    graph: ResourceGraph, foundation: ResourceGraph, runtime: str
) -> None:
    """The same inline policies with the same statements (resources are the stack's own), plus the network
    interfaces Lambda needs where a function moved into the VPC."""

    def shape(held: dict[str, Statements]) -> dict[str, list[tuple[str, str, tuple[str, ...]]]]:
        return {
            grant: [(s["Sid"], s["Effect"], tuple(as_set(s["Action"]))) for s in statements]
            for grant, statements in held.items()
        }

    before = shape(grants(foundation, runtime, FOUNDATION_PREFIX))
    after = shape(grants(graph, runtime))
    moved = runtime in SERVERLESS and "vpc-network-interfaces" not in before
    placed = (
        {"vpc-network-interfaces": shape(grants(graph, "ingest"))["vpc-network-interfaces"]} if moved else {}
    )
    assert after == before | placed
    assert managed_policies(graph, named(runtime)) == set()


def test_the_node_role_pulls_images_and_holds_no_data_grant(graph: ResourceGraph) -> None:
    nodes = named("cluster-nodes")
    assert managed_policies(graph, nodes) == set(MANAGED_POLICY_CALLS)
    caches = sorted(
        arn("ecr", f"repository/{rule.inputs['ecrRepositoryPrefix']}/*")
        for rule in graph.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    )
    assert grants(graph, "cluster-nodes") == {
        "images-import": [
            {
                "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
                "Effect": "Allow",
                "Resource": caches,
                "Sid": "ImportThroughCache",
            }
        ]
    }, "only the pull-through cache's repositories are created on first pull"
    assert not [a for a in calls_of(graph, nodes) if a.startswith(DATA_SERVICES)]
    pushers = {
        p.inputs["role"]
        for p in graph.of_type(ROLE_POLICY)
        for statement in json.loads(p.inputs["policy"])["Statement"]
        if as_set(statement["Action"]) & set(ECR_PUSH)
    }
    assert pushers == set(), "no role the stack makes may push an image"


# --- KEDA on the right queue with the right identity ------------------------------------------------------


def test_keda_scales_the_worker_on_its_own_queue_down_to_zero(graph: ResourceGraph) -> None:
    scaled = by_name(graph, "kubernetes:keda.sh/v1alpha1:ScaledObject", f"{CONTAINERIZED}-scaler").inputs
    worker = deployment(graph)["metadata"]
    assert scaled["metadata"]["namespace"] == worker["namespace"] == KUBERNETES.namespace
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": worker["name"]}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, KUBERNETES.max_replicas)
    [trigger] = spec["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"] == {
        "awsRegion": REGION,
        "queueLength": str(KUBERNETES.messages_per_replica),
        "queueURL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{named(f'tasks-{CONTAINERIZED}')}",
    }
    auth = by_name(
        graph, "kubernetes:keda.sh/v1alpha1:TriggerAuthentication", f"{CONTAINERIZED}-trigger-auth"
    )
    assert trigger["authenticationRef"] == {"name": auth.inputs["metadata"]["name"]}
    assert auth.inputs["metadata"]["namespace"] == KUBERNETES.namespace
    assert auth.inputs["spec"] == {
        "podIdentity": {"provider": "aws", "roleArn": role_arn(f"{CONTAINERIZED}-scaler")}
    }


def test_keda_reads_the_queue_depth_through_a_role_only_its_operator_assumes(graph: ResourceGraph) -> None:
    scaler = f"{CONTAINERIZED}-scaler"
    assert grants(graph, scaler) == {
        "read-queue-depth": [
            {
                "Action": ["sqs:GetQueueAttributes"],
                "Effect": "Allow",
                "Resource": queue_arn(f"tasks-{CONTAINERIZED}"),
                "Sid": "ReadQueueDepth",
            }
        ]
    }
    assert trust(graph, scaler)["Statement"] == [
        {
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Effect": "Allow",
            "Principal": {"AWS": role_arn("keda-operator")},
            "Sid": "KedaOperatorOnly",
        }
    ]
    assert grants(graph, "keda-operator") == {
        f"assume-{scaler}": [
            {
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Effect": "Allow",
                "Resource": role_arn(scaler),
                "Sid": "AssumeScalerRole",
            }
        ]
    }
    assert managed_policies(graph, named("keda-operator")) == managed_policies(graph, named(scaler)) == set()
    operator = associated(graph, "keda-operator")
    release = by_name(graph, "kubernetes:helm.sh/v3:Release", "keda").inputs
    assert (operator["namespace"], operator["serviceAccount"]) == ("keda", "keda-operator")
    assert release["namespace"] == operator["namespace"], (
        "the chart's operator service account, in its namespace"
    )
    assert release["values"]["podIdentity"] == {"aws": {"irsa": {"enabled": False}}}, "Pod Identity, not IRSA"
    assert trust(graph, "keda-operator")["Statement"][0]["Condition"]["StringEquals"] == {
        "aws:RequestTag/kubernetes-namespace": "keda",
        "aws:RequestTag/kubernetes-service-account": "keda-operator",
        "aws:SourceAccount": ACCOUNT,
    }


# --- the data perimeter ------------------------------------------------------------------------------------

QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
TABLE_POLICY = "aws:dynamodb/resourcePolicy:ResourcePolicy"
SECRET_POLICY = "aws:secretsmanager/secretPolicy:SecretPolicy"
SEND = ["sqs:SendMessage"]
RECEIVE = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"]
PERIMETERS = [
    # The containerized agent's queue is consumed inside the VPC: receiving is fenced too. Lambda's event
    # source mappings poll the others from the Lambda service, outside the VPC: only sending is.
    (QUEUE_POLICY, f"bus-tasks-{CONTAINERIZED}-policy", "sqs", [*RECEIVE, *SEND]),
    *[(QUEUE_POLICY, f"bus-tasks-{name}-policy", "sqs", SEND) for name in SERVERLESS],
    (QUEUE_POLICY, "bus-knowledge-ingest-policy", "sqs", SEND),
    *[(QUEUE_POLICY, f"bus-tasks-{name}-dlq-policy", "sqs", SEND) for name in RUNTIMES],
    (QUEUE_POLICY, "bus-knowledge-ingest-dlq-policy", "sqs", SEND),
    *[(TABLE_POLICY, f"state-{table}-perimeter", "dynamodb", TABLE_DATA_ACTIONS) for table in TABLES],
    (SECRET_POLICY, "secrets-perimeter", "secretsmanager", ["secretsmanager:GetSecretValue"]),
    # Documents are uploaded from their systems of record; reading them is fenced.
    ("aws:s3/bucketPolicy:BucketPolicy", "documents-tls-only", "s3", ["s3:GetObject", "s3:GetObjectVersion"]),
]  # fmt: skip


@pytest.mark.parametrize(("type_", "name", "service", "actions"), PERIMETERS, ids=[p[1] for p in PERIMETERS])
def test_data_is_refused_outside_the_vpcs_endpoints(
    graph: ResourceGraph, type_: str, name: str, service: str, actions: list[str]
) -> None:
    statement = fence(graph, type_, name)
    assert (statement["Effect"], statement["Principal"], sorted(as_set(statement["Action"]))) == (
        "Deny",
        "*",
        actions,
    )
    assert statement["Condition"] == {
        "ArnNotLikeIfExists": {"aws:PrincipalArn": arn("iam", "role/aws-service-role/*", regional=False)},
        "BoolIfExists": {"aws:PrincipalIsAWSService": "false", "aws:ViaAWSService": "false"},
        "StringNotEquals": {"aws:SourceVpce": [endpoint_id(graph, service)]},
    }, "only AWS services acting for the stack are excepted"


def test_every_data_action_granted_is_fenced(graph: ResourceGraph) -> None:
    """Each data action a role is granted on a fenced resource is one its fence denies outside the VPC, but
    receiving from the queues Lambda's event source mappings poll: the Lambda service does, from outside."""
    fenced = {
        resource: as_set(statement["Action"])
        for type_, name, _service, _actions in PERIMETERS
        for statement in [fence(graph, type_, name)]
        for resource in as_set(statement["Resource"])
    }
    # Metadata: table and queue descriptions, the bucket's keys and the objects' tags, none of their contents.
    metadata = {
        "dynamodb:DescribeTable",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "s3:ListBucket",
        "s3:GetObjectTagging",
    }
    receive = {"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"}
    polled = {
        m.inputs["eventSourceArn"] for m in graph.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    }
    assert polled == {queue_arn(f"tasks-{name}") for name in SERVERLESS} | {queue_arn("knowledge-ingest")}
    unfenced = {
        (p.inputs["role"], action, resource)
        for p in graph.of_type(ROLE_POLICY)
        for statement in json.loads(p.inputs["policy"])["Statement"]
        for resource in as_set(statement["Resource"])
        if resource in fenced
        for action in as_set(statement["Action"])
        if action not in metadata | (receive if resource in polled else set())
        and action not in fenced[resource]
    }
    assert unfenced == set()
    assert len(fenced) >= len(PERIMETERS)


# --- the pod's settings ------------------------------------------------------------------------------------


def test_the_pod_runs_with_the_settings_it_would_have_on_lambda(
    graph: ResourceGraph, foundation: ResourceGraph
) -> None:
    env = pod_env(graph)
    # What the host gives: Lambda names the settings secret and the region itself, and keeps embedded files
    # in its /tmp; the pod is given the same secret and region in its environment, and its /tmp volume too
    # (its root filesystem is read-only).
    secret = "AGENTSTAGE_SETTINGS_SECRET_ARN"
    pod_host = {
        secret,
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        *(env_name(setting) for setting in WORKER_DEFAULTS),
    }
    lambda_host = {secret, *(env_name(setting) for setting in RUNTIME_DEFAULTS)}
    # Metrics: the CloudWatch agent, not stdout, on EKS; the heartbeat file is what the pod's probes check.
    pod_only = {
        "AGENTSTAGE_EMF_AGENT_ENDPOINT",
        "AGENTSTAGE_EMF_LOG_GROUP",
        "AGENTSTAGE_WORKER_HEARTBEAT_FILE",
    }
    on_lambda = function_env(foundation, CONTAINERIZED)  # the same agent in the foundation, a function there
    assert set(env) - pod_host - pod_only == set(on_lambda) - lambda_host
    agent_specific = {"AGENTSTAGE_AGENTS", "AGENTSTAGE_TASK_QUEUE", "AGENTSTAGE_KNOWLEDGE_BACKEND"}
    analyst = function_env(graph, "analyst")
    shared = (set(env) & set(analyst)) - agent_specific
    assert {name: env[name] for name in shared} == {name: analyst[name] for name in shared}
    assert [agent.name for agent in runtime_catalog(env)] == [CONTAINERIZED]
    assert env["AGENTSTAGE_TASK_QUEUE"] == named(f"tasks-{CONTAINERIZED}")
    assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == (REGION, REGION)
    settings = by_name(graph, "aws:secretsmanager/secret:Secret", "secrets-settings").arn
    assert env[secret] == analyst[secret] == settings
    assert "password" not in env["AGENTSTAGE_POSTGRES_DSN"]
    assert env["AGENTSTAGE_SQLITE_PATH"] == WORKER_DEFAULTS["sqlite_path"]


def test_the_pods_metrics_go_to_the_container_insights_log_group(graph: ResourceGraph) -> None:
    env = pod_env(graph)
    assert env["AGENTSTAGE_TELEMETRY_EXPORTER"] == "emf"
    assert env["AGENTSTAGE_EMF_AGENT_ENDPOINT"] == "tcp://cloudwatch-agent.amazon-cloudwatch:25888"
    metrics = by_name(graph, LOG_GROUP, "insights-metrics-logs")
    assert env["AGENTSTAGE_EMF_LOG_GROUP"] == metrics.inputs["name"]
    assert f"{metrics.arn}:*" in actions_on(graph, "insights-agent", "logs:PutLogEvents"), (
        "the agent writes it"
    )
    agent = associated(graph, "insights-agent")
    assert (agent["namespace"], agent["serviceAccount"]) == ("amazon-cloudwatch", "cloudwatch-agent")


def test_the_pod_runs_the_stacks_image_by_digest_from_the_stages_registry(graph: ResourceGraph) -> None:
    [container] = deployment(graph)["spec"]["template"]["spec"]["containers"]
    repository = by_name(graph, "aws:ecr/repository:Repository", "registry-repository").inputs["name"]
    digest = KUBERNETES.image.rsplit("@", 1)[1]
    assert digest.startswith("sha256:")
    assert container["image"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}@{digest}"


# --- the same blocks as the foundation ---------------------------------------------------------------------

SHARED_BLOCKS = (
    *("encryption", "models", "state", "secrets", "bus", "gateway", "firewall", "knowledge", "monitoring"),
    "documents",  # the knowledge source's bucket
)


def block_urns(graph: ResourceGraph, block: str) -> set[str]:
    """The URNs, without the stack's name, of the top-level component ``block`` and everything under it."""
    [top] = [
        r
        for r in graph.resources
        if r.parent is None and r.name == block and r.type.startswith("agentstage:")
    ]
    found, pending = set(), [top.urn]
    while pending:
        urn = pending.pop()
        found.add(urn.split("::", 2)[2])
        pending += [child.urn for child in graph.children(urn)]
    return found


def test_the_foundations_blocks_keep_their_names(graph: ResourceGraph, foundation: ResourceGraph) -> None:
    """Pulumi replaces what changes its URN: the stage grows from the foundation without replacing its key,
    tables, secret, queues, index or bucket. Only what existed for the agent's function goes with it (its
    errors and latency alarms stay, now on the runtime's own metrics)."""
    before = set().union(*(block_urns(foundation, block) for block in SHARED_BLOCKS))
    after = set().union(*(block_urns(graph, block) for block in SHARED_BLOCKS))
    trigger = "aws:lambda/eventSourceMapping:EventSourceMapping"
    alarm = "aws:cloudwatch/metricAlarm:MetricAlarm"
    function_only = {
        f"agentstage:aws:MessageBus${trigger}::bus-tasks-{CONTAINERIZED}-trigger",
        *(f"agentstage:aws:Monitoring${alarm}::monitoring-{CONTAINERIZED}-{kind}" for kind in ("throttles",)),
    }
    assert before - after == function_only


def test_the_agent_on_eks_is_alarmed_on_its_own_runs(graph: ResourceGraph) -> None:
    """No Lambda metric watches a pod: its failed runs and p95 duration page from the runtime's metrics."""
    alarms = {a.name: a.inputs for a in graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    dimensions = {"Environment": "prod", "Agent": CONTAINERIZED}
    errors, latency = (
        alarms[f"monitoring-{CONTAINERIZED}-errors"],
        alarms[f"monitoring-{CONTAINERIZED}-latency"],
    )
    assert (errors["namespace"], errors["metricName"], errors["dimensions"], errors["statistic"]) == (
        "agentstage",
        "RunErrors",
        dimensions,
        "Sum",
    )
    assert (latency["metricName"], latency["dimensions"], latency["extendedStatistic"]) == (
        "RunDuration",
        dimensions,
        "p95",
    )
    assert (
        errors["alarmActions"]
        == latency["alarmActions"]
        == [by_name(graph, "aws:sns/topic:Topic", "monitoring-alarms").arn]
    )
