"""Azure (azure-native) as a first preview answers: ARM-shaped ids, inputs echoed, the name known.

Like the azure-native provider's preview, a resource's ``name`` output is known when its own name input
is: the single ``...Name`` input other than the resource group's (or, for a resource group,
``resourceGroupName`` itself). Ids keep the offline marker ``/agentstage-plan/<type>/<name>`` so graph
readers can follow references (``by_mock_id``) and nobody mistakes them for a real subscription.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

# Answers to the provider functions the program calls. The ids are obviously fake so they can never be
# mistaken for a real tenant.
INVOKES: dict[str, dict[str, Any]] = {
    "azure-native:authorization:getClientConfig": {
        "clientId": "00000000-0000-0000-0000-00000000c11e",
        "objectId": "00000000-0000-0000-0000-0000000000b1",
        "subscriptionId": "00000000-0000-0000-0000-000000000000",
        "tenantId": "00000000-0000-0000-0000-0000000000aa",
    },
    # A cluster's kubeconfig exists only once the cluster does: a first real preview answers "unknown".
    "azure-native:containerservice:listManagedClusterUserCredentials": {
        "kubeconfigs": [{"name": "clusterUser", "value": rpc.UNKNOWN}]
    },
}

# Outputs the provider computes on creation that the program reads back: unknown in a first preview.
# A mock that echoed the input would hand the program a known ``None`` (the issuer URL inside
# ``oidcIssuerProfile``) and drop the input built from it. The SDK only keeps unknowns at the top level
# of an output, so the whole property is unknown.
COMPUTED_OUTPUTS: dict[str, tuple[str, ...]] = {
    "azure-native:containerservice:ManagedCluster": ("oidcIssuerProfile",),
    # A system-assigned identity's principal id exists only once deployed; echoing the input would make it
    # a known None, and role assignments to it would record no principal and no dependency on the topic.
    "azure-native:eventgrid:SystemTopic": ("identity",),
}


class AzureProfile:
    """Resources echo their inputs (in ARM's output shapes); everything else stays unknown."""

    prefixes = ("azure-native:",)

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        _output_shapes(state)
        for name in COMPUTED_OUTPUTS.get(args.typ, ()):
            state[name] = rpc.UNKNOWN
        own_name = _own_name(args.typ, state)
        if own_name is not None:
            state.setdefault("name", own_name)
        return f"/agentstage-plan/{args.typ}/{args.name}", state

    def invoke(self, token: str, _args: Mapping[str, Any]) -> dict[str, Any] | None:
        return INVOKES.get(token)


def _output_shapes(state: dict[str, Any]) -> None:
    """Where an output's shape differs from its input's, echo the output shape.

    ARM takes user-assigned identities as a list of ids but returns them as a map of id -> details.
    """
    identity = state.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        state["identity"] = {
            **identity,
            "userAssignedIdentities": {i: {} for i in identity["userAssignedIdentities"]},
        }


def _own_name(type_: str, inputs: dict[str, Any]) -> Any:
    if type_ == "azure-native:resources:ResourceGroup":
        return inputs.get("resourceGroupName")
    candidates = [k for k in inputs if k.endswith("Name") and k != "resourceGroupName"]
    return inputs[candidates[0]] if len(candidates) == 1 else None
