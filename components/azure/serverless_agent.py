"""A serverless agent: the agent runtime on an Azure Functions Flex Consumption plan.

What Flex Consumption requires, and where each piece comes from (learn.microsoft.com/azure/azure-functions:
functions-infrastructure-as-code, Flex Consumption pivot; flex-consumption-plan; functions-app-settings
"Flex Consumption plan deprecations"; functions-reference "Connecting to host storage with an identity"):

- plan: ``Microsoft.Web/serverfarms`` with sku tier ``FlexConsumption`` / name ``FC1``, Linux (``reserved``);
  one app per plan.
- app: ``kind: functionapp,linux``; the language, scale and package location live in
  ``functionAppConfig`` (runtime ``python``/``3.11``; ``scaleAndConcurrency``; ``deployment.storage`` of
  type ``blobContainer`` whose value is the container URL, authenticated here as ``UserAssignedIdentity``).
  The container and all app settings must exist when the app is created.
- app settings that Flex rejects or ignores are never set: ``FUNCTIONS_WORKER_RUNTIME``,
  ``FUNCTIONS_EXTENSION_VERSION``, ``WEBSITE_RUN_FROM_PACKAGE``, ``WEBSITE_CONTENTSHARE``,
  ``WEBSITE_CONTENTAZUREFILECONNECTIONSTRING``, ``SCM_DO_BUILD_DURING_DEPLOYMENT``, ``ENABLE_ORYX_BUILD``.
- host storage by identity: ``AzureWebJobsStorage__accountName``, ``__credential=managedidentity`` and
  ``__clientId`` (a user-assigned identity must be named). "Storage Blob Data Owner ... covers the basic
  needs of Functions host storage": blob read/write, leases and creating its containers.
- telemetry without keys: ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD;ClientId=<id>``
  beside the connection string, for Application Insights with local auth disabled.
- code: published with OneDeploy into the deployment container (see ``function_deployment``).
- private networking (functions-networking-options, Flex Consumption pivot): VNet integration through
  ``virtualNetworkSubnetId``, a subnet delegated to ``Microsoft.App/environments``; the app's inbound
  private endpoint is the ``sites`` sub-resource in ``privatelink.azurewebsites.net`` (it also serves the
  ``scm`` host that deployments use).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import web

from agent_runtime.settings_contract import env_for
from components.azure.context import AzureContext
from components.azure.diagnostics import send_diagnostics
from components.azure.function_deployment import publish_package
from components.azure.function_storage import PRIVATE_SERVICES, create_function_storage
from components.azure.identity import ManagedIdentity
from components.azure.network import Network
from components.azure.private_link import PrivateLinkTarget
from components.azure.roles import assign_role
from components.base import Component
from components.packaging import Package, vendoring_needed

INSTANCE_MEMORY_MB = (512, 2048, 4096)
MAX_INSTANCES = 1000
RUNTIME_DEFAULTS: Mapping[str, str] = {"sqlite_path": "/tmp/agentstage/state.db"}
"""Runtime settings this host needs unless the caller sets them: Flex runs the app from its read-only
package mount, so the embedded SQLite store must live on the instance's writable (ephemeral) /tmp."""

SERVICE_BUS_TRIGGERS = ("task_queue", "ingest_queue")
"""Runtime settings naming a queue that runtime/function_app.py consumes through a Service Bus trigger."""

STORAGE_ROLE = "Storage Blob Data Owner"
"""The role Microsoft documents for identity-based host storage (the host creates its own containers and
takes blob leases). Beyond Storage Blob Data Contributor it adds POSIX ACL/ownership actions, which mean
nothing without hierarchical namespace, and container control actions; Contributor is undocumented for
the host, so the documented role is used, scoped to an account that holds only this app's data."""


