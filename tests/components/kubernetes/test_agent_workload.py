"""Agent workloads on any cluster: hardened pods, closed networks, and KEDA scaling on the agent's own queue."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from k8s_programs import AGENT_CLIENT_ID, ENV, IMAGE, KEDA_CLIENT_ID, record_with_cluster

from components.kubernetes.identity import AZURE_CLIENT_ID_ANNOTATION, AZURE_USE_LABEL, aws_role
from components.kubernetes.namespace import AgentNamespace, AgentNamespaceArgs
from components.kubernetes.network import Egress
from components.kubernetes.pod import SETTINGS_SECRET_DIR, Probe, check_image
from components.kubernetes.scaling import QueueScaling, sqs_queue, storage_queue
from components.kubernetes.workload import (
    WORKER_COMMAND,
    WORKER_HEARTBEAT_FILE,
    AgentWorkload,
    AgentWorkloadArgs,
)
from core.graph import Resource, ResourceGraph
from policies.findings import Outcome
from policies.rules.context import StackContext
from policies.rules.evaluate import judge
from policies.rules.kubernetes import RULES as KUBERNETES_RULES
from policies.rules.model import Stage

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"


def _named(graph: ResourceGraph, type_: str, name: str) -> Resource:
    found = [r for r in graph.of_type(type_) if r.get("metadata.name") == name]
    assert len(found) == 1, f"expected one {type_} named {name}, found {[r.urn for r in found]}"
    return found[0]


def _container(deployment: Resource) -> dict[str, Any]:
    (container,) = deployment.get("spec.template.spec.containers")
    return container


# (where, path inside it, required value): the restricted Pod Security Standard plus the kit's own rules.
HARDENING: list[tuple[str, str, Any]] = [
    ("pod", "automountServiceAccountToken", False),
    ("pod", "securityContext.runAsNonRoot", True),
    ("pod", "securityContext.runAsUser", 10001),
    ("pod", "securityContext.runAsGroup", 10001),
    ("pod", "securityContext.seccompProfile.type", "RuntimeDefault"),
    ("container", "securityContext.runAsNonRoot", True),
    ("container", "securityContext.runAsUser", 10001),
    ("container", "securityContext.readOnlyRootFilesystem", True),
    ("container", "securityContext.allowPrivilegeEscalation", False),
    ("container", "securityContext.privileged", False),
    ("container", "securityContext.capabilities.drop", ["ALL"]),
    ("container", "securityContext.seccompProfile.type", "RuntimeDefault"),
    ("container", "imagePullPolicy", "Always"),
    ("container", "image", IMAGE),
    ("container", "resources.requests.cpu", "250m"),
    ("container", "resources.requests.memory", "512Mi"),
    ("container", "resources.limits.cpu", "1"),
    ("container", "resources.limits.memory", "1Gi"),
    ("container", "volumeMounts", [{"name": "scratch", "mountPath": "/tmp"}]),
    ("pod", "volumes", [{"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}]),
]


def _at(value: Any, path: str) -> Any:
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


@pytest.mark.parametrize("workload", ["research-api", "research-worker"])
@pytest.mark.parametrize(("where", "path", "expected"), HARDENING, ids=[f"{w}.{p}" for w, p, _ in HARDENING])
def test_every_workload_pod_is_hardened(agent_graph, workload, where, path, expected) -> None:
    deployment = _named(agent_graph, DEPLOYMENT, workload)
    subject = deployment.get("spec.template.spec") if where == "pod" else _container(deployment)
    assert _at(subject, path) == expected, f"{deployment.urn}: {where} {path} is {_at(subject, path)!r}"


def test_every_deployment_in_the_graph_is_covered(agent_graph) -> None:
    names = sorted(d.get("metadata.name") for d in agent_graph.of_type(DEPLOYMENT))
    assert names == ["research-api", "research-worker"]


def test_api_probes_health_and_readiness_and_is_served_on_its_named_port(agent_graph) -> None:
    deployment = _named(agent_graph, DEPLOYMENT, "research-api")
    container = _container(deployment)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8000}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8000}
    assert container["ports"] == [{"name": "http", "containerPort": 8000}]
    assert "command" not in container, "the API runs the image's own command (uvicorn)"
    service = _named(agent_graph, SERVICE, "research-api")
    assert service.get("spec.type") == "ClusterIP"
    assert service.get("spec.ports") == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert service.get("spec.selector") == deployment.get("spec.selector.matchLabels")
    assert deployment.get("spec.replicas") == 2


def test_worker_runs_the_queue_consumer_with_heartbeat_probes_and_no_port(agent_graph) -> None:
    container = _container(_named(agent_graph, DEPLOYMENT, "research-worker"))
    assert container["command"] == list(WORKER_COMMAND)
    for probe in ("livenessProbe", "readinessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[:2] == ["python", "-c"] and "/tmp/agent-worker.heartbeat" in command[2], probe
    assert "ports" not in container
    assert not [s for s in agent_graph.of_type(SERVICE) if s.get("metadata.name") == "research-worker"]


def test_environment_is_passed_through_and_the_worker_reports_its_heartbeat(agent_graph) -> None:
    api = {e["name"]: e["value"] for e in _container(_named(agent_graph, DEPLOYMENT, "research-api"))["env"]}
    assert api == ENV
    worker = _container(_named(agent_graph, DEPLOYMENT, "research-worker"))
    env = {e["name"]: e["value"] for e in worker["env"]}
    assert env == {**ENV, "AGENTSTAGE_WORKER_HEARTBEAT_FILE": WORKER_HEARTBEAT_FILE}
    assert WORKER_HEARTBEAT_FILE in worker["livenessProbe"]["exec"]["command"][2], "the probe reads that file"
    assert "envFrom" not in worker and len(worker["volumeMounts"]) == 1


def test_secret_settings_are_files_from_a_named_secret_never_environment() -> None:
    def program(provider):
        AgentWorkload(
            "api",
            AgentWorkloadArgs(namespace="agents", image=IMAGE, env={}, settings_secret="agent-settings"),
            provider,
        )

    deployment = _named(record_with_cluster(program), DEPLOYMENT, "api")
    container = _container(deployment)
    assert "envFrom" not in container
    assert {"name": "AGENTSTAGE_SETTINGS_DIR", "value": SETTINGS_SECRET_DIR} in container["env"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "settings")
    assert mount == {"name": "settings", "mountPath": SETTINGS_SECRET_DIR, "readOnly": True}
    volume = next(v for v in deployment.get("spec.template.spec.volumes") if v["name"] == "settings")
    assert volume["secret"]["secretName"] == "agent-settings"


def test_service_account_carries_the_identity_and_pods_opt_in(agent_graph) -> None:
    for name in ("research-api", "research-worker"):
        account = _named(agent_graph, SERVICE_ACCOUNT, name)
        assert account.get("metadata.annotations") == {AZURE_CLIENT_ID_ANNOTATION: AGENT_CLIENT_ID}, (
            account.urn
        )
        assert account.get("automountServiceAccountToken") is False, account.urn
        deployment = _named(agent_graph, DEPLOYMENT, name)
        assert deployment.get("spec.template.spec.serviceAccountName") == name, deployment.urn
        assert deployment.get("spec.template.metadata.labels")[AZURE_USE_LABEL] == "true", deployment.urn


def test_keda_scales_the_worker_on_its_own_service_bus_queue(agent_graph) -> None:
    scaled = _named(agent_graph, SCALED_OBJECT, "research-worker")
    (trigger,) = scaled.get("spec.triggers")
    assert trigger["type"] == "azure-servicebus"
    assert trigger["metadata"] == {
        "namespace": "sb-agst-prod",
        "queueName": "research-tasks",
        "messageCount": "5",
    }
    assert scaled.get("spec.scaleTargetRef") == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "research-worker",
    }
    assert scaled.get("spec.minReplicaCount") == 0 and scaled.get("spec.maxReplicaCount") == 20
    assert scaled.get("spec.fallback") == {"failureThreshold": 3, "replicas": 2}
    behavior = scaled.get("spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown")
    assert behavior["stabilizationWindowSeconds"] == 300
    auth = _named(agent_graph, TRIGGER_AUTH, trigger["authenticationRef"]["name"])
    assert auth.get("spec.podIdentity") == {"provider": "azure-workload", "identityId": KEDA_CLIENT_ID}
    assert auth.urn in scaled.dependencies, "the ScaledObject must not start before its authentication exists"
    assert scaled.get("metadata.namespace") == auth.get("metadata.namespace") == "agents"


def test_keda_owns_the_worker_replica_count(agent_graph) -> None:
    deployment = _named(agent_graph, DEPLOYMENT, "research-worker")
    assert deployment.get("spec.replicas") is None, "a replica count would reset KEDA's on every update"
    assert not [s for s in agent_graph.of_type(SCALED_OBJECT) if s.get("metadata.name") == "research-api"]


def test_disruption_budgets_select_each_workload(agent_graph) -> None:
    for name in ("research-api", "research-worker"):
        budget = _named(agent_graph, PDB, name)
        deployment = _named(agent_graph, DEPLOYMENT, name)
        assert budget.get("spec.maxUnavailable") == 1, budget.urn
        assert budget.get("spec.unhealthyPodEvictionPolicy") == "AlwaysAllow", budget.urn
        assert budget.get("spec.selector.matchLabels") == deployment.get("spec.selector.matchLabels"), (
            budget.urn
        )


def test_namespace_enforces_restricted_pod_security(agent_graph) -> None:
    namespace = _named(agent_graph, NAMESPACE, "agents")
    labels = namespace.get("metadata.labels")
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted", mode


def test_namespace_denies_all_traffic_but_dns_by_default(agent_graph) -> None:
    deny = _named(agent_graph, NETWORK_POLICY, "default-deny")
    assert deny.get("metadata.namespace") == "agents"
    assert deny.get("spec") == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = _named(agent_graph, NETWORK_POLICY, "allow-dns")
    assert dns.get("spec.podSelector") == {} and dns.get("spec.policyTypes") == ["Egress"]
    (rule,) = dns.get("spec.egress")
    assert rule["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert sorted((p["protocol"], p["port"]) for p in rule["ports"]) == [("TCP", 53), ("UDP", 53)]


def test_workload_policies_allow_only_https_egress_and_the_api_port(agent_graph) -> None:
    api = _named(agent_graph, NETWORK_POLICY, "research-api-network-policy")
    assert api.get("spec.podSelector.matchLabels") == _named(agent_graph, DEPLOYMENT, "research-api").get(
        "spec.selector.matchLabels"
    )
    (egress,) = api.get("spec.egress")
    assert egress["ports"] == [{"protocol": "TCP", "port": 443}]
    assert egress["to"] == [
        {"ipBlock": {"cidr": "10.20.0.0/16"}},
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}},
    ], "the instance metadata endpoint (the node's identity) must stay unreachable"
    (ingress,) = api.get("spec.ingress")
    assert ingress == {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}],
        "ports": [{"protocol": "TCP", "port": 8000}],
    }
    worker = _named(agent_graph, NETWORK_POLICY, "research-worker-network-policy")
    assert worker.get("spec.ingress") == [] and worker.get("spec.policyTypes") == ["Ingress", "Egress"]


def test_other_queue_triggers_name_their_queue_and_identity() -> None:
    storage = storage_queue(account="stagstprod", queue="tasks", identity_client_id="cid")
    assert (storage.type, storage.metadata["queueName"], storage.metadata["accountName"]) == (
        "azure-queue",
        "tasks",
        "stagstprod",
    )
    assert storage.pod_identity == {"provider": "azure-workload", "identityId": "cid"}
    sqs = sqs_queue(
        queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/tasks",
        queue="tasks",
        region="eu-west-1",
        role_arn="arn:aws:iam::123456789012:role/keda-tasks",
        messages_per_replica=10,
    )
    assert sqs.type == "aws-sqs-queue" and sqs.metadata["queueLength"] == "10"
    assert sqs.pod_identity == {"provider": "aws", "roleArn": "arn:aws:iam::123456789012:role/keda-tasks"}


def test_an_eks_worker_on_sqs_records_irsa_and_the_aws_scaler() -> None:
    def program(provider):
        AgentWorkload(
            "triage",
            AgentWorkloadArgs(
                namespace="agents",
                image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/agentstage-runtime:1.4.2",
                env={},
                role="worker",
                identity=aws_role("arn:aws:iam::123456789012:role/triage"),
                scaling=QueueScaling(
                    sqs_queue(
                        queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/triage",
                        queue="triage",
                        region="eu-west-1",
                        role_arn="arn:aws:iam::123456789012:role/keda-triage",
                    )
                ),
            ),
            provider,
        )

    graph = record_with_cluster(program)
    account = _named(graph, SERVICE_ACCOUNT, "triage")
    assert account.get("metadata.annotations") == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/triage"
    }
    (trigger,) = _named(graph, SCALED_OBJECT, "triage").get("spec.triggers")
    assert trigger["metadata"]["queueURL"].endswith("/triage")
    assert AZURE_USE_LABEL not in _named(graph, DEPLOYMENT, "triage").get("spec.template.metadata.labels")


@pytest.mark.parametrize(
    "image",
    [
        "registry.example/agent",
        "registry.example/agent:latest",
        "registry.example:5000/agent",
        "agent@sha256:abc",
    ],
)
def test_mutable_image_references_are_refused(image) -> None:
    with pytest.raises(ValueError, match="must be pinned"):
        check_image(image)


@pytest.mark.parametrize("image", [IMAGE, "registry.example:5000/agent:1.4.2", "agent:2026.11.25"])
def test_pinned_image_references_are_accepted(image) -> None:
    assert check_image(image) == image


def test_a_latest_image_fails_the_plan_even_when_it_comes_from_an_output() -> None:
    with pytest.raises(ValueError, match="must be pinned"):
        AgentWorkloadArgs(namespace="agents", image="agent:latest", env={})

    def program(provider):
        image = pulumi.Output.from_input("agent:latest")
        AgentWorkload("api", AgentWorkloadArgs(namespace="agents", image=image, env={}), provider)

    with pytest.raises(Exception, match="must be pinned"):
        record_with_cluster(program)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"scaling": QueueScaling(storage_queue(account="a", queue="q", identity_client_id="c"))},
            "applies to 'worker'",
        ),
        ({"role": "worker", "ingress_namespaces": ("ingress",)}, "serves no port"),
        ({"role": "batch"}, "role must be"),
        ({"replicas": 0}, "replicas must be at least 1"),
    ],
)
def test_inconsistent_workload_args_are_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        AgentWorkloadArgs(namespace="agents", image=IMAGE, env={}, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas <= max_replicas"),
        ({"max_replicas": 0}, "max_replicas >= 1"),
        ({"fallback_replicas": 11}, "fallback_replicas must be between 1 and max_replicas"),
    ],
)
def test_inconsistent_scaling_is_refused(kwargs, message) -> None:
    trigger = storage_queue(account="a", queue="q", identity_client_id="c")
    with pytest.raises(ValueError, match=message):
        QueueScaling(trigger, **kwargs)


def test_probes_and_egress_validate_their_settings() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Probe(path="/healthz", command=("true",))
    with pytest.raises(ValueError, match="needs the container to serve a port"):
        Probe(path="/healthz").to_args(None)
    with pytest.raises(ValueError):
        Egress(cidrs=("10.0.0.0/33",))
    with pytest.raises(ValueError, match="messages_per_replica"):
        storage_queue(account="a", queue="q", identity_client_id="c", messages_per_replica=0)


def test_namespace_labels_cannot_weaken_pod_security() -> None:
    def program(provider):
        AgentNamespace(
            "agents",
            AgentNamespaceArgs(
                name="agents", labels={"pod-security.kubernetes.io/enforce": "privileged", "team": "ai"}
            ),
            provider,
        )

    labels = _named(record_with_cluster(program), NAMESPACE, "agents").get("metadata.labels")
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted" and labels["team"] == "ai"


def test_the_kits_own_kubernetes_rules_pass_on_every_workload(agent_graph) -> None:
    context = StackContext(stage=Stage.ENTERPRISE, log_retention_days=30, waivers=(), source="test")
    findings = [
        judge(rule, resource, agent_graph, context)
        for rule in KUBERNETES_RULES
        for resource in agent_graph.resources
        if resource.type in rule.types
    ]
    assert len(findings) == 2 * len(KUBERNETES_RULES)
    assert [
        f"{f.check_id} {f.resource_name}: {f.message}" for f in findings if f.outcome is not Outcome.PASSED
    ] == []
