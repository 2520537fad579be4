"""Automated audit: built-in Azure Policy definitions assigned at the stage's resource group.

The components already deploy secure settings; these assignments keep them that way. Azure evaluates
every resource in the group against each definition - also resources changed by hand or by another tool
after ``pulumi up`` - and reports drift in the compliance view. Where a definition allows it and no
resource agentstage creates could ever match, the assignment uses ``Deny``, so the drift cannot happen
at all; everywhere else it audits.

Every entry of :data:`BUILTIN_POLICIES` was read from its definition file in the Azure/azure-policy
repository (``built-in-policies/policyDefinitions/<category>/<file>``, named in ``source``): display
name, GUID, the name of the effect parameter and its allowed values. Built-in definition ids are the
same in every tenant. Definitions whose GUID could not be read from such a file are not in the table.

Deploying needs ``Microsoft.Authorization/policyAssignments/write`` on the resource group (Owner or
Resource Policy Contributor). None of these assignments uses a DeployIfNotExists or Modify effect, so
none needs a managed identity or a location.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi
from pulumi_azure_native import authorization

from components.azure.context import AzureContext
from components.base import Component

Mode = Literal["enforce", "audit-only"]
DEFINITION_PREFIX = "/providers/Microsoft.Authorization/policyDefinitions/"
AUDIT_EFFECTS = ("Audit", "AuditIfNotExists")
_MAX_DISPLAY_NAME = 128  # Azure's limit for an assignment's display name


@dataclass(frozen=True)
class BuiltinPolicy:
    """One built-in definition and how agentstage assigns it.

    ``effects``: the allowed values of its ``effect_parameter`` (from the definition file).
    ``deny``: whether enforce mode denies - ``"always"`` when every resource agentstage creates of
    that type already complies, ``"isolated"`` when that holds only in stages without public network
    access, ``"never"`` when Deny could block agentstage's own deployment or is not offered.
    ``reason``: why, in one sentence. ``remediation``: the non-compliance message, which Azure shows
    in the compliance view and in the error of a denied request - so it says how to comply.
    ``source``: the definition file the entry was read from, under ``built-in-policies/policyDefinitions``.
    """

    display_name: str
    guid: str
    effects: tuple[str, ...]
    deny: Literal["always", "isolated", "never"]
    reason: str
    remediation: str
    source: str
    effect_parameter: str = "effect"

    def __post_init__(self) -> None:
        if self.deny != "never" and "Deny" not in self.effects:
            raise ValueError(
                f"'{self.display_name}' does not allow Deny (allowed: {', '.join(self.effects)})"
            )
        if not any(effect in self.effects for effect in AUDIT_EFFECTS):
            raise ValueError(
                f"'{self.display_name}' has no audit effect (allowed: {', '.join(self.effects)})"
            )

    @property
    def definition_id(self) -> str:
        """The tenant-independent id of the built-in definition."""
        return DEFINITION_PREFIX + self.guid

    @property
    def audit_effect(self) -> str:
        """``Audit``, or ``AuditIfNotExists`` for definitions that check a related resource."""
        return next(effect for effect in AUDIT_EFFECTS if effect in self.effects)

    def effect(self, mode: Mode, isolated: bool) -> str:
        """The effect to assign: Deny only in enforce mode, and only where it cannot break a deployment."""
        denies = self.deny == "always" or (self.deny == "isolated" and isolated)
        return "Deny" if mode == "enforce" and denies else self.audit_effect


_AUDIT_DENY = ("Audit", "Deny", "Disabled")

# key -> definition. Keys name assignments and are what PolicyArgs.exclusions refers to.
BUILTIN_POLICIES: Mapping[str, BuiltinPolicy] = {
    "ai-local-auth": BuiltinPolicy(
        display_name="Azure AI Services resources should have key access disabled (disable local authentication)",
        guid="71ef260a-8f18-47b7-abcb-62d0673d94dc",
        effects=_AUDIT_DENY,
        deny="always",
        reason="The models and search components create their accounts with disableLocalAuth=true.",
        remediation="Set disableLocalAuth to true on the AI Services or Search resource and call it with Entra ID tokens.",
        source="Azure Ai Services/DisableLocalAuth_Audit.json",
    ),
    "ai-network": BuiltinPolicy(
        display_name="Azure AI Services resources should restrict network access",
        guid="037eea7a-bd0a-46c5-9a66-03aea78705d3",
        effects=_AUDIT_DENY,
        deny="never",
        reason="It flags every Search service without IP rules, including ones reachable only by private endpoint.",
        remediation="Disable public network access, or set networkAcls.defaultAction to Deny with explicit rules.",
        source="Azure Ai Services/NetworkAcls_Audit.json",
    ),
    "ai-private-link": BuiltinPolicy(
        display_name="Azure AI Services resources should use Azure Private Link",
        guid="d6759c02-b87f-42b7-892e-71b3f471d782",
        effects=("Audit", "Disabled"),
        deny="never",
        reason="The definition offers no Deny; the private endpoint can only be approved after the account exists.",
        remediation="Connect the AI Services or Search resource to the stage network with an approved private endpoint.",
        source="Azure Ai Services/EnablePrivateEndpoints_Audit.json",
    ),
    "ai-diagnostic-logs": BuiltinPolicy(
        display_name="Diagnostic logs in Azure AI services resources should be enabled",
        guid="1b4d1c4e-934c-4703-944c-27c82c06bebb",
        effects=("AuditIfNotExists", "Disabled"),
        deny="never",
        reason="It checks a diagnostic setting, which is created after the resource it belongs to.",
        remediation="Add a diagnostic setting that sends the resource's logs to the stage's Log Analytics workspace.",
        source="Azure Ai Services/DiagnosticLogs_Audit.json",
    ),
    "cognitive-public-network": BuiltinPolicy(
        display_name="Cognitive Services accounts should disable public network access",
        guid="0725b4dd-7e76-479c-a735-68e7ee23d5ca",
        effects=_AUDIT_DENY,
        deny="isolated",
        reason="Model accounts disable public network access only in isolated stages.",
        remediation="Set publicNetworkAccess to Disabled and reach the account through its private endpoint.",
        source="Cognitive Services/CognitiveServices_DisablePublicNetworkAccess_Audit.json",
    ),
    "keyvault-public-network": BuiltinPolicy(
        display_name="Azure Key Vault should disable public network access",
        guid="405c5871-3e91-4644-8a63-58e19d68ff5b",
        effects=_AUDIT_DENY,
        deny="isolated",
        reason="The secrets vault disables public network access only in isolated stages.",
        remediation="Set publicNetworkAccess to Disabled on the key vault and use its private endpoint.",
        source="Key Vault/AzureKeyVaultPublicNetworkAccess_Audit.json",
    ),
    "keyvault-rbac": BuiltinPolicy(
        display_name="Azure Key Vault should use RBAC permission model",
        guid="12d4fa5e-1f9f-4c21-97a9-b99b3c6611b5",
        effects=_AUDIT_DENY,
        deny="always",
        reason="The secrets component creates vaults with enableRbacAuthorization=true.",
        remediation="Set enableRbacAuthorization to true and grant access with Key Vault data-plane roles.",
        source="Key Vault/Should_Use_RBAC.json",
    ),
    "cosmos-local-auth": BuiltinPolicy(
        display_name="Cosmos DB database accounts should have local authentication methods disabled",
        guid="5450f5bd-9c72-4390-a9c4-a7aba4edfdd2",
        effects=_AUDIT_DENY,
        deny="always",
        reason="The state store creates its Cosmos DB account with disableLocalAuth=true.",
        remediation="Set disableLocalAuth to true on the Cosmos DB account and use Cosmos DB data-plane RBAC.",
        source="Cosmos DB/Cosmos_DisableLocalAuth_AuditDeny.json",
    ),
    "servicebus-local-auth": BuiltinPolicy(
        display_name="Azure Service Bus namespaces should have local authentication methods disabled",
        guid="cfb11c26-f069-4c14-8e36-56c394dae5af",
        effects=_AUDIT_DENY,
        deny="always",
        reason="The messaging component creates its namespace with disableLocalAuth=true.",
        remediation="Set disableLocalAuth to true on the namespace and use the Azure Service Bus Data roles.",
        source="Service Bus/DisableLocalAuth_AuditDeny.json",
    ),
    "storage-shared-key": BuiltinPolicy(
        display_name="Storage accounts should prevent shared key access",
        guid="8c6a50c6-9ffd-4ae7-986f-5fa6111f9a54",
        effects=_AUDIT_DENY,
        deny="always",
        reason="The function storage component creates its account with allowSharedKeyAccess=false.",
        remediation="Set allowSharedKeyAccess to false and authorize with Entra ID (Storage Blob/Queue Data roles).",
        source="Storage/StorageAccountAllowSharedKeyAccess_Audit.json",
    ),
    "storage-secure-transfer": BuiltinPolicy(
        display_name="Secure transfer to storage accounts should be enabled",
        guid="404c3081-a854-4457-ae30-26a93ef643f9",
        effects=_AUDIT_DENY,
        deny="always",
        reason="The function storage component creates its account with supportsHttpsTrafficOnly=true.",
        remediation="Set supportsHttpsTrafficOnly to true on the storage account.",
        source="Storage/Storage_AuditForHTTPSEnabled_Audit.json",
    ),
    "acr-admin-account": BuiltinPolicy(
        display_name="Container registries should have local admin account disabled.",
        guid="dc921057-6b28-4fbe-9b83-f7bec05db6c2",
        effects=_AUDIT_DENY,
        deny="always",
        reason="The registry component creates registries with adminUserEnabled=false; pulls use AcrPull.",
        remediation="Set adminUserEnabled to false and pull with a managed identity granted AcrPull.",
        source="Container Registry/ACR_AdminAccountDisabled_AuditDeny.json",
    ),
    "aks-local-accounts": BuiltinPolicy(
        display_name="Azure Kubernetes Service Clusters should have local authentication methods disabled",
        guid="993c2fcd-2b29-49d2-9eb0-df2c3a730c32",
        effects=_AUDIT_DENY,
        deny="always",
        reason="The kubernetes component creates clusters with disableLocalAccounts=true and managed Entra ID.",
        remediation="Enable managed Entra ID integration with an admin group, then set disableLocalAccounts to true.",
        source="Kubernetes/AKS_DisableLocalAccounts_Deny.json",
    ),
    "function-https": BuiltinPolicy(
        display_name="Function apps should only be accessible over HTTPS",
        guid="6d555dd1-86f2-4f1c-8ed7-5abae7c6cbab",
        effects=("Audit", "Disabled"),
        deny="never",
        reason="The definition offers no Deny; serverless agents set httpsOnly=true.",
        remediation="Set httpsOnly to true on the function app and its slots.",
        source="App Service/AppServiceFunctionApp_AuditHTTP_Audit.json",
    ),
}


@dataclass(frozen=True)
class PolicyArgs:
    """How the stage is audited.

    ``mode`` (default ``enforce``): Deny where :data:`BUILTIN_POLICIES` says it is safe, audit elsewhere;
    ``audit-only`` audits everything (for a first rollout, or a stage adopting existing resources).
    ``exclusions`` (default none): keys of :data:`BUILTIN_POLICIES` not to assign, e.g. a definition
    the platform team already assigns higher up. ``not_scopes`` (default none): resource ids inside
    the group that no assignment evaluates.
    """

    mode: Mode = "enforce"
    exclusions: tuple[str, ...] = ()
    not_scopes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("enforce", "audit-only"):
            raise ValueError(f"mode must be 'enforce' or 'audit-only', got '{self.mode}'")
        unknown = sorted(set(self.exclusions) - set(BUILTIN_POLICIES))
        if unknown:
            raise ValueError(
                f"exclusions name unknown policies: {', '.join(unknown)}; known: {', '.join(sorted(BUILTIN_POLICIES))}"
            )


class PolicyGuard(Component):
    """Built-in policy assignments on the stage's resource group (``agentstage:azure:PolicyGuard``).

    Outputs: ``assignment_ids`` and ``effects``, both by key of :data:`BUILTIN_POLICIES` (effects are
    known before deployment, so a blueprint or a test can read them).
    """

    def __init__(
        self,
        name: str,
        context: AzureContext,
        args: PolicyArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("azure", "PolicyGuard", name, opts)
        naming = context.naming
        scope = pulumi.Output.concat(
            "/subscriptions/", context.subscription_id, "/resourceGroups/", context.resource_group_name
        )
        self.effects: dict[str, str] = {}
        self.assignment_ids: dict[str, pulumi.Output[str]] = {}
        for key, policy in BUILTIN_POLICIES.items():
            if key in args.exclusions:
                continue
            effect = policy.effect(args.mode, context.isolated)
            display_name = f"{naming.prefix}-{naming.environment}: {policy.display_name}"
            assignment = authorization.PolicyAssignment(
                f"{name}-{key}",
                policy_assignment_name=naming.plain("policy_assignment", key),
                scope=scope,
                policy_definition_id=policy.definition_id,
                display_name=display_name[:_MAX_DISPLAY_NAME],
                description=policy.reason,
                enforcement_mode=authorization.EnforcementMode.DEFAULT,
                parameters={policy.effect_parameter: authorization.ParameterValuesValueArgs(value=effect)},
                non_compliance_messages=[authorization.NonComplianceMessageArgs(message=policy.remediation)],
                not_scopes=list(args.not_scopes) or None,
                opts=self.child(),
            )
            self.effects[key] = effect
            self.assignment_ids[key] = assignment.id
        self.register_outputs({"assignment_ids": self.assignment_ids, "effects": self.effects})