@dataclass(frozen=True)
class ServerlessAgentArgs:
    """What one serverless agent needs.

    - ``identity``: the user-assigned identity the app runs as (storage, model, vault, telemetry).
    - ``package``: from ``components.packaging.build_package`` (the ``FUNCTIONS`` layout); must be vendored when a real
      engine deploys it.
    - ``runtime_settings``: runtime ``Settings`` field names -> values. Every cloud-required field must be
      present; ``identity_client_id`` is always that of ``identity`` (the one the app runs as); ``sqlite_path``
      defaults to ``/tmp/agentstage/state.db`` (see ``RUNTIME_DEFAULTS``).
    - ``telemetry_connection_string``: the Application Insights connection string.
    - ``instance_memory_mb``: 512, 2048 or 4096; default 2048 (the platform's default; CPU scales with it).
    - ``maximum_instance_count``: scale-out ceiling, 1..1000; default 100 (the platform's default). It is
      also the cost ceiling.
    - ``always_ready``: instances kept warm for the ``http`` group; default 0 (scale to zero, pay
      nothing when idle, accept cold starts).
    - ``zone_redundant``: spread instances over the region's availability zones; default off. When on,
      the platform keeps at least two always-ready instances (billed as such) whatever ``always_ready``
      says, so an idle app is no longer free. Only in regions that support it for Flex Consumption.
    - ``python_version``: the Functions Python runtime; must match the package's; default "3.11".
    - ``network``: the private network; required when the stage is isolated. The app, its storage's blob
      and queue services get private endpoints in it (through ``Network.connect``) before the package is
      published, because publishing goes through them.
    - ``subnet_id``: the subnet the app joins (VNet integration, every outbound call routed through the
      VNet), delegated to ``Microsoft.App/environments``; default the network's ``functions`` subnet.
    """

    identity: ManagedIdentity
    package: Package
    runtime_settings: Mapping[str, pulumi.Input[str]]
    telemetry_connection_string: pulumi.Input[str]
    instance_memory_mb: int = 2048
    maximum_instance_count: int = 100
    always_ready: int = 0
    zone_redundant: bool = False
    python_version: str = "3.11"
    network: Network | None = None
    subnet_id: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        if self.instance_memory_mb not in INSTANCE_MEMORY_MB:
            allowed = ", ".join(map(str, INSTANCE_MEMORY_MB))
            raise ValueError(f"instance_memory_mb must be one of {allowed}; got {self.instance_memory_mb}")
        if not 1 <= self.maximum_instance_count <= MAX_INSTANCES:
            raise ValueError(
                f"maximum_instance_count must be 1..{MAX_INSTANCES}; got {self.maximum_instance_count}"
            )
        if not 0 <= self.always_ready <= self.maximum_instance_count:
            raise ValueError(
                f"always_ready must be 0..maximum_instance_count ({self.maximum_instance_count}); "
                f"got {self.always_ready}"
            )
        if self.package.python_version != self.python_version:
            raise ValueError(
                f"the package was built for Python {self.package.python_version}, "
                f"but python_version is {self.python_version}"
            )


def named_resources(name: str, *, private: bool) -> tuple[tuple[str, str], ...]:
    """(kind, purpose) of each resource the serverless agent ``name`` names with the stack's naming
    (:mod:`components.azure.naming`): its host storage, plan and app, and with ``private`` access the private
    endpoints of the app (``sites``) and of its storage (keys as :meth:`Network.connect` makes them)."""
    named = [("storage", name), ("function_plan", name), ("function_app", name)]
    if private:
        endpoints = (f"{name}-sites", *(f"{name}-storage-{service}" for service in PRIVATE_SERVICES))
        named += [("private_endpoint", endpoint) for endpoint in endpoints]
    return tuple(named)


