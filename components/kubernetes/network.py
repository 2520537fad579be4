"""Network policies: a namespace denies everything, then each workload is allowed exactly what it needs.

Kubernetes allows all pod traffic until a NetworkPolicy selects a pod; once one does, only what some
policy allows passes. :func:`default_deny` and :func:`dns_egress` are the namespace's floor; each
workload adds one policy naming its callers and its destinations (:class:`Egress`). Policies match
addresses and namespaces, not host names, so cloud endpoints are reached by CIDR (the virtual network of
their private endpoints, or the public range on 443 where a service has none, such as Entra ID's token
endpoint). The instance metadata address is always carved out of any range that contains it: on a cloud
node it hands out the node's own identity (on AKS, the kubelet identity), which no agent pod may borrow.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
INSTANCE_METADATA = ipaddress.ip_network("169.254.169.254/32")
DNS_PORT = 53


@dataclass(frozen=True)
class Egress:
    """Where a workload may connect: ``cidrs`` and whole ``namespaces``, on ``ports`` (TCP; HTTPS by default)."""

    cidrs: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    ports: tuple[int, ...] = (443,)

    def __post_init__(self) -> None:
        for cidr in self.cidrs:
            ipaddress.ip_network(cidr)  # raises ValueError naming the malformed range
        if not self.ports:
            raise ValueError("egress needs at least one port")


def _namespace_peer(name: str) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={NAMESPACE_NAME_LABEL: name})
    )


def _cidr_peer(cidr: str) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    network = ipaddress.ip_network(cidr)
    carve_out = (
        [str(INSTANCE_METADATA)]
        if network.version == 4 and network != INSTANCE_METADATA and INSTANCE_METADATA.subnet_of(network)  # type: ignore[arg-type]
        else None
    )
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        ip_block=k8s.networking.v1.IPBlockArgs(cidr=str(network), except_=carve_out)
    )


def default_deny(
    name: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> k8s.networking.v1.NetworkPolicy:
    """Every pod of ``namespace`` selected, no rule given: all ingress and egress denied."""
    return k8s.networking.v1.NetworkPolicy(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name="default-deny", namespace=namespace),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(), policy_types=["Ingress", "Egress"]
        ),
        opts=opts,
    )


def dns_egress(
    name: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> k8s.networking.v1.NetworkPolicy:
    """Every pod of ``namespace`` may resolve names with the cluster DNS (``k8s-app: kube-dns`` in kube-system)."""
    return k8s.networking.v1.NetworkPolicy(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name="allow-dns", namespace=namespace),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(),
            policy_types=["Egress"],
            egress=[
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                    to=[
                        k8s.networking.v1.NetworkPolicyPeerArgs(
                            namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                                match_labels={NAMESPACE_NAME_LABEL: "kube-system"}
                            ),
                            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"k8s-app": "kube-dns"}),
                        )
                    ],
                    ports=[
                        k8s.networking.v1.NetworkPolicyPortArgs(protocol=protocol, port=DNS_PORT)
                        for protocol in ("UDP", "TCP")
                    ],
                )
            ],
        ),
        opts=opts,
    )


def workload_policy(
    name: str,
    *,
    namespace: pulumi.Input[str],
    pod_labels: Mapping[str, str],
    egress: Egress,
    ingress_namespaces: Sequence[str],
    port: int | None,
    opts: pulumi.ResourceOptions,
) -> k8s.networking.v1.NetworkPolicy:
    """The workload's own allowances: ``egress``, and ingress on ``port`` from ``ingress_namespaces``.

    A workload without a port (the queue worker) accepts no connections at all.
    """
    peers = [*(_cidr_peer(c) for c in egress.cidrs), *(_namespace_peer(n) for n in egress.namespaces)]
    ingress = (
        [
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[_namespace_peer(n) for n in ingress_namespaces],
                ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port)],
            )
        ]
        if port is not None and ingress_namespaces
        else []
    )
    return k8s.networking.v1.NetworkPolicy(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(pod_labels)),
            policy_types=["Ingress", "Egress"],
            ingress=ingress,
            egress=[
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                    to=peers,
                    ports=[
                        k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=p) for p in egress.ports
                    ],
                )
            ]
            if peers
            else [],
        ),
        opts=opts,
    )
