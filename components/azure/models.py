"""Models: an Azure OpenAI account, its content filter, and the model deployments the agents call.

The account has a custom subdomain and local auth off, so the only way in is an Entra ID token for an
identity granted :meth:`Models.grant_inference` — there are no keys to leak or rotate. Every deployment
runs behind the content filter built here, not behind whatever the account's default happens to be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pulumi
from pulumi_azure_native import authorization
from pulumi_azure_native import cognitiveservices as cs

from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics
from components.azure.identity import ManagedIdentity
from components.azure.private_link import PrivateLinkTarget
from components.azure.roles import assign_role
from components.base import Component

HARM_CATEGORIES = ("Hate", "Sexual", "Violence", "Selfharm")
PROTECTED_MATERIAL = ("Protected Material Text", "Protected Material Code")


@dataclass(frozen=True)
class ModelDeploymentArgs:
    """One model deployment: ``capacity`` is in thousands of tokens per minute for the ``sku``.

    ``sku`` (default ``GlobalStandard``): pay-per-token with Azure routing to any region, the widest
    model availability and quota. ``model_format`` (default ``OpenAI``) names the model's publisher.
    """

    name: str
    model: str
    version: str
    capacity: int
    sku: str = "GlobalStandard"
    model_format: str = "OpenAI"

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"deployment '{self.name}': capacity must be at least 1, got {self.capacity}")


@dataclass(frozen=True)
class ContentFilterArgs:
    """The content filter (RAI policy) every deployment runs behind, layered on ``Microsoft.DefaultV2``.

    ``severity_threshold`` (default ``Medium``, as Microsoft's default): the lowest severity of hate,
    sexual, violence and self-harm content that is blocked, in prompts and completions alike; ``Low``
    is strictest. ``block_prompt_attacks`` (default on): Prompt Shields block jailbreaks and indirect
    (document-borne) injection - the attacks an agent with tools is most exposed to.
    ``block_protected_material`` (default on): completions reproducing known text or code are
    blocked. Either switch off still annotates detections; it just stops blocking.
    ``asynchronous`` (default off): stream tokens before the filter has judged them - lower latency,
    but the caller may see content that is later flagged.
    """

    severity_threshold: Literal["Low", "Medium", "High"] = "Medium"
    block_prompt_attacks: bool = True
    block_protected_material: bool = True
    asynchronous: bool = False


@dataclass(frozen=True)
class ModelsArgs:
    """The deployments to create (default none) and the content filter they all use."""

    deployments: tuple[ModelDeploymentArgs, ...] = ()
    content_filter: ContentFilterArgs = field(default_factory=ContentFilterArgs)

    def __post_init__(self) -> None:
        names = [d.name for d in self.deployments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"deployment names must be unique; repeated: {', '.join(duplicates)}")


def _policy(args: ContentFilterArgs) -> cs.RaiPolicyPropertiesArgs:
    """Every filter enabled (detections are always annotated); ``blocking`` decides whether they also block."""
    rules: list[tuple[str, str, bool, str | None]] = [
        (c, s, True, args.severity_threshold) for s in ("Prompt", "Completion") for c in HARM_CATEGORIES
    ]
    rules += [(n, "Prompt", args.block_prompt_attacks, None) for n in ("Jailbreak", "Indirect Attack")]
    rules += [(n, "Completion", args.block_protected_material, None) for n in PROTECTED_MATERIAL]
    return cs.RaiPolicyPropertiesArgs(
        base_policy_name="Microsoft.DefaultV2",
        mode=cs.RaiPolicyMode.ASYNCHRONOUS_FILTER if args.asynchronous else cs.RaiPolicyMode.DEFAULT,
        content_filters=[
            cs.RaiPolicyContentFilterArgs(name=n, source=s, enabled=True, blocking=b, severity_threshold=t)
            for n, s, b, t in rules
        ],
    )


class Models(Component):
    """Azure OpenAI with a content filter and serial model deployments (``agentstage:azure:Models``).

    With ``context.isolated`` public network access is off and the firewall denies by default: the
    account is reached through its private endpoint (``private_link_targets``) only.

    Outputs: ``account_id``, ``account_name``, ``endpoint`` (``https://<subdomain>.openai.azure.com/``,
    derived from the subdomain so it is known offline), ``content_filter_name`` and ``deployment_names``.
    """

    def __init__(
        self, name: str, context: AzureContext, args: ModelsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("azure", "Models", name, opts)
        self._name = name
        self._context = context
        subdomain = context.naming.name("openai", name)
        # `restore` stays unset: it fails unless a soft-deleted account of this name exists. After
        # `pulumi destroy` the account stays soft-deleted for 48 hours and re-creating it fails with
        # FlagMustBeSetForRestore; purge it (`az cognitiveservices account purge`) to re-create sooner.
        account = cs.Account(
            f"{name}-account",
            account_name=subdomain,
            resource_group_name=context.resource_group_name,
            location=context.location,
            kind="OpenAI",
            sku=cs.SkuArgs(name="S0"),
            # A system identity lets the account reach a customer-managed key or other Azure resources
            # without keys; it has no role until one is granted.
            identity=cs.IdentityArgs(type=cs.ResourceIdentityType.SYSTEM_ASSIGNED),
            properties=cs.AccountPropertiesArgs(
                # Entra ID tokens are only accepted on a custom subdomain, never on the regional endpoint.
                custom_sub_domain_name=subdomain,
                disable_local_auth=True,
                public_network_access=context.public_network_access,
                # Isolated: the firewall denies too, so turning public access back on alone opens nothing.
                network_acls=(
                    cs.NetworkRuleSetArgs(default_action=cs.NetworkRuleAction.DENY)
                    if context.isolated
                    else None
                ),
            ),
            tags=dict(context.tags),
            opts=self.child(),
        )
        self.content_filter_name = f"{name}-content-filter"
        policy = cs.RaiPolicy(
            self.content_filter_name,
            account_name=account.name,
            resource_group_name=context.resource_group_name,
            rai_policy_name=self.content_filter_name,
            properties=_policy(args.content_filter),
            tags=dict(context.tags),
            opts=self.child(),
        )
        # Azure rejects concurrent deployment operations on one account, so each deployment waits for
        # the previous one (the first for the policy it names, which the plain name would not wait for).
        previous: pulumi.Resource = policy
        for deployment in args.deployments:
            previous = cs.Deployment(
                f"{name}-{deployment.name}",
                account_name=account.name,
                resource_group_name=context.resource_group_name,
                deployment_name=deployment.name,
                sku=cs.SkuArgs(name=deployment.sku, capacity=deployment.capacity),
                properties=cs.DeploymentPropertiesArgs(
                    model=cs.DeploymentModelArgs(
                        format=deployment.model_format, name=deployment.model, version=deployment.version
                    ),
                    rai_policy_name=self.content_filter_name,
                    # Keep the pinned version until Azure retires it, then upgrade rather than stop serving.
                    version_upgrade_option=cs.DeploymentModelVersionUpgradeOption.ONCE_CURRENT_VERSION_EXPIRED,
                ),
                tags=dict(context.tags),
                opts=self.child(depends_on=[previous]),
            )
        send_diagnostics(f"{name}-account", context=context, resource_id=account.id, parent=self)
        self.account_id: pulumi.Output[str] = account.id
        self.account_name: pulumi.Output[str] = subdomain
        self.endpoint: pulumi.Output[str] = pulumi.Output.concat("https://", subdomain, ".openai.azure.com/")
        self.deployment_names: list[str] = [d.name for d in args.deployments]
        self.private_link_targets: tuple[PrivateLinkTarget, ...] = (
            PrivateLinkTarget(name, account.id, "account", "privatelink.openai.azure.com"),
        )
        self.register_outputs(
            {
                "account_id": self.account_id,
                "account_name": self.account_name,
                "endpoint": self.endpoint,
                "content_filter_name": self.content_filter_name,
                "deployment_names": self.deployment_names,
            }
        )

    def grant_inference(self, identity: ManagedIdentity) -> authorization.RoleAssignment:
        """Let ``identity`` call the models: **Cognitive Services OpenAI User** on this account.

        Allows inference on every deployment of this account; it cannot list keys, change
        deployments or content filters.
        """
        return assign_role(
            f"{self._name}-inference-{identity.label}",
            context=self._context,
            scope=self.account_id,
            role="Cognitive Services OpenAI User",
            identity=identity,
            parent=self,
        )
