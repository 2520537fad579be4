"""An agent on Kubernetes: the runtime image as an HTTP API or as a queue worker, hardened and least-privileged.

Both roles run the same runtime image (``runtime/Dockerfile``):

- ``api``: the image's own command (uvicorn on :data:`API_PORT`), probed on ``/healthz`` (alive) and
  ``/readyz`` (ready for traffic), behind a ClusterIP Service, at a fixed replica count;
- ``worker``: ``python -m agent_runtime.worker``, which consumes the agent's task queue and serves no
  port; KEDA scales it on that queue's depth (to zero when idle). The component points the worker's
  ``worker_heartbeat_file`` setting at :data:`WORKER_HEARTBEAT_FILE`, and its probes check the file's age
  (see :data:`WORKER_PROBE`; the readiness probe is the same check - nothing routes to a worker).

Every workload gets its own ServiceAccount (carrying its cloud identity), a PodDisruptionBudget and a
NetworkPolicy that opens exactly its callers and destinations inside an :class:`AgentNamespace`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from agent_runtime.settings_contract import env_name
from components.base import Component
from components.kubernetes.identity import PodIdentity
from components.kubernetes.network import Egress, workload_policy
from components.kubernetes.pod import ContainerResources, Probe, check_image, hardened_pod_spec
from components.kubernetes.scaling import QueueScaling, keda_scaling

WorkloadRole = Literal["api", "worker"]

API_PORT = 8000  # the runtime image's uvicorn port
SERVICE_PORT = 80
WORKER_COMMAND = ("python", "-m", "agent_runtime.worker")
WORKER_HEARTBEAT_FILE = "/tmp/agent-worker.heartbeat"  # inside the pod's own emptyDir
# The worker touches its heartbeat before every receive (at least once a second while idle), but not
# while all of its slots run tasks, and an agent run can take minutes: ten silent minutes mean a stuck
# consumer loop, not a busy one. The interpreter, certain to be in the runtime image, checks the age.
WORKER_HEARTBEAT_TIMEOUT_SECONDS = 600
WORKER_PROBE = Probe(
    command=(
        "python",
        "-c",
        (
            "import os, sys, time; "
            f"sys.exit(time.time() - os.stat({WORKER_HEARTBEAT_FILE!r}).st_mtime > {WORKER_HEARTBEAT_TIMEOUT_SECONDS})"
        ),
    ),
    period_seconds=30,
    initial_delay_seconds=30,
)
API_LIVENESS = Probe(path="/healthz")
API_READINESS = Probe(path="/readyz", period_seconds=5)


@dataclass(frozen=True)
class AgentWorkloadArgs:
    """One agent workload.

    ``image``: the runtime image by version tag or digest (``<registry>/agentstage-runtime@sha256:...``);
    ``latest`` or an untagged reference is refused. ``env``: the runtime's environment (from
    ``agent_runtime.settings.env_for``). ``settings_secret``: a Secret (in the namespace) whose keys
    (``AGENTSTAGE_<SETTING>``) the runtime reads as settings files, for settings that are secret. ``identity``: service account annotations and pod labels of the
    cloud's workload identity (:mod:`components.kubernetes.identity`). ``egress``: what the pods may reach
    besides DNS. ``ingress_namespaces`` (API only): namespaces allowed to call it; none means nothing can.
    ``replicas``: fixed pod count (the API, or a worker without ``scaling``); ``scaling``: KEDA on the
    worker's queue, which then owns the replica count.
    """

    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    env: Mapping[str, pulumi.Input[str]]
    settings_secret: str | None = None
    role: WorkloadRole = "api"
    identity: PodIdentity = field(default_factory=PodIdentity)
    resources: ContainerResources = field(default_factory=ContainerResources)
    egress: Egress = field(default_factory=Egress)
    ingress_namespaces: tuple[str, ...] = ()
    replicas: int = 2
    scaling: QueueScaling | None = None

    def __post_init__(self) -> None:
        if self.role not in ("api", "worker"):
            raise ValueError(f"role must be 'api' or 'worker', got {self.role!r}")
        if self.role == "api" and self.scaling is not None:
            raise ValueError(
                "queue scaling applies to 'worker' workloads; the API serves requests, not a queue"
            )
        if self.role == "worker" and self.ingress_namespaces:
            raise ValueError("a 'worker' serves no port: ingress_namespaces applies to 'api' workloads only")
        if self.replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {self.replicas}")
        if isinstance(self.image, str):
            check_image(self.image)  # an image known now fails now; one from an output fails when it resolves


class AgentWorkload(Component):
    """An agent Deployment with its ServiceAccount, Service, PDB, NetworkPolicy and KEDA scaling.

    Type ``agentstage:kubernetes:AgentWorkload``. Kubernetes names are fixed to ``name`` (the service
    account's name is part of a federated credential's subject). Outputs: ``service_account_name``,
    ``deployment_name``, ``service_name`` (API only, else ``None``).
    """

    def __init__(
        self,
        name: str,
        args: AgentWorkloadArgs,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kubernetes", "AgentWorkload", name, opts)
        self.label = name
        selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": args.role}
        labels = {**selector, "app.kubernetes.io/part-of": "agentstage"}
        child = self.child(provider=provider)
        port = API_PORT if args.role == "api" else None

        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name,
                namespace=args.namespace,
                labels=labels,
                annotations=dict(args.identity.annotations),
            ),
            automount_service_account_token=False,
            opts=child,
        )
        self.service_account_name: pulumi.Output[str] = account.metadata.name
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=args.namespace, labels=labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                # KEDA owns the count of a scaled worker: a replica count here would reset it on every update.
                replicas=None if args.scaling else args.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels={**labels, **args.identity.pod_labels}),
                    spec=hardened_pod_spec(
                        container_name="agent",
                        image=args.image,
                        command=WORKER_COMMAND if args.role == "worker" else None,
                        env={**args.env, env_name("worker_heartbeat_file"): WORKER_HEARTBEAT_FILE}
                        if args.role == "worker"
                        else args.env,
                        settings_secret=args.settings_secret,
                        resources=args.resources,
                        liveness=API_LIVENESS if port else WORKER_PROBE,
                        readiness=API_READINESS if port else WORKER_PROBE,
                        service_account_name=self.service_account_name,
                        port=port,
                    ),
                ),
            ),
            opts=child,
        )
        self.deployment_name: pulumi.Output[str] = deployment.metadata.name
        self.service_name: pulumi.Output[str] | None = None
        if port is not None:
            service = k8s.core.v1.Service(
                f"{name}-service",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=args.namespace, labels=labels),
                spec=k8s.core.v1.ServiceSpecArgs(
                    type="ClusterIP",
                    selector=selector,
                    ports=[k8s.core.v1.ServicePortArgs(name="http", port=SERVICE_PORT, target_port="http")],
                ),
                opts=child,
            )
            self.service_name = service.metadata.name
        # One pod at a time may be evicted by drains and upgrades; pods that never became ready may always be.
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-disruption-budget",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=args.namespace, labels=labels),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                unhealthy_pod_eviction_policy="AlwaysAllow",
            ),
            opts=child,
        )
        workload_policy(
            f"{name}-network-policy",
            namespace=args.namespace,
            pod_labels=selector,
            egress=args.egress,
            ingress_namespaces=args.ingress_namespaces,
            port=port,
            opts=child,
        )
        if args.scaling is not None:
            keda_scaling(
                name,
                namespace=args.namespace,
                deployment_name=self.deployment_name,
                scaling=args.scaling,
                opts=child,
            )
        self.register_outputs(
            {
                "service_account_name": self.service_account_name,
                "deployment_name": self.deployment_name,
                "service_name": self.service_name,
            }
        )
