"""Azure pricers: each reads a resource's own settings (SKU, capacity, instances) and the agents' usage.

Meters and SKUs are looked up in ``cost/prices/azure.yaml``. What a resource of a type here costs idle
is its ``fixed`` lines; what traffic adds is its ``usage`` lines (only with a usage profile).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from core.graph import Resource
from core.workloads import settings
from cost.estimate import Outcome, Pricer, Pricing
from cost.model import (
    DAYS_PER_MONTH,
    HOURS_PER_MONTH,
    SECONDS_PER_MONTH,
    CostLine,
    FreeResource,
    UnpricedResource,
)
from cost.prices import Price

FLEX_PLAN = "FC1"
ZONE_REDUNDANT_MINIMUM = 2
TASK_QUEUE_SETTING = "AGENTSTAGE_TASK_QUEUE"
"""The runtime setting that gives a Function App its task trigger (agent_runtime.settings ``task_queue``)."""
AGENT_QUEUES_SETTING = "AGENTSTAGE_AGENT_QUEUES"
"""The runtime setting of an app that delegates (the orchestrator's), which gets the sweep's timer
(agent_runtime.hosting.swept_queues)."""
SWEEPS_PER_MONTH = HOURS_PER_MONTH * 60
SWEEP_SECONDS = 0.1
"""How long a sweep is busy: one indexed query of the task store on a warm instance; it usually sends nothing."""
INCLUDED_BUS_OPERATIONS = 13_000_000
"""Service Bus Standard includes 13M operations a month in its base charge."""
FREE_LOG_RETENTION_DAYS = 31
VECTOR_BYTES_PER_DIMENSION = 4
AGENT_POOL = "azure-native:containerservice:AgentPool"
PROVISIONED_MODEL_SKUS = ("ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged")


def _sku(resource: Resource, path: str = "sku.name") -> str:
    return str(resource.get(path) or "")


def _number(value: Any, default: float = 0) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _usage_free(resource: Resource, billed_by: str) -> FreeResource:
    """A resource that costs nothing idle; ``billed_by`` says what traffic it bills for."""
    return FreeResource(resource.name, resource.type, f"no fixed cost: billed per {billed_by}")


def _function_app(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Flex Consumption: always-ready instances cost a baseline every second; requests cost per GB-second."""
    plan = pricing.graph.by_mock_id(str(resource.inputs.get("serverFarmId")))
    if plan is None or _sku(plan) != FLEX_PLAN:
        yield FreeResource(resource.name, resource.type, "billed on its App Service plan")
        return
    scale = resource.get("functionAppConfig.scaleAndConcurrency") or {}
    memory_gb = _number(scale.get("instanceMemoryMB"), 2048) / 1024
    ready, basis = _always_ready(resource, scale, zone_redundant=plan.inputs.get("zoneRedundant") is True)
    if ready:
        yield pricing.line(
            resource,
            "fixed",
            "functions.flex.always-ready-baseline",
            FLEX_PLAN,
            ready * memory_gb * SECONDS_PER_MONTH,
            f"{basis} x {memory_gb:g} GB x {HOURS_PER_MONTH} h",
        )
    swept = _has_sweep(resource)
    if swept:
        yield from _sweeps(resource, pricing, memory_gb)
    agents = pricing.agents_of(resource)
    requests = pricing.monthly(agents=agents)
    if pricing.usage is None or not requests:
        if not ready and not swept:
            yield _usage_free(resource, "execution and GB-second (no always-ready instances)")
        return
    busy = sum(
        usage.value("requests_per_day") * DAYS_PER_MONTH * usage.value("seconds_per_request")
        for agent, usage in pricing.all_agents()
        if agent["name"] in {a["name"] for a in agents}
    )
    yield pricing.line(
        resource, "usage", "functions.flex.executions", FLEX_PLAN, requests / 1e6, f"{requests:,.0f} requests"
    )
    yield pricing.line(
        resource,
        "usage",
        "functions.flex.on-demand-execution-time",
        FLEX_PLAN,
        busy * memory_gb,
        f"{busy:,.0f} busy seconds x {memory_gb:g} GB",
    )


def _sweeps(resource: Resource, pricing: Pricing, memory_gb: float) -> Iterator[Outcome]:
    """The task queue's sweep runs every minute, traffic or not: its executions and their GB-seconds, all at
    the on-demand rate (an upper bound where its group is always ready: those bill at a lower rate)."""
    yield pricing.line(
        resource,
        "fixed",
        "functions.flex.executions",
        FLEX_PLAN,
        SWEEPS_PER_MONTH / 1e6,
        f"{SWEEPS_PER_MONTH:,} sweeps of the task queue (timer, every minute)",
    )
    busy = SWEEPS_PER_MONTH * SWEEP_SECONDS
    yield pricing.line(
        resource,
        "fixed",
        "functions.flex.on-demand-execution-time",
        FLEX_PLAN,
        busy * memory_gb,
        f"{busy:,.0f} busy seconds of sweeps ({SWEEP_SECONDS:g} s each) x {memory_gb:g} GB",
    )


def _always_ready(resource: Resource, scale: dict[str, Any], *, zone_redundant: bool) -> tuple[float, str]:
    """Instances kept allocated, per scaling group: HTTP functions scale as one group, the task trigger and
    the sweep's timer each as their own; a zone-redundant plan keeps at least two in every group, billed as
    always ready."""
    groups = ["http"]
    groups += ["function:run_task"] if _has_task_trigger(resource) else []
    groups += ["function:sweep_tasks"] if _has_sweep(resource) else []
    configured = {
        str(entry.get("name")): _number(entry.get("instanceCount"))
        for entry in scale.get("alwaysReady") or []
    }
    counts = {group: configured.get(group, 0) for group in groups}
    if zone_redundant:
        counts = {group: max(count, ZONE_REDUNDANT_MINIMUM) for group, count in counts.items()}
    shown = " + ".join(f"{count:g} {group}" for group, count in counts.items() if count)
    return sum(counts.values()), f"always ready {shown}" + (
        " (zone-redundant minimum 2 per group)" if zone_redundant else ""
    )


def _has_task_trigger(resource: Resource) -> bool:
    """The runtime's Function App host adds a Service Bus trigger when the app has a task queue."""
    return any(s.name == TASK_QUEUE_SETTING and s.value for s in settings(resource))


def _has_sweep(resource: Resource) -> bool:
    """The host adds the sweep's timer when the app has a task queue and delegates to other queues."""
    delegates = any(
        s.name == AGENT_QUEUES_SETTING and s.value not in (None, "", "{}") for s in settings(resource)
    )
    return delegates and _has_task_trigger(resource)


def _app_service_plan(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    if _sku(resource) == FLEX_PLAN:
        yield FreeResource(resource.name, resource.type, "Flex Consumption bills its apps, not the plan")
        return
    capacity = _number(resource.get("sku.capacity"), 1)
    yield pricing.all_month(resource, "appservice.plan", _sku(resource), capacity, f"{capacity:g} instances")


def _api_management(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    sku = _sku(resource)
    if sku == "Consumption":
        calls = pricing.monthly()
        if pricing.usage is None:
            yield _usage_free(resource, "million calls")
        else:
            yield pricing.line(
                resource, "usage", "apim.calls", sku, max(calls - 1e6, 0) / 1e6, f"{calls:,.0f} calls"
            )
        return
    units = _number(resource.get("sku.capacity"), 1)
    yield pricing.line(resource, "fixed", "apim.unit", sku, units, f"{units:g} units")


def _search(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    replicas = _number(resource.inputs.get("replicaCount"), 1)
    partitions = _number(resource.inputs.get("partitionCount"), 1)
    units = replicas * partitions
    yield pricing.all_month(
        resource, "search.unit", _sku(resource), units, f"{replicas:g} replicas x {partitions:g} partitions"
    )


def _service_bus(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    sku = _sku(resource)
    if sku == "Premium":
        units = _number(resource.get("sku.capacity"), 1)
        yield pricing.all_month(resource, "servicebus.messaging-unit", sku, units, f"{units:g} MU")
        return
    yield pricing.all_month(resource, "servicebus.base", sku)
    if pricing.usage is not None:
        operations = pricing.monthly("messages_per_request")
        beyond = max(operations - INCLUDED_BUS_OPERATIONS, 0)
        yield pricing.line(
            resource,
            "usage",
            "servicebus.operations",
            sku,
            beyond / 1e6,
            f"{operations:,.0f} operations, 13M included",
        )


def _serverless(resource: Resource) -> bool:
    return any(c.get("name") == "EnableServerless" for c in resource.inputs.get("capabilities") or [])


def _cosmos_account(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Serverless: request units and storage, both usage. Provisioned: throughput is on its containers."""
    if not _serverless(resource):
        yield FreeResource(
            resource.name, resource.type, "provisioned throughput bills on its databases and containers"
        )
        return
    if pricing.usage is None:
        yield _usage_free(resource, "million request units and GB stored (serverless)")
        return
    units = pricing.monthly("state_request_units_per_request")
    yield pricing.line(
        resource, "usage", "cosmos.serverless.request-units", "serverless", units / 1e6, f"{units:,.0f} RU"
    )
    dimensions = pricing.config.memory.dimensions if pricing.config else 1536
    vector_gb = pricing.usage.storage.vectors * dimensions * VECTOR_BYTES_PER_DIMENSION / 1e9
    stored = pricing.usage.storage.state_gb + vector_gb
    yield pricing.line(
        resource,
        "usage",
        "cosmos.storage",
        "serverless",
        stored,
        f"{pricing.usage.storage.state_gb:g} GB state + {vector_gb:.2f} GB of {pricing.usage.storage.vectors:,.0f} "
        f"vectors x {dimensions} dims",
    )


def _cosmos_throughput(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """A database or container with its own throughput; without one it shares the account's (serverless)."""
    options = resource.inputs.get("options") or {}
    maximum = _number((options.get("autoscaleSettings") or {}).get("maxThroughput"))
    manual = _number(options.get("throughput"))
    if maximum:
        yield pricing.all_month(
            resource,
            "cosmos.autoscale.throughput",
            "autoscale",
            maximum / 100,
            f"{maximum:,.0f} RU/s maximum",
        )
    elif manual:
        yield pricing.all_month(
            resource, "cosmos.provisioned.throughput", "provisioned", manual / 100, f"{manual:,.0f} RU/s"
        )
    else:
        yield FreeResource(resource.name, resource.type, "no throughput of its own: billed on the account")


def _key_vault(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    if pricing.usage is None:
        yield _usage_free(resource, "10,000 operations")
        return
    operations = pricing.monthly("vault_operations_per_request")
    yield pricing.line(
        resource,
        "usage",
        "keyvault.operations",
        _sku(resource, "properties.sku.name"),
        operations / 1e4,
        f"{operations:,.0f} operations",
    )


def _workspace(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    sku = _sku(resource)
    if sku != "PerGB2018":
        yield UnpricedResource(
            resource.name, resource.type, f"commitment tier {sku} is not in the price table"
        )
        return
    if pricing.usage is None:
        yield _usage_free(
            resource, "GB ingested (every diagnostic setting and the agents' telemetry land here)"
        )
        return
    daily = pricing.usage.logs.gb_per_day
    yield pricing.line(
        resource,
        "usage",
        "logs.ingestion",
        sku,
        daily * DAYS_PER_MONTH,
        f"{daily:g} GB/day x {DAYS_PER_MONTH:.1f} days",
    )
    retention = _number(resource.inputs.get("retentionInDays"), FREE_LOG_RETENTION_DAYS)
    kept = max(retention - FREE_LOG_RETENTION_DAYS, 0)
    if kept:
        yield pricing.line(
            resource,
            "usage",
            "logs.retention",
            sku,
            daily * kept,
            f"{daily:g} GB/day kept {kept:g} days beyond {FREE_LOG_RETENTION_DAYS}",
        )


_FREQUENCY = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?$")


def _log_alert(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Log search alerts cost by how often they run: every 15 minutes or less often is the cheapest rate."""
    frequency = str(resource.inputs.get("evaluationFrequency") or "")
    match = _FREQUENCY.match(frequency)
    if not match or not (match[1] or match[2]):
        yield UnpricedResource(
            resource.name, resource.type, f"evaluationFrequency {frequency!r} is not PT#H#M"
        )
        return
    minutes = int(match[1] or 0) * 60 + int(match[2] or 0)
    band = "PT15M" if minutes >= 15 else "PT10M" if minutes >= 10 else "PT5M" if minutes >= 5 else "PT1M"
    yield pricing.line(resource, "fixed", "alerts.log-rule", band, 1, f"1 rule every {frequency}")


def _registry(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    yield pricing.line(
        resource, "fixed", "acr.registry", _sku(resource), DAYS_PER_MONTH, f"{DAYS_PER_MONTH:.1f} days"
    )


def _nodes(resource: Resource, pricing: Pricing, pool: dict[str, Any], name: str) -> Iterator[Outcome]:
    """A node pool at its minimum size (what it costs idle): VMs, and OS disks unless they are ephemeral."""
    autoscale = pool.get("enableAutoScaling") is True
    nodes = _idle_nodes(pool)
    size = str(pool.get("vmSize") or "")
    basis = f"pool {name}: {nodes:g} x {size}" + (" (autoscale minimum)" if autoscale else "")
    yield pricing.all_month(resource, "vm.linux", size, nodes, basis)
    if pool.get("osDiskType") != "Ephemeral":
        disk = _number(pool.get("osDiskSizeGB"), 128)
        if disk != 128:
            yield UnpricedResource(
                resource.name, resource.type, f"pool {name}: a {disk:g} GB managed OS disk"
            )
        else:
            yield pricing.line(
                resource, "fixed", "disk.managed-os", "P10", nodes, f"pool {name}: {nodes:g} OS disks"
            )


def _cluster(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """The control plane's tier, the node pools, Defender per node vCore, and the outbound load balancer
    with its public IP that AKS creates for ``outboundType: loadBalancer``."""
    tier = _sku(resource, "sku.tier") or "Free"
    if tier != "Free":
        yield pricing.all_month(resource, "aks.control-plane", tier, 1, f"{tier} tier")
    pools = resource.inputs.get("agentPoolProfiles") or []
    for pool in pools:
        yield from _nodes(resource, pricing, pool, str(pool.get("name")))
    if resource.get("securityProfile.defender.securityMonitoring.enabled") is True:
        pools = pools + [p.inputs for p in pricing.graph.of_type(AGENT_POOL) if _pool_of(p, resource)]
        cores = sum(_idle_nodes(pool) * _vcpus(str(pool.get("vmSize"))) for pool in pools)
        yield pricing.all_month(
            resource, "aks.defender", "standard", cores, f"{cores:g} node vCores (idle pool sizes)"
        )
    if resource.get("networkProfile.outboundType") in (None, "loadBalancer"):
        for meter in ("aks.outbound-load-balancer", "aks.outbound-public-ip"):
            yield pricing.all_month(resource, meter, "Standard")


def _pool_of(pool: Resource, cluster: Resource) -> bool:
    return pool.inputs.get("resourceName") == cluster.inputs.get("resourceName")


def _idle_nodes(pool: dict[str, Any]) -> float:
    return _number(pool.get("minCount") if pool.get("enableAutoScaling") is True else pool.get("count"), 1)


_VCPUS = re.compile(r"^Standard_[A-Z]+?(\d+)")


def _vcpus(size: str) -> float:
    """vCPUs of a VM size from its name (``Standard_D4ds_v5``: 4)."""
    match = _VCPUS.match(size)
    return float(match[1]) if match else 0.0


def _agent_pool(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    yield from _nodes(resource, pricing, resource.inputs, str(resource.inputs.get("agentPoolName")))


def _private_endpoint(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    yield pricing.all_month(resource, "private-endpoint.hour", "standard")


def _private_zone(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    yield pricing.line(resource, "fixed", "private-dns.zone", "standard", 1, "1 zone")


def _storage_account(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    if pricing.usage is None:
        yield _usage_free(resource, "GB stored and operation")
        return
    stored = pricing.usage.storage.blob_gb_per_account
    yield pricing.line(resource, "usage", "storage.blob-capacity", _sku(resource), stored, f"{stored:g} GB")


def _model_deployment(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Provisioned throughput is a fixed commitment; pay-as-you-go deployments bill tokens at the stack's prices."""
    sku = _sku(resource)
    if sku in PROVISIONED_MODEL_SKUS:
        units = _number(resource.get("sku.capacity"), 1)
        yield pricing.all_month(resource, "openai.ptu", sku, units, f"{units:g} PTU")
        return
    if pricing.usage is None:
        yield _usage_free(resource, "million tokens (pay-as-you-go)")
        return
    deployment = str(resource.inputs.get("deploymentName") or resource.name)
    model = next((m for m in pricing.config.models if m.name == deployment), None) if pricing.config else None
    if model is None or model.input_price_per_million is None or model.output_price_per_million is None:
        yield UnpricedResource(
            resource.name,
            resource.type,
            f"set inputPricePerMillion and outputPricePerMillion of model '{deployment}' in {pricing.stack_file}",
        )
        return
    embedding = pricing.config.memory.embedding_deployment if pricing.config else None
    meters = [("input", "input_tokens_per_request", model.input_price_per_million)]
    meters.append(("output", "output_tokens_per_request", model.output_price_per_million))
    if deployment == embedding:
        meters = [("embedding", "embedding_tokens_per_request", model.input_price_per_million)]
    users = [agent for agent, _ in pricing.all_agents() if deployment in (agent.get("model"), embedding)]
    for label, per_request, price in meters:
        tokens = pricing.monthly(per_request, users)
        yield CostLine(
            resource.name,
            resource.type,
            "usage",
            _token_price(model.model, label, price, pricing.stack_file),
            tokens / 1e6,
            f"{tokens:,.0f} {label} tokens",
        )


def _token_price(model: str, label: str, price: float, stack_file: str) -> Price:
    return Price(
        meter=f"openai.tokens.{label}",
        service="Azure OpenAI",
        description=f"{model} {label} tokens",
        sku="GlobalStandard",
        region="global",
        unit="1M tokens",
        price=price,
        currency="USD",
        source=f"{stack_file} (agentstage:models)",
        read="stack file",
    )


def _action_group(resource: Resource, _pricing: Pricing) -> Iterator[Outcome]:
    paid = [kind for kind in ("smsReceivers", "voiceReceivers") if resource.inputs.get(kind)]
    if paid:
        yield UnpricedResource(resource.name, resource.type, f"{', '.join(paid)} bill per notification")
    else:
        yield FreeResource(
            resource.name, resource.type, "email notifications: the first 1,000 a month are free"
        )


PRICERS: dict[str, Pricer] = {
    "azure-native:web:WebApp": _function_app,
    "azure-native:web:AppServicePlan": _app_service_plan,
    "azure-native:apimanagement:ApiManagementService": _api_management,
    "azure-native:search:Service": _search,
    "azure-native:servicebus:Namespace": _service_bus,
    "azure-native:cosmosdb:DatabaseAccount": _cosmos_account,
    "azure-native:cosmosdb:SqlResourceSqlDatabase": _cosmos_throughput,
    "azure-native:cosmosdb:SqlResourceSqlContainer": _cosmos_throughput,
    "azure-native:keyvault:Vault": _key_vault,
    "azure-native:operationalinsights:Workspace": _workspace,
    "azure-native:monitor:ScheduledQueryRule": _log_alert,
    "azure-native:containerregistry:Registry": _registry,
    "azure-native:containerservice:ManagedCluster": _cluster,
    "azure-native:containerservice:AgentPool": _agent_pool,
    "azure-native:network:PrivateEndpoint": _private_endpoint,
    "azure-native:privatedns:PrivateZone": _private_zone,
    "azure-native:storage:StorageAccount": _storage_account,
    "azure-native:cognitiveservices:Deployment": _model_deployment,
    "azure-native:monitor:ActionGroup": _action_group,
}

_APIM_PART = "part of its API Management service, priced by the service's units"
FREE: dict[str, str] = {
    "azure-native:resources:ResourceGroup": "a container for resources",
    "azure-native:authorization:RoleAssignment": "access grants are free",
    "azure-native:cosmosdb:SqlResourceSqlRoleAssignment": "access grants are free",
    "azure-native:managedidentity:UserAssignedIdentity": "managed identities are free",
    "azure-native:managedidentity:FederatedIdentityCredential": "managed identities are free",
    "azure-native:authorization:PolicyAssignment": "Azure Policy on Azure resources is free",
    "azure-native:consumption:Budget": "cost budgets are free",
    "azure-native:monitor:DiagnosticSetting": "free; what it sends is billed by the workspace (logs.gbPerDay)",
    "azure-native:monitor:DataCollectionRule": "free; what it collects is billed by the workspace (logs.gbPerDay)",
    "azure-native:monitor:DataCollectionRuleAssociation": "free; what it collects is billed by the workspace",
    "azure-native:applicationinsights:Component": "workspace-based: its telemetry is billed by the Log Analytics workspace",
    "azure-native:applicationinsights:Workbook": "workbooks are free",
    "azure-native:apimanagement:Api": _APIM_PART,
    "azure-native:apimanagement:ApiOperation": _APIM_PART,
    "azure-native:apimanagement:ApiPolicy": _APIM_PART,
    "azure-native:apimanagement:Backend": _APIM_PART,
    "azure-native:apimanagement:Diagnostic": _APIM_PART,
    "azure-native:apimanagement:Logger": _APIM_PART,
    "azure-native:apimanagement:NamedValue": _APIM_PART,
    "azure-native:apimanagement:Product": _APIM_PART,
    "azure-native:apimanagement:ProductApiLink": _APIM_PART,
    "azure-native:cognitiveservices:Account": "no charge of its own: its deployments bill tokens or PTUs",
    "azure-native:cognitiveservices:RaiPolicy": "content filtering is included with the deployments",
    "azure-native:network:VirtualNetwork": "virtual networks are free",
    "azure-native:network:Subnet": "subnets are free",
    "azure-native:network:NetworkSecurityGroup": "network security groups are free",
    "azure-native:network:PrivateDnsZoneGroup": "records in a private DNS zone, priced with the zone",
    "azure-native:privatedns:VirtualNetworkLink": "resolution links are free",
    "azure-native:servicebus:Queue": "billed on its namespace (base charge and operations)",
    "azure-native:storage:BlobContainer": "billed on its storage account (storage.blobGbPerAccount)",
    "azure-native:eventgrid:SystemTopic": "no charge of its own; the events it delivers are Event Grid "
    "operations: the first 100,000 a month are free, then $0.60 per million (not estimated)",
    "azure-native:eventgrid:SystemTopicEventSubscription": "a part of its system topic (billed per operation)",
    "azure-native:servicebus:NamespaceNetworkRuleSet": "a setting of its namespace",
    "azure-native:storage:BlobServiceProperties": "a setting of its storage account",
    "azure-native:web:WebAppFtpAllowed": "a setting of its app",
    "azure-native:web:WebAppScmAllowed": "a setting of its app",
}
