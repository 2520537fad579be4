"""The shared interface every Azure component takes (the AVM idea: same inputs, same names).

A blueprint builds one :class:`AzureContext` per deployment and hands it to each component, so every
block tags its resources the same way, sends diagnostics to the same workspace, names resources by the
same rules and knows the subscription for role definitions. Components reference the workspace they
depend on and never create it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pulumi

from components.azure.naming import Naming


@dataclass(frozen=True)
class AzureContext:
    """Where and how Azure resources are created.

    ``workspace_id`` is the Log Analytics workspace that receives every component's diagnostic
    settings; ``None`` only while the observability block itself is being built. ``isolated`` turns
    public network access off on data services (enterprise stages with private endpoints).
    """

    resource_group_name: pulumi.Input[str]
    location: str
    naming: Naming
    subscription_id: pulumi.Input[str]
    tenant_id: pulumi.Input[str]
    tags: Mapping[str, str] = field(default_factory=dict)
    workspace_id: pulumi.Input[str] | None = None
    isolated: bool = False

    @property
    def public_network_access(self) -> str:
        """``Disabled`` in isolated stages (reachable through private endpoints only), else ``Enabled``.

        Every data service takes this same ARM value, so the decision is made here once.
        """
        return "Disabled" if self.isolated else "Enabled"

    def with_workspace(self, workspace_id: pulumi.Input[str]) -> AzureContext:
        """The same context, sending diagnostics to ``workspace_id``."""
        return replace(self, workspace_id=workspace_id)
