"""Kubernetes workloads: least privilege inside the pod, limits, network policies and workload identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.graph import Resource, ResourceGraph
from core.workloads import K8S_WORKLOADS, containers, namespace, pod_spec, pod_template
from policies.findings import Severity
from policies.rules.context import StackContext
from policies.rules.model import Check, Rule, Verdict, failed, passed
from policies.rules.predicates import is_unknown

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
POD_IDENTITY_ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
AZURE_WI_CLIENT_ID = "azure.workload.identity/client-id"
AZURE_WI_USE_LABEL = "azure.workload.identity/use"
AWS_IRSA_ROLE = "eks.amazonaws.com/role-arn"

ContainerProblem = Callable[[dict[str, Any], dict[str, Any]], str | None]


def _per_container(problem: ContainerProblem, good: str) -> Check:
    """A check that every container passes ``problem(container, pod_security_context)`` (None = fine)."""

    def check(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
        pod_context = pod_spec(resource).get("securityContext") or {}
        found = containers(resource)
        if not found:
            return failed("the pod template has no containers to verify")
        problems = [
            f"container {c.get('name', '?')}: {p}"
            for c in found
            if (p := problem(c, pod_context)) is not None
        ]
        if problems:
            return failed("; ".join(problems))
        return passed(f"all {len(found)} containers {good}")

    return check


def _context(container: dict[str, Any]) -> dict[str, Any]:
    value = container.get("securityContext")
    return value if isinstance(value, dict) else {}


def _root(container: dict[str, Any], pod: dict[str, Any]) -> str | None:
    own = _context(container)
    non_root = own.get("runAsNonRoot", pod.get("runAsNonRoot"))
    user = own.get("runAsUser", pod.get("runAsUser"))
    if user == 0:
        return "runAsUser is 0 (root)"
    if non_root is not True:
        return "runAsNonRoot is not true in the container's or the pod's securityContext"
    return None


def _writable_root(container: dict[str, Any], _pod: dict[str, Any]) -> str | None:
    if _context(container).get("readOnlyRootFilesystem") is not True:
        return "securityContext.readOnlyRootFilesystem is not true"
    return None


def _unlimited(container: dict[str, Any], _pod: dict[str, Any]) -> str | None:
    limits = (container.get("resources") or {}).get("limits") or {}
    missing = [k for k in ("cpu", "memory") if not limits.get(k)]
    return f"resources.limits lacks {', '.join(missing)}" if missing else None


def _escalates(container: dict[str, Any], _pod: dict[str, Any]) -> str | None:
    context = _context(container)
    if context.get("privileged") is True:
        return "securityContext.privileged is true"
    if context.get("allowPrivilegeEscalation") is not False:
        return "securityContext.allowPrivilegeEscalation is not false"
    return None


def _mutable_image(container: dict[str, Any], _pod: dict[str, Any]) -> str | None:
    image = str(container.get("image", ""))
    if "@sha256:" in image:
        return None
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if not tag or tag == "latest":
        return f"image {image!r} has no version tag or digest"
    return None


def _network_policy(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    ns = namespace(resource)
    labels = pod_template(resource).get("metadata", {}).get("labels") or {}
    policies = [p for p in graph.of_type(NETWORK_POLICY) if namespace(p) == ns and _selects(p, labels)]
    if not policies:
        return failed(
            f"no NetworkPolicy in namespace {ns!r} selects its pods: all traffic to and from them is allowed"
        )
    return passed(f"selected by NetworkPolicy {', '.join(p.name for p in policies)}")


def _selects(policy: Resource, labels: dict[str, Any]) -> bool:
    selector = policy.get("spec.podSelector")
    if not isinstance(selector, dict):
        return False
    wanted = selector.get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items()) and not selector.get("matchExpressions")


def _workload_identity(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    spec = pod_spec(resource)
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    if name == "default":
        return failed("runs as its namespace's default service account, which has no workload identity")
    ns = namespace(resource)
    accounts = [
        sa
        for sa in graph.of_type(SERVICE_ACCOUNT)
        if namespace(sa) == ns
        and (sa.get("metadata.name") == name or (is_unknown(name) and sa.urn in resource.dependencies))
    ]
    if not accounts:
        return failed(
            f"service account {name!r} is not defined in this stack, so its identity cannot be reviewed"
        )
    annotations = accounts[0].get("metadata.annotations") or {}
    if annotations.get(AZURE_WI_CLIENT_ID):
        labels = pod_template(resource).get("metadata", {}).get("labels") or {}
        if str(labels.get(AZURE_WI_USE_LABEL, "")).lower() != "true":
            return failed(
                f"pod template lacks the label {AZURE_WI_USE_LABEL}: 'true', so no token is injected"
            )
        return passed(f"uses Entra workload identity through {accounts[0].name}")
    if annotations.get(AWS_IRSA_ROLE):
        return passed(f"uses an IAM role for service accounts through {accounts[0].name}")
    association = next(
        (
            a
            for a in graph.of_type(POD_IDENTITY_ASSOCIATION)
            if a.get("namespace") == ns and a.get("serviceAccount") == accounts[0].get("metadata.name")
        ),
        None,
    )
    if association is not None:
        return passed(
            f"uses EKS Pod Identity: {association.name} binds {ns}/{accounts[0].get('metadata.name')}"
        )
    return failed(
        f"service account {accounts[0].name} has neither {AZURE_WI_CLIENT_ID} nor {AWS_IRSA_ROLE}, and no "
        "EKS Pod Identity association names it"
    )


def _rule(
    rule_id: str,
    title: str,
    severity: Severity,
    rationale: str,
    remediation: str,
    check: Check,
    reference: str,
    *,
    mandatory: bool = True,
    needs_graph: bool = False,
) -> Rule:
    return Rule(
        id=rule_id,
        title=title,
        severity=severity,
        rationale=rationale,
        remediation=remediation,
        types=K8S_WORKLOADS,
        check=check,
        reference=reference,
        mandatory=mandatory,
        needs_graph=needs_graph,
    )


_PSS = "https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted"

RULES = (
    _rule(
        "AGS-K8S-002",
        "Containers run as non-root",
        Severity.HIGH,
        "A process running as root inside a container is one kernel or runtime bug away from root on the node, "
        "and can modify everything in its own image.",
        "Set `securityContext.runAsNonRoot: true` (pod or container) and a non-zero `runAsUser`; the runtime "
        "image runs as an unprivileged user.",
        _per_container(_root, "run as non-root"),
        _PSS,
    ),
    _rule(
        "AGS-K8S-003",
        "Containers have a read-only root filesystem",
        Severity.MEDIUM,
        "A writable root filesystem lets an attacker who gains code execution (e.g. through a tool) persist "
        "or replace the agent's code for the life of the pod.",
        "Set `securityContext.readOnlyRootFilesystem: true` and mount an `emptyDir` where the app needs scratch space.",
        _per_container(_writable_root, "have a read-only root filesystem"),
        _PSS,
    ),
    _rule(
        "AGS-K8S-004",
        "Containers set CPU and memory limits",
        Severity.MEDIUM,
        "Without limits one runaway agent (a loop, a huge tool response) starves every other pod on the node.",
        "Set `resources.limits.cpu` and `resources.limits.memory` (and requests) on every container.",
        _per_container(_unlimited, "set CPU and memory limits"),
        "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/",
    ),
    _rule(
        "AGS-K8S-005",
        "Containers cannot escalate privileges",
        Severity.HIGH,
        "Privileged containers and setuid binaries (allowPrivilegeEscalation) hand a compromised process the node.",
        "Set `securityContext.allowPrivilegeEscalation: false` and never `privileged: true`.",
        _per_container(_escalates, "forbid privilege escalation"),
        _PSS,
    ),
    _rule(
        "AGS-K8S-006",
        "Workloads are selected by a NetworkPolicy",
        Severity.MEDIUM,
        "Kubernetes allows all pod-to-pod traffic by default: a compromised agent could reach every service "
        "in the cluster. A NetworkPolicy in the namespace restricts it to what the agent needs.",
        "Create a NetworkPolicy in the workload's namespace whose podSelector matches its pods (default-deny "
        "plus explicit egress to the model endpoint, the bus and DNS).",
        _network_policy,
        "https://kubernetes.io/docs/concepts/services-networking/network-policies/",
        needs_graph=True,
    ),
    _rule(
        "AGS-K8S-007",
        "Workloads authenticate with workload identity",
        Severity.HIGH,
        "Without workload identity pods reach cloud services with stored secrets or the node's identity, "
        "which every pod on the node shares.",
        f"Run the pod as a dedicated ServiceAccount annotated `{AZURE_WI_CLIENT_ID}` (AKS, with the pod label "
        f'`{AZURE_WI_USE_LABEL}: "true"`) or `{AWS_IRSA_ROLE}` (EKS), or bound by an EKS Pod Identity '
        "association.",
        _workload_identity,
        "https://learn.microsoft.com/azure/aks/workload-identity-overview",
        needs_graph=True,
    ),
    _rule(
        "AGS-K8S-008",
        "Container images are pinned to a version or digest",
        Severity.LOW,
        "`latest` or untagged images change under a running deployment and make rollbacks and scans meaningless.",
        "Reference images by immutable tag or, better, by `@sha256:` digest.",
        _per_container(_mutable_image, "use pinned images"),
        "https://kubernetes.io/docs/concepts/containers/images/#image-names",
        mandatory=False,
    ),
)
