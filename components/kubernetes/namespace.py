"""The namespace agents run in: Pod Security "restricted" enforced, and no traffic until a policy allows it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.base import Component
from components.kubernetes.network import default_deny, dns_egress

# Pod Security Admission: refuse (enforce), log (audit) and warn about pods below "restricted".
POD_SECURITY_LABELS = {
    f"pod-security.kubernetes.io/{mode}{suffix}": value
    for mode in ("enforce", "audit", "warn")
    for suffix, value in (("", "restricted"), ("-version", "latest"))
}


@dataclass(frozen=True)
class AgentNamespaceArgs:
    """``name`` is fixed (not auto-named): federated credentials name the namespace in their subject."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


class AgentNamespace(Component):
    """A namespace (``agentstage:kubernetes:AgentNamespace``) where the cluster refuses non-restricted pods.

    Two NetworkPolicies make it closed by default: ``default-deny`` selects every pod and allows nothing,
    ``allow-dns`` lets every pod query the cluster DNS. Each workload then opens only its own traffic.
    Output: ``name``.
    """

    def __init__(
        self,
        name: str,
        args: AgentNamespaceArgs,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kubernetes", "AgentNamespace", name, opts)
        namespace = k8s.core.v1.Namespace(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.name, labels={**args.labels, **POD_SECURITY_LABELS}
            ),
            opts=self.child(provider=provider),
        )
        self.name: pulumi.Output[str] = namespace.metadata.name
        default_deny(f"{name}-default-deny", self.name, self.child(provider=provider))
        dns_egress(f"{name}-allow-dns", self.name, self.child(provider=provider))
        self.register_outputs({"name": self.name})
