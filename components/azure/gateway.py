"""Gateway: API Management in front of the model endpoints and the agent APIs, with GenAI policies.

Every call passes the same check: an Entra ID token of the tenant, issued to an allowed client
application (the agents' managed identities, a front end). Token limits and metrics are kept per calling
application, read from that validated token - no subscription keys. Model calls then go out with the
gateway's own user-assigned identity (``authentication-managed-identity``); no key exists anywhere.

What each tier can do (learn.microsoft.com/azure/api-management, checked for azure-native 3.29,
REST API 2024-05-01):

- ``llm-token-limit``: Developer, Basic, Basic v2, Standard, Standard v2, Premium - not Consumption.
- ``llm-emit-token-metric``, ``validate-azure-ad-token``, ``authentication-managed-identity``: all tiers.
- backend circuit breaker: not on Consumption; one rule per backend. Pools: up to 30 backends, by
  priority then weight; a lower priority is used only while every higher one's breaker is open.
- protocols + ciphers: Consumption and the v2 tiers don't support changes to the default cipher
  configuration, so only the protocol switches (TLS 1.0/1.1, SSL 3.0) are set.
- outbound VNet integration (``virtualNetworkType: External`` + ``virtualNetworkConfiguration``, a
  dedicated subnet delegated to ``Microsoft.Web/serverFarms``): Standard v2 and Premium v2 only
  (integrate-vnet-outbound). The gateway's endpoint stays public while its calls to backends leave
  through the VNet, resolving private endpoints through the VNet's DNS.

Isolated stages. Models and agents then refuse public traffic, so the gateway must reach them through
the VNet: it needs ``StandardV2`` and the gateway subnet. The gateway itself stays public - it is the
front door, and every call is checked against Entra ID before it goes anywhere. (``publicNetworkAccess:
Disabled`` would also be refused at creation: it needs an approved private endpoint first.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
from pulumi_azure_native import apimanagement as apim

from components.azure.apim_backends import (
    POOL_ID,
    CircuitBreakerArgs,
    ModelBackendArgs,
    create_model_backends,
)
from components.azure.apim_policies import Dimension, TokenLimit
from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics
from components.azure.gateway_policies import CALLER_APP, GatewayPolicies, JwtArgs
from components.azure.identity import ManagedIdentity
from components.base import Component

Sku = Literal["Consumption", "BasicV2", "StandardV2"]
V2_CAPACITY = range(1, 11)
"""Scale units a Basic v2 / Standard v2 instance can have; Consumption takes capacity 0."""

WEAK_PROTOCOLS = tuple(
    f"Microsoft.WindowsAzure.ApiManagement.Gateway.Security.{side}Protocols.{protocol}"
    for side in ("", "Backend.")
    for protocol in ("Tls10", "Tls11", "Ssl30")
)
"""Client- and backend-side protocol switches; ``False`` turns each off, leaving TLS 1.2+."""

AGENT_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PRODUCT_ID = "agents"


@dataclass(frozen=True)
class GatewayArgs:
    """What the gateway fronts and how.

    - ``publisher_name`` / ``publisher_email``: shown in the developer portal and used for notices.
    - ``identity``: the user-assigned identity the gateway calls models with and logs as. The blueprint
      grants it ``models.grant_inference(identity)`` on every Models and
      ``observability.grant_telemetry_publish(identity)``; the gateway creates no role assignments.
    - ``app_insights_id`` / ``app_insights_connection_string``: where request telemetry and token
      metrics go (the logger authenticates with ``identity``, as local auth is off there).
    - ``jwt``: who may call (see :class:`JwtArgs`).
    - ``models``: model backends pooled behind ``/openai``; at least one. All must serve the same
      deployment names, so a retry on another backend finds the deployment it asked for.
    - ``agents``: agent name -> base URL (e.g. the orchestrator Function App), each served under
      ``/agents/<name>/``; default none.
    - ``sku``: ``BasicV2`` (default: the smallest tier with token limits and circuit breakers),
      ``StandardV2``, or ``Consumption`` (pay per call; no token limit, no circuit breaker).
    - ``capacity``: scale units for the v2 tiers, 1-10; default 1. Ignored (0) on Consumption.
    - ``token_limit``: default 10,000 tokens per minute per calling application; ``None`` for no limit
      (required on Consumption, which has no ``llm-token-limit``).
    - ``token_metric_namespace`` / ``token_metric_dimensions``: default namespace ``agentstage``,
      dimensions API, subscription, backend and the calling application (agent) id.
    - ``circuit_breaker``: when a model backend is taken out of the pool (see :class:`CircuitBreakerArgs`).
    - ``subnet_id``: the subnet for outbound VNet integration (``StandardV2`` only; a dedicated subnet
      delegated to ``Microsoft.Web/serverFarms``, e.g. the network's ``gateway`` subnet). Required in
      isolated stages, where models and agents are reachable only through private endpoints.
    """

    publisher_name: str
    publisher_email: str
    identity: ManagedIdentity
    app_insights_id: pulumi.Input[str]
    app_insights_connection_string: pulumi.Input[str]
    jwt: JwtArgs
    models: tuple[ModelBackendArgs, ...]
    agents: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    sku: Sku = "BasicV2"
    capacity: int = 1
    token_limit: TokenLimit | None = field(
        default_factory=lambda: TokenLimit(tokens_per_minute=10_000, counter_key=CALLER_APP)
    )
    token_metric_namespace: str = "agentstage"
    token_metric_dimensions: tuple[Dimension, ...] | None = None
    circuit_breaker: CircuitBreakerArgs = field(default_factory=CircuitBreakerArgs)
    subnet_id: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("the gateway needs at least one model backend in 'models'")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model backend names must be unique, got {names}")
        served = {tuple(sorted(m.models.deployment_names)) for m in self.models}
        if len(served) > 1:
            raise ValueError(
                f"every model backend must serve the same deployments (a retry may land on any), got {sorted(served)}"
            )
        if self.sku == "Consumption" and self.token_limit is not None:
            raise ValueError(
                "token_limit must be None on the Consumption tier: it has no llm-token-limit policy"
            )
        if self.sku != "Consumption" and self.capacity not in V2_CAPACITY:
            raise ValueError(f"capacity must be between 1 and 10 on {self.sku}, got {self.capacity}")
        if self.subnet_id is not None and self.sku != "StandardV2":
            raise ValueError(
                f"subnet_id needs the StandardV2 tier: {self.sku} has no VNet integration "
                "(set agentstage:gateway.sku to StandardV2)"
            )


def gateway_url(context: AzureContext, name: str) -> pulumi.Output[str]:
    """The URL of the gateway ``name`` will have, known before it exists.

    Agents behind the gateway are configured with it while the gateway is configured with theirs;
    deriving it from the name, not the resource, keeps that from becoming a dependency cycle.
    """
    return pulumi.Output.concat("https://", context.naming.name("apim", name), ".azure-api.net")


class Gateway(Component):
    """API Management with model and agent APIs behind Entra ID and a product (``agentstage:azure:Gateway``).

    Outputs: ``url`` (``https://<name>.azure-api.net``, known offline), ``service_id``, ``service_name``,
    ``product_id`` and ``policies`` (API id -> the rendered policy XML, for tests and ``agentstage plan``).
    """

    def __init__(
        self, name: str, context: AzureContext, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("azure", "Gateway", name, opts)
        if context.isolated and args.sku != "StandardV2":
            raise ValueError(
                f"gateway '{name}': in an isolated stage the gateway reaches models and agents through the VNet, "
                f"which {args.sku} cannot join; set agentstage:gateway.sku to StandardV2"
            )
        if context.isolated and args.subnet_id is None:
            raise ValueError(
                f"gateway '{name}': in an isolated stage GatewayArgs.subnet_id is required (the network's "
                "'gateway' subnet): models and agents are reachable only through private endpoints"
            )
        service_name = context.naming.name("apim", name)
        consumption = args.sku == "Consumption"
        service = apim.ApiManagementService(
            name,
            service_name=service_name,
            resource_group_name=context.resource_group_name,
            location=context.location,
            sku=apim.ApiManagementServiceSkuPropertiesArgs(
                name=args.sku, capacity=0 if consumption else args.capacity
            ),
            identity=apim.ApiManagementServiceIdentityArgs(
                type=apim.ApimIdentityType.USER_ASSIGNED,
                user_assigned_identities=args.identity.resource_id.apply(
                    lambda resource_id: {resource_id: apim.UserIdentityPropertiesArgs()}
                ),
            ),
            publisher_name=args.publisher_name,
            publisher_email=args.publisher_email,
            # Public in every stage: the gateway is the front door, and it checks every caller's token.
            public_network_access="Enabled",
            virtual_network_type=apim.VirtualNetworkType.EXTERNAL if args.subnet_id is not None else None,
            virtual_network_configuration=(
                apim.VirtualNetworkConfigurationArgs(subnet_resource_id=args.subnet_id)
                if args.subnet_id is not None
                else None
            ),
            custom_properties=dict.fromkeys(WEAK_PROTOCOLS, "False"),
            tags=dict(context.tags),
            opts=self.child(),
        )
        self._service_name = service_name
        self._context = context
        self._service = service
        pool = create_model_backends(
            name,
            args.models,
            circuit_breaker=None if consumption else args.circuit_breaker,
            service_name=service_name,
            context=context,
            opts=self._opts(),
        )
        policies = GatewayPolicies(
            jwt=args.jwt,
            token_limit=args.token_limit,
            metric_namespace=args.token_metric_namespace,
            metric_dimensions=args.token_metric_dimensions,
            model_pool_id=POOL_ID,
            model_backends=len(args.models),
        )
        named_values = [
            apim.NamedValue(
                f"{name}-{key}",
                named_value_id=key,
                display_name=key,
                value=value,
                service_name=service_name,
                resource_group_name=context.resource_group_name,
                opts=self._opts(),
            )
            for key, value in policies.named_values(args.identity, context.tenant_id).items()
        ]
        apis = {"openai": self._models_api(name, policies.models(), [*named_values, pool])}
        for agent, url in args.agents.items():
            apis[f"agent-{agent}"] = self._agent_api(name, agent, url, policies, named_values)
        product = self._product(name, {api_id: api for api_id, (api, _) in apis.items()})
        self._telemetry(name, args)
        send_diagnostics(name, context=context, resource_id=service.id, parent=self)
        self.url: pulumi.Output[str] = gateway_url(context, name)
        self.service_id: pulumi.Output[str] = service.id
        self.service_name: pulumi.Output[str] = service_name
        self.product_id: pulumi.Output[str] = product.id
        self.policies: dict[str, str] = {api_id: xml for api_id, (_, xml) in apis.items()}
        self.register_outputs(
            {
                "url": self.url,
                "service_id": self.service_id,
                "service_name": self.service_name,
                "product_id": self.product_id,
                "policies": self.policies,
            }
        )

    def _opts(self, *after: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options for a sub-resource of the service: it waits for the service (and ``after``)."""
        return self.child(depends_on=[self._service, *after])

    def _api(
        self,
        name: str,
        api_id: str,
        path: str,
        display_name: str,
        xml: str,
        waits_for: Sequence[pulumi.Resource],
    ) -> apim.Api:
        """An HTTPS-only API and its policy (after the named values it uses).

        No subscription keys: callers are identified by their Entra ID token alone, and token limits and
        metrics are keyed on the calling application taken from it, so no key ever has to be handed out.
        """
        api = apim.Api(
            f"{name}-{api_id}",
            api_id=api_id,
            path=path,
            display_name=display_name,
            protocols=[apim.Protocol.HTTPS],
            subscription_required=False,
            service_name=self._service_name,
            resource_group_name=self._context.resource_group_name,
            opts=self._opts(),
        )
        apim.ApiPolicy(
            f"{name}-{api_id}-policy",
            api_id=api_id,
            policy_id="policy",
            format=apim.PolicyContentFormat.XML,
            value=xml,
            service_name=self._service_name,
            resource_group_name=self._context.resource_group_name,
            opts=self._opts(api, *waits_for),
        )
        return api

    def _operation(
        self, name: str, api: apim.Api, api_id: str, operation_id: str, method: str, url: str
    ) -> None:
        parameters = [part[1:-1] for part in url.split("/") if part.startswith("{")]
        apim.ApiOperation(
            f"{name}-{api_id}-{operation_id}",
            api_id=api_id,
            operation_id=operation_id,
            display_name=f"{method} {url}",
            method=method,
            url_template=url,
            template_parameters=[
                apim.ParameterContractArgs(name=p, type="string", required=True) for p in parameters
            ],
            service_name=self._service_name,
            resource_group_name=self._context.resource_group_name,
            opts=self._opts(api),
        )

    def _models_api(self, name: str, xml: str, waits_for: Sequence[pulumi.Resource]) -> tuple[apim.Api, str]:
        """``/openai``, the Azure OpenAI data-plane shape: only chat completions and embeddings are exposed."""
        api = self._api(name, "openai", "openai", "Models (Azure OpenAI compatible)", xml, waits_for)
        for operation_id, suffix in (("chat-completions", "chat/completions"), ("embeddings", "embeddings")):
            self._operation(
                name, api, "openai", operation_id, "POST", f"/deployments/{{deployment-id}}/{suffix}"
            )
        return api, xml

    def _agent_api(
        self,
        name: str,
        agent: str,
        url: pulumi.Input[str],
        policies: GatewayPolicies,
        waits_for: Sequence[pulumi.Resource],
    ) -> tuple[apim.Api, str]:
        """``/agents/<agent>/*`` forwarded to the agent's backend, every method but HEAD/OPTIONS."""
        api_id = f"agent-{agent}"
        backend = apim.Backend(
            f"{name}-{api_id}-backend",
            backend_id=api_id,
            url=url,
            protocol=apim.BackendProtocol.HTTP,
            tls=apim.BackendTlsPropertiesArgs(
                validate_certificate_chain=True, validate_certificate_name=True
            ),
            service_name=self._service_name,
            resource_group_name=self._context.resource_group_name,
            opts=self._opts(),
        )
        xml = policies.agent(api_id)
        api = self._api(name, api_id, f"agents/{agent}", f"Agent: {agent}", xml, [*waits_for, backend])
        for method in AGENT_METHODS:
            self._operation(name, api, api_id, method.lower(), method, "/*")
        return api, xml

    def _product(self, name: str, apis: Mapping[str, apim.Api]) -> apim.Product:
        """One product grouping the APIs (for the developer portal and analytics); no subscription keys."""
        product = apim.Product(
            f"{name}-product",
            product_id=PRODUCT_ID,
            display_name="Agents",
            description="Agent and model APIs; token limits and metrics are kept per calling application.",
            subscription_required=False,
            state=apim.ProductState.PUBLISHED,
            service_name=self._service_name,
            resource_group_name=self._context.resource_group_name,
            opts=self._opts(),
        )
        for api_id, api in apis.items():
            apim.ProductApiLink(
                f"{name}-{api_id}-link",
                api_link_id=f"{PRODUCT_ID}-{api_id}",
                product_id=PRODUCT_ID,
                api_id=api.id,
                service_name=self._service_name,
                resource_group_name=self._context.resource_group_name,
                opts=self._opts(product, api),
            )
        return product

    def _telemetry(self, name: str, args: GatewayArgs) -> None:
        """An Application Insights logger signed in as the gateway identity, and the service-wide diagnostic.

        Identity-based (``identityClientId``) rather than instrumentation-key ingestion: Application
        Insights has local auth off, so only an Entra ID token is accepted. ``metrics`` must be on for
        ``llm-emit-token-metric`` to publish; sampling is 100% so token accounting is complete.
        """
        logger = apim.Logger(
            f"{name}-logger",
            logger_id="app-insights",
            logger_type=apim.LoggerType.APPLICATION_INSIGHTS,
            resource_id=args.app_insights_id,
            credentials={
                "connectionString": args.app_insights_connection_string,
                "identityClientId": args.identity.client_id,
            },
            service_name=self._service_name,
            resource_group_name=self._context.resource_group_name,
            opts=self._opts(),
        )
        apim.Diagnostic(
            f"{name}-app-insights",
            diagnostic_id="applicationinsights",
            logger_id=logger.id,
            metrics=True,
            always_log=apim.AlwaysLog.ALL_ERRORS,
            sampling=apim.SamplingSettingsArgs(sampling_type=apim.SamplingType.FIXED, percentage=100),
            http_correlation_protocol=apim.HttpCorrelationProtocol.W3_C,
            verbosity=apim.Verbosity.INFORMATION,
            service_name=self._service_name,
            resource_group_name=self._context.resource_group_name,
            opts=self._opts(logger),
        )