class ServerlessAgent(Component):
    """The agent runtime on Flex Consumption (``agentstage:azure:ServerlessAgent``).

    Creates a dedicated storage account (host storage + deployment container), the FC1 plan, the
    Function App (user-assigned identity only, HTTPS only, TLS 1.2, FTP and basic publishing off),
    Storage Blob Data Owner for the identity on that account, diagnostics, and publishes the package.

    Isolated stages: the app and its storage refuse public network access; the app joins the VNet
    and it and its storage are connected to the network's private endpoints (``private_link_targets``:
    the site, the storage's blob and queue), so callers (the gateway) reach it privately. Publishing then
    only works from inside the network (see ``function_deployment``).

    Outputs: ``app_name``, ``app_id``, ``default_hostname``, ``url``, ``identity``.
    """

    def __init__(
        self,
        name: str,
        context: AzureContext,
        args: ServerlessAgentArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("azure", "ServerlessAgent", name, opts)
        if not args.package.vendored and vendoring_needed():
            raise ValueError(
                f"serverless agent '{name}': the package {args.package.path.name} has no dependencies; "
                "build it with vendor_dependencies=True for a real deployment"
            )
        if context.isolated and args.network is None:
            raise ValueError(
                f"serverless agent '{name}': an isolated stage needs ServerlessAgentArgs.network - with public "
                "access off, the app and its storage are reached (and the package published) only through "
                "private endpoints"
            )
        subnet_id = args.subnet_id
        if subnet_id is None and args.network is not None:
            subnet_id = args.network.subnet_ids["functions"]
        store = create_function_storage(name, context=context, purpose=name, parent=self)
        grant = assign_role(
            f"{name}-storage-access",
            context=context,
            scope=store.account.id,
            role=STORAGE_ROLE,
            identity=args.identity,
            parent=self,
        )
        plan = web.AppServicePlan(
            f"{name}-plan",
            name=context.naming.name("function_plan", name),
            resource_group_name=context.resource_group_name,
            location=context.location,
            kind="functionapp",
            reserved=True,
            sku=web.SkuDescriptionArgs(tier="FlexConsumption", name="FC1"),
            zone_redundant=args.zone_redundant,
            tags=dict(context.tags),
            opts=self.child(),
        )
        app_name = context.naming.name("function_app", name)
        app = web.WebApp(
            f"{name}-app",
            name=app_name,
            resource_group_name=context.resource_group_name,
            location=context.location,
            kind="functionapp,linux",
            reserved=True,
            server_farm_id=plan.id,
            https_only=True,
            client_affinity_enabled=False,
            public_network_access=context.public_network_access,
            virtual_network_subnet_id=subnet_id,
            # Every outbound call goes through the VNet, so private DNS zones and the subnet's rules apply.
            outbound_vnet_routing=(
                web.OutboundVnetRoutingArgs(all_traffic=True) if subnet_id is not None else None
            ),
            identity=web.ManagedServiceIdentityArgs(
                type=web.ManagedServiceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[args.identity.resource_id],
            ),
            key_vault_reference_identity=args.identity.resource_id,
            site_config=_site_config(args, store.account.name),
            function_app_config=_function_app_config(args, store.container_url),
            tags=dict(context.tags),
            # The host reaches its storage at first start: the role and the container must exist by then.
            opts=self.child(depends_on=[grant, store.container]),
        )
        for policy, resource in (("ftp", web.WebAppFtpAllowed), ("scm", web.WebAppScmAllowed)):
            resource(
                f"{name}-{policy}-basic-auth",
                name=app.name,
                resource_group_name=context.resource_group_name,
                allow=False,
                opts=self.child(),
            )
        send_diagnostics(f"{name}-app", context=context, resource_id=app.id, parent=self)
        self.private_link_targets: tuple[PrivateLinkTarget, ...] = (
            PrivateLinkTarget(name, app.id, "sites", "privatelink.azurewebsites.net"),
            *store.private_link_targets,
        )
        publish_after: list[pulumi.Resource] = [app, grant]
        if args.network is not None:
            for target in self.private_link_targets:
                args.network.connect(target)
            # Waiting on the network component waits for every child it has so far: the endpoints just
            # connected and their DNS zone groups, so the deployment host resolves to them.
            publish_after.append(args.network)
        publish_package(
            name,
            package=args.package,
            app_name=app.name,
            resource_group_name=context.resource_group_name,
            parent=self,
            depends_on=publish_after,
            private=context.isolated,
        )

        self.identity = args.identity
        self.app_name: pulumi.Output[str] = app.name
        self.app_id: pulumi.Output[str] = app.id
        self.default_hostname: pulumi.Output[str] = app.default_host_name
        self.url: pulumi.Output[str] = pulumi.Output.concat("https://", app_name, ".azurewebsites.net")
        self.register_outputs(
            {
                "app_name": self.app_name,
                "app_id": self.app_id,
                "default_hostname": self.default_hostname,
                "url": self.url,
                "identity_client_id": args.identity.client_id,
            }
        )


def _site_config(
    args: ServerlessAgentArgs, storage_account_name: pulumi.Input[str]
) -> web.SiteConfigArgsDict:
    """Site settings Flex accepts. A dict, not ``SiteConfigArgs``: that class fills in
    ``netFrameworkVersion: v4.6``, which Flex Consumption rejects in some regions
    (pulumi/pulumi-azure-native#4168)."""
    return {
        "app_settings": [
            {"name": key, "value": value} for key, value in _app_settings(args, storage_account_name).items()
        ],
        "min_tls_version": web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
        "scm_min_tls_version": web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
        "ftps_state": web.FtpsState.DISABLED,
        "http20_enabled": True,
    }


def _app_settings(
    args: ServerlessAgentArgs, storage_account_name: pulumi.Input[str]
) -> dict[str, pulumi.Input[str]]:
    """Host storage by identity, the runtime's environment (checked by its contract), and telemetry."""
    client_id = args.identity.client_id
    return {
        "AzureWebJobsStorage__accountName": storage_account_name,
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": client_id,
        **env_for(
            {
                **RUNTIME_DEFAULTS,
                **args.runtime_settings,
                "identity_client_id": client_id,
                # The runtime's own GenAI spans and token metrics go to the same Application Insights
                # (the exporter reads the host's APPLICATIONINSIGHTS_CONNECTION_STRING below), signed in
                # with the app's identity since local auth is off there.
                "telemetry_exporter": "azure_monitor",
            },
            cloud=True,
        ),
        "APPLICATIONINSIGHTS_CONNECTION_STRING": args.telemetry_connection_string,
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": pulumi.Output.concat(
            "Authorization=AAD;ClientId=", client_id
        ),
        **_service_bus_connection(args.runtime_settings, client_id),
    }


def _service_bus_connection(
    runtime_settings: Mapping[str, pulumi.Input[str]], client_id: pulumi.Input[str]
) -> dict[str, pulumi.Input[str]]:
    """The identity-based ``ServiceBusConnection`` of the Service Bus triggers (runtime/function_app.py).

    Only apps that consume a Service Bus queue get it - tasks (``task_queue``) or document events
    (``ingest_queue``); the triggers themselves are registered only then.
    """
    consumes = any(queue in runtime_settings for queue in SERVICE_BUS_TRIGGERS)
    if runtime_settings.get("bus_backend") != "servicebus" or not consumes:
        return {}
    return {
        "ServiceBusConnection__fullyQualifiedNamespace": runtime_settings["servicebus_namespace"],
        "ServiceBusConnection__credential": "managedidentity",
        "ServiceBusConnection__clientId": client_id,
    }


def _function_app_config(
    args: ServerlessAgentArgs, container_url: pulumi.Input[str]
) -> web.FunctionAppConfigArgs:
    always_ready = (
        [web.FunctionsAlwaysReadyConfigArgs(name="http", instance_count=args.always_ready)]
        if args.always_ready
        else None
    )
    return web.FunctionAppConfigArgs(
        deployment=web.FunctionsDeploymentArgs(
            storage=web.FunctionsDeploymentStorageArgs(
                type=web.FunctionsDeploymentStorageType.BLOB_CONTAINER,
                value=container_url,
                authentication=web.FunctionsDeploymentStorageAuthenticationArgs(
                    type=web.AuthenticationType.USER_ASSIGNED_IDENTITY,
                    user_assigned_identity_resource_id=args.identity.resource_id,
                ),
            )
        ),
        runtime=web.FunctionsRuntimeArgs(name=web.RuntimeName.PYTHON, version=args.python_version),
        scale_and_concurrency=web.FunctionsScaleAndConcurrencyArgs(
            instance_memory_mb=args.instance_memory_mb,
            maximum_instance_count=args.maximum_instance_count,
            always_ready=always_ready,
        ),
    )
