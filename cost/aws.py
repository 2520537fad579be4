"""AWS pricers: each reads a resource's own settings (memory, warm instances, alarm metrics) and the agents' usage.

Meters and SKUs are looked up in ``cost/prices/aws.yaml`` in the resource's region: its own ``region`` input
(pulumi-aws 7 lets a resource override its provider's), else the stack's AWS region as the plan's ARNs show
it (every resource uses the default provider, configured by ``aws:region``), else ``agentstage:location``.
What a resource costs idle is its ``fixed`` lines; what traffic adds is its ``usage`` lines (only with a
usage profile). Free tiers are the account's and are never deducted (see the price file's header).

How the cloud-neutral usage profile becomes AWS usage (each line's basis repeats its own):

- Lambda: one invocation per request, busy ``secondsPerRequest`` at the function's memory, all at the
  on-demand duration price of its architecture. Requests a warm (provisioned) instance serves bill at the
  lower provisioned duration price instead, so with provisioned concurrency this is an upper bound.
- EventBridge schedules: a scheduled rule's own events are free; the invocations it makes of its target
  function bill as the function's, idle or not (fixed lines on the rule): requests, :data:`SCHEDULED_SECONDS`
  each at the function's memory (the task sweep: one indexed query on a warm instance), and X-Ray traces
  where the function traces (each lone invocation is its second's first: all are sampled). What each sweep
  also costs elsewhere is not counted, under a cent a month a schedule: its indexed DynamoDB query (one
  read unit) and Lambda's three log lines (about 13 MB a month, in the function's log group).
- DynamoDB: ``stateRequestUnitsPerRequest`` is read and write request units together, counted as DynamoDB
  bills them (a strongly consistent read of up to 4 KB is 1 read unit; a write of up to 1 KB is 1 write
  unit, 2 in a transaction). :data:`WRITE_SHARE` of them are write units, from the runtime's request path:
  its budget holds, settlements and conversation appends are (transactional) writes, its reads are a
  history query and a few point reads. The units are spread evenly over the stack's on-demand tables;
  ``storage.stateGb`` lies in the conversations table and the memory vectors in the memories table (as the
  functions' AGENTSTAGE_DYNAMODB_*_TABLE settings name them; over every table when none does).
- Bedrock Guardrails: a text unit is up to 1,000 characters; tokens are converted at
  :data:`CHARS_PER_TOKEN` characters each (English text). Input tokens count when a filter assesses input,
  output tokens when one assesses output. The guardrail assesses the conversation, not the system prompt or
  tool definitions the input tokens also hold (fewer units), but rounds each call up to whole units (more).
- Model tokens: at the stack file's ``inputPricePerMillion`` and ``outputPricePerMillion``, on the function
  that calls the model (Bedrock's on-demand models are no resource of the stack).
- Logs: ``logs.gbPerDay`` is the whole stage's, spread evenly over its log groups; stored at that rate for
  the group's retention, uncompressed (CloudWatch bills archived logs compressed: an upper bound).
- REST API and WAF: the requests of the agents the API's functions run - the orchestrator's; the agents it
  delegates to are reached over the bus, not through the API. The web ACL evaluates its APIs' requests.
- SQS: ``messagesPerRequest`` of each agent, on the task queue of the function that runs the agent.
- S3 and Aurora: ``storage.blobGbPerAccount`` in each bucket; the knowledge index holds those documents
  as text in the runtime's chunks, each with its embedding twice (row and HNSW index). A cluster at
  minimum 0 ACUs is awake after each request of an agent that searches the index, until it has been
  idle its auto-pause delay; its I/O is not priced (the profile cannot say what misses the cache).
- Interface VPC endpoints: every hour in each availability zone; per GB, the model tokens of the agents
  whose functions run in its subnets, through ``bedrock-runtime``, at :data:`CHARS_PER_TOKEN` bytes each.
- EKS (the enterprise stage): the control plane every hour; each node group at its autoscaling minimum (what
  it costs idle; the autoscaler adds nodes with load, which the profile does not size), its instance type's
  on-demand price, and its launch template's root volumes per GB-month. Pods bill nothing of their own.
- AWS Config rules: each evaluation. A periodic rule evaluates every resource of its type in the account at
  its frequency: the plan's resources of that type are a lower bound (the account's others add to it). A
  change-triggered rule evaluates a resource in its scope when it changes, which no profile says.
"""

from __future__ import annotations

import math
import re
from collections import Counter
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
    Kind,
    UnpricedResource,
)
from cost.prices import PRICES_DIR, Price

GLOBAL = "global"
"""The region of prices AWS does not set per region (CloudWatch dashboards, WAF)."""
FUNCTION = "aws:lambda/function:Function"
TABLE = "aws:dynamodb/table:Table"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROUTE = "aws:apigatewayv2/route:Route"
PROVISIONED_CONCURRENCY = "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig"
REST_API = "aws:apigateway/restApi:RestApi"
REST_METHOD = "aws:apigateway/method:Method"
REST_INTEGRATION = "aws:apigateway/integration:Integration"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
EVENT_SOURCE_MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
CLUSTER_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"

DEFAULT_MEMORY_MB = 128
DEFAULT_ARCHITECTURE = "x86_64"
FREE_EPHEMERAL_MB = 512
"""Ephemeral storage a function gets with no charge; more bills per GB-second."""
SCHEDULED_SECONDS = 0.1
"""How long a scheduled invocation of the runtime is busy: the task sweep reads its queue's orphaned tasks
(one indexed query on a warm instance, tens of milliseconds) and usually sends nothing."""
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_RATE_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}
HIGH_RESOLUTION_BELOW_SECONDS = 60
"""An alarm on a period shorter than a minute (10 or 30 s) is a high-resolution alarm."""
WRITE_SHARE = 0.75
"""The share of a request's DynamoDB request units that are write units (see the module's docstring)."""
CHARS_PER_TOKEN = 4
TEXT_UNIT_CHARS = 1000
"""A Bedrock Guardrails text unit: up to 1,000 characters."""
XRAY_RESERVOIR_PER_SECOND = 1
XRAY_RATE = 0.05
"""X-Ray's default sampling rule: the first request each second, and 5% of the others."""
ROUTE_METRICS = ("Count", "4xx", "5xx", "Latency", "IntegrationLatency", "DataProcessed")
"""What an HTTP API's detailed metrics publish per route."""
VECTOR_BYTES_PER_DIMENSION = 4
DEFAULT_DIMENSIONS = 1024
TABLE_ROLES = {
    "AGENTSTAGE_DYNAMODB_CONVERSATIONS_TABLE": "conversations",
    "AGENTSTAGE_DYNAMODB_MEMORIES_TABLE": "memories",
}
"""The runtime settings that name the table holding conversations (``storage.stateGb``) and memories."""
REST_METHOD_METRICS = ("Count", "4XXError", "5XXError", "Latency", "IntegrationLatency")
REST_CACHE_METRICS = ("CacheHitCount", "CacheMissCount")
"""What a REST API's detailed metrics publish per method (the cache's only where the stage caches)."""
PAID_RULE_GROUPS = frozenset(
    {"AWSManagedRulesBotControlRuleSet", "AWSManagedRulesATPRuleSet", "AWSManagedRulesACFPRuleSet"}
)
"""AWS managed rule groups that bill a subscription and request fees on top of a rule's price."""
DEFAULT_INSPECTION = "KB_16"
"""The body inspection limit a web ACL's base request price covers (API Gateway, CloudFront, Cognito...)."""
ENGINE = "aurora-postgresql"
SERVERLESS_CLASS = "db.serverless"
STANDARD_STORAGE = "aurora"
"""Aurora Standard's ``storageType`` (I/O billed per request); ``aurora-iopt1`` is I/O-Optimized."""
DEFAULT_AUTO_PAUSE_SECONDS = 300
"""How long an Aurora Serverless v2 instance at minimum 0 ACUs stays idle before it pauses, by default."""
AWAKE_ACUS = 0.5
"""The least an awake Aurora Serverless v2 instance runs at: Aurora's smallest capacity above 0."""
DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS = 400, 60
"""The runtime's knowledge chunks (its settings ``knowledge_chunk_tokens``, ``knowledge_overlap_tokens``)."""
INDEX_COPIES = 2
"""pgvector keeps each chunk's embedding twice: in the chunk's row and in the HNSW index."""
KNOWLEDGE_TOOL = "knowledge_search"
_MODEL_TOKENS = ("input_tokens_per_request", "output_tokens_per_request", "embedding_tokens_per_request")
TASK_QUEUE_SETTING = "AGENTSTAGE_TASK_QUEUE"
KNOWLEDGE_BACKEND_SETTING = "AGENTSTAGE_KNOWLEDGE_BACKEND"
CHUNK_TOKENS_SETTING = "AGENTSTAGE_KNOWLEDGE_CHUNK_TOKENS"
OVERLAP_TOKENS_SETTING = "AGENTSTAGE_KNOWLEDGE_OVERLAP_TOKENS"
EMBEDDING_SETTING = "AGENTSTAGE_EMBEDDING_MODEL"
DIMENSIONS_SETTING = "AGENTSTAGE_EMBEDDING_DIMENSIONS"
GUARDRAIL_SETTING = "AGENTSTAGE_BEDROCK_GUARDRAIL_ID"
DEFAULT_NODE_INSTANCE_TYPE = "t3.medium"
"""What a managed node group runs when neither it nor its launch template names an instance type."""
LINUX_AMI_PREFIXES = ("AL2_", "AL2023_", "BOTTLEROCKET_")
"""Managed node group AMI types that bill the Linux on-demand price (Windows ones add a license)."""
GP3_FREE_IOPS, GP3_FREE_THROUGHPUT = 3000, 125
"""What a gp3 volume's GB-month price includes; more IOPS or MB/s bill apart (not in the price table)."""
CONFIG_RUNS_PER_MONTH = {
    "One_Hour": HOURS_PER_MONTH,
    "Three_Hours": HOURS_PER_MONTH / 3,
    "Six_Hours": HOURS_PER_MONTH / 6,
    "Twelve_Hours": HOURS_PER_MONTH / 12,
    "TwentyFour_Hours": HOURS_PER_MONTH / 24,
}
"""How often a periodic AWS Config rule runs a month, by its maximum execution frequency (AWS's default: 24 h)."""
CONFIG_RULE_TYPES = {
    "LAMBDA_INSIDE_VPC": ("aws:lambda/function:Function",),
    "EKS_ENDPOINT_NO_PUBLIC_ACCESS": ("aws:eks/cluster:Cluster",),
    "EKS_SECRETS_ENCRYPTED": ("aws:eks/cluster:Cluster",),
    "ECR_PRIVATE_IMAGE_SCANNING_ENABLED": ("aws:ecr/repository:Repository",),
    "ECR_PRIVATE_TAG_IMMUTABILITY_ENABLED": ("aws:ecr/repository:Repository",),
    "RDS_INSTANCE_PUBLIC_ACCESS_CHECK": (CLUSTER_INSTANCE, "aws:rds/instance:Instance"),
    "RDS_STORAGE_ENCRYPTED": (CLUSTER_INSTANCE, "aws:rds/instance:Instance"),
    "RDS_CLUSTER_ENCRYPTED_AT_REST": ("aws:rds/cluster:Cluster",),
    "S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED": ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"),
    "API_GW_ASSOCIATED_WITH_WAF": ("aws:apigateway/stage:Stage",),
    "VPC_FLOW_LOGS_ENABLED": ("aws:ec2/vpc:Vpc",),
    "CLOUDWATCH_LOG_GROUP_ENCRYPTED": (LOG_GROUP,),
}
"""The plan's resource types an AWS managed Config rule evaluates, by its source identifier (AWS Config's
resource type, e.g. AWS::RDS::DBInstance, in pulumi-aws terms: Aurora's cluster instances are DB instances)."""
_REST_STAGE_ARN = re.compile(r"/restapis/([^/]+)/stages/")
_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:([a-z]{2}(?:-[a-z]+)+-\d+):")


def _number(value: Any, default: float = 0) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _region(resource: Resource, pricing: Pricing) -> str:
    """The resource's own region, else the stack's as its ARNs show it, else the stack's location."""
    own = resource.inputs.get("region")
    if isinstance(own, str) and own:
        return own.lower()
    regions = Counter(
        match[1]
        for r in pricing.graph.cloud_resources()
        if r.type.startswith("aws:") and (match := _ARN_REGION.match(str(r.mock_id or "")))
    )
    if regions:
        return regions.most_common(1)[0][0]
    return pricing.region(resource) or "?"


def _line(
    resource: Resource,
    pricing: Pricing,
    kind: Kind,
    meter: str,
    sku: str,
    quantity: float,
    basis: str,
    *,
    region: str | None = None,
) -> CostLine | UnpricedResource:
    """``quantity`` units of ``meter`` at ``sku`` in the resource's region (or ``region``), or why not."""
    where = region or _region(resource, pricing)
    price = pricing.prices.find(meter, sku, where)
    if price is None:
        known = pricing.prices.skus(meter, where)
        offer = f" (priced there: {', '.join(known)})" if known else ""
        return UnpricedResource(
            resource.name,
            resource.type,
            f"no price for {meter} sku {sku} in {where}{offer}: add a row to {PRICES_DIR.name}/",
        )
    return CostLine(resource.name, resource.type, kind, price, quantity, basis)


def _usage_free(resource: Resource, billed_by: str) -> FreeResource:
    """A resource that costs nothing idle; ``billed_by`` says what traffic it bills for."""
    return FreeResource(resource.name, resource.type, f"no fixed cost: billed per {billed_by}")


def _memory_gb(function: Resource) -> float:
    return _number(function.inputs.get("memorySize"), DEFAULT_MEMORY_MB) / 1024


def _architecture(function: Resource) -> str:
    architectures = function.inputs.get("architectures") or [DEFAULT_ARCHITECTURE]
    return str(architectures[0])


def _function_named(pricing: Pricing, reference: Any) -> Resource | None:
    """The plan's function a name, an ARN or a qualified ARN refers to."""
    text = str(reference or "")
    name = text.split(":function:", 1)[-1].split(":", 1)[0]
    return next(
        (
            f
            for f in pricing.graph.of_type(FUNCTION)
            if f.inputs.get("name") == name or f.mock_id in (text, reference)
        ),
        None,
    )


def _function(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Requests and GB-seconds of its agents' traffic, X-Ray traces, and the models its agents call."""
    agents = pricing.agents_of(resource)
    requests = pricing.monthly(agents=agents)
    if pricing.usage is None or not requests:
        warm = any(
            _function_named(pricing, config.inputs.get("functionName")) is resource
            for config in pricing.graph.of_type(PROVISIONED_CONCURRENCY)
        )
        yield _usage_free(
            resource,
            "request and GB-second"
            + (" (its warm instances bill on their provisioned concurrency)" if warm else ""),
        )
        return
    memory_gb, architecture = _memory_gb(resource), _architecture(resource)
    names = {agent["name"] for agent in agents}
    busy = sum(
        usage.value("requests_per_day") * DAYS_PER_MONTH * usage.value("seconds_per_request")
        for agent, usage in pricing.all_agents()
        if agent["name"] in names
    )
    yield _line(
        resource, pricing, "usage", "lambda.requests", "standard", requests / 1e6, f"{requests:,.0f} requests"
    )
    yield _line(
        resource,
        pricing,
        "usage",
        "lambda.duration",
        architecture,
        busy * memory_gb,
        f"{busy:,.0f} busy seconds x {memory_gb:g} GB, all at the on-demand rate",
    )
    if resource.get("tracingConfig.mode") == "Active":
        reservoir = min(requests, XRAY_RESERVOIR_PER_SECOND * SECONDS_PER_MONTH)
        traced = reservoir + XRAY_RATE * (requests - reservoir)
        yield _line(
            resource,
            pricing,
            "usage",
            "xray.traces-recorded",
            "standard",
            traced / 1e6,
            f"{traced:,.0f} traces: default sampling (1 request/s + 5% of the rest), traffic spread evenly",
        )
    ephemeral = _number(resource.get("ephemeralStorage.size"), FREE_EPHEMERAL_MB)
    if ephemeral > FREE_EPHEMERAL_MB:
        yield UnpricedResource(
            resource.name,
            resource.type,
            f"{ephemeral - FREE_EPHEMERAL_MB:g} MB of ephemeral storage beyond the free {FREE_EPHEMERAL_MB} MB "
            "bill per GB-second: not in the price table",
        )
    yield from _model_tokens(resource, pricing, agents)


def _model_tokens(resource: Resource, pricing: Pricing, agents: list[dict[str, Any]]) -> Iterator[Outcome]:
    """Tokens of the models the function's agents call, at the stack file's prices (as on Azure's
    pay-as-you-go deployments): input and output of each chat model, and the embedding model's input."""
    values = {setting.name: setting.value for setting in settings(resource)}
    embedding = values.get(EMBEDDING_SETTING) or (
        pricing.config.memory.embedding_deployment if pricing.config else None
    )
    meters: list[tuple[str, str, str, list[dict[str, Any]]]] = []
    for model in dict.fromkeys(str(agent.get("model")) for agent in agents if agent.get("model")):
        users = [agent for agent in agents if agent.get("model") == model]
        meters += [
            (model, "input", "input_tokens_per_request", users),
            (model, "output", "output_tokens_per_request", users),
        ]
    if isinstance(embedding, str) and embedding:
        meters.append((embedding, "embedding", "embedding_tokens_per_request", agents))
    region = _region(resource, pricing)
    for key, label, per_request, users in meters:
        model = _model(pricing, key)
        price = None
        if model is not None:
            price = model.output_price_per_million if label == "output" else model.input_price_per_million
        if model is None or price is None:
            which = "outputPricePerMillion" if label == "output" else "inputPricePerMillion"
            yield UnpricedResource(
                resource.name,
                resource.type,
                f"{label} tokens of model '{key}': set its {which} in {pricing.stack_file} (agentstage:models)",
            )
            continue
        tokens = pricing.monthly(per_request, users)
        yield CostLine(
            resource.name,
            resource.type,
            "usage",
            _token_price(model.model, label, price, pricing.stack_file, region),
            tokens / 1e6,
            f"{tokens:,.0f} {label} tokens",
        )


def _model(pricing: Pricing, key: str) -> Any:
    """The stack file's model entry ``key`` names, by name (``chat``) or Bedrock id."""
    if pricing.config is None:
        return None
    return next((m for m in pricing.config.models if key in (m.name, m.model)), None)


def _token_price(model: str, label: str, price: float, stack_file: str, region: str) -> Price:
    return Price(
        meter=f"bedrock.tokens.{label}",
        service="Amazon Bedrock",
        description=f"{model} {label} tokens",
        sku=model,
        region=region,
        unit="1M tokens",
        price=price,
        currency="USD",
        source=f"{stack_file} (agentstage:models)",
        read="stack file",
    )


def _provisioned_concurrency(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Warm instances bill every second at the function's memory, for its architecture."""
    count = _number(resource.inputs.get("provisionedConcurrentExecutions"))
    function = _function_named(pricing, resource.inputs.get("functionName"))
    if function is None:
        yield UnpricedResource(
            resource.name,
            resource.type,
            f"function {resource.inputs.get('functionName')!r} is not in the plan: its memory is unknown",
        )
        return
    memory_gb = _memory_gb(function)
    yield _line(
        resource,
        pricing,
        "fixed",
        "lambda.provisioned-concurrency",
        _architecture(function),
        count * memory_gb * SECONDS_PER_MONTH,
        f"{count:g} warm instance{'s' if count != 1 else ''} x {memory_gb:g} GB x {HOURS_PER_MONTH} h",
    )


def _http_api(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    protocol = str(resource.inputs.get("protocolType") or "HTTP")
    if pricing.usage is None:
        yield _usage_free(
            resource, "million requests" if protocol == "HTTP" else "message and connection minute"
        )
        return
    if protocol != "HTTP":
        yield UnpricedResource(
            resource.name, resource.type, f"{protocol} APIs bill per message and connection minute"
        )
        return
    requests = pricing.monthly()
    yield _line(
        resource,
        pricing,
        "usage",
        "apigateway.http-requests",
        "HTTP",
        requests / 1e6,
        f"{requests:,.0f} requests",
    )


def _stage(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Detailed (route-level) metrics are CloudWatch custom metrics, billed for the hours they are published:
    only hours with requests."""
    detailed = resource.get("defaultRouteSettings.detailedMetricsEnabled") is True or any(
        isinstance(s, dict) and s.get("detailedMetricsEnabled") is True
        for s in resource.inputs.get("routeSettings") or []
    )
    if not detailed:
        yield FreeResource(resource.name, resource.type, "part of its HTTP API: requests bill on the API")
        return
    if pricing.usage is None:
        yield _usage_free(
            resource, "custom metric-hour (detailed route metrics, published in hours with requests)"
        )
        return
    routes = [
        r for r in pricing.graph.of_type(ROUTE) if r.inputs.get("apiId") == resource.inputs.get("apiId")
    ]
    count = max(len(routes), 1)
    hours = _hours_with_requests(pricing.monthly())
    metrics = count * len(ROUTE_METRICS)
    yield _line(
        resource,
        pricing,
        "usage",
        "cloudwatch.custom-metric",
        "standard",
        metrics * hours,
        f"{count} route{'s' if count != 1 else ''} x {len(ROUTE_METRICS)} detailed metrics, published in "
        f"{hours:.0%} of hours",
    )


def _hours_with_requests(requests: float) -> float:
    """The share of the month's hours with at least one of ``requests`` (arriving at random): the hours in
    which detailed metrics are published, and billed."""
    return 1 - math.exp(-requests / HOURS_PER_MONTH)


def _on_demand_tables(pricing: Pricing) -> list[Resource]:
    return [t for t in pricing.graph.of_type(TABLE) if t.inputs.get("billingMode") == "PAY_PER_REQUEST"]


def _table_roles(pricing: Pricing) -> dict[str, str]:
    """Table name -> what the runtime keeps in it (``conversations``, ``memories``), from its settings."""
    return {
        str(setting.value): TABLE_ROLES[setting.name]
        for resource in pricing.graph.cloud_resources()
        for setting in settings(resource)
        if setting.name in TABLE_ROLES and isinstance(setting.value, str)
    }


def _dimensions(pricing: Pricing) -> int:
    if pricing.config is not None:
        return pricing.config.memory.dimensions
    for function in pricing.graph.of_type(FUNCTION):
        for setting in settings(function):
            if setting.name == DIMENSIONS_SETTING and str(setting.value).isdigit():
                return int(str(setting.value))
    return DEFAULT_DIMENSIONS


def _table(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """On demand: request units and storage, and point-in-time recovery on the table's size, all usage."""
    mode = str(resource.inputs.get("billingMode") or "PROVISIONED")
    table_class = str(resource.inputs.get("tableClass") or "STANDARD")
    if mode != "PAY_PER_REQUEST":
        yield UnpricedResource(
            resource.name,
            resource.type,
            "provisioned capacity (capacity units per hour) is not in the price table",
        )
        return
    pitr = resource.get("pointInTimeRecovery.enabled") is True
    if pricing.usage is None:
        yield _usage_free(
            resource,
            "million request units and GB-month stored (on demand)"
            + (", and GB-month of continuous backups (point-in-time recovery)" if pitr else ""),
        )
        return
    tables = _on_demand_tables(pricing)
    total = pricing.monthly("state_request_units_per_request")
    units = total / len(tables)
    spread = (
        f"1/{len(tables)} of the stack's {total:,.0f} request units"
        if len(tables) > 1
        else (f"the stack's {total:,.0f} request units")
    )
    writes = units * WRITE_SHARE
    yield _line(
        resource,
        pricing,
        "usage",
        "dynamodb.write-request-units",
        mode,
        writes / 1e6,
        f"{spread}, {WRITE_SHARE:.0%} writes",
    )
    yield _line(
        resource,
        pricing,
        "usage",
        "dynamodb.read-request-units",
        mode,
        (units - writes) / 1e6,
        f"{spread}, {1 - WRITE_SHARE:.0%} reads",
    )
    stored = _stored(resource, pricing, tables)
    if stored is None:
        return
    gb, basis = stored
    yield _line(resource, pricing, "usage", "dynamodb.storage", table_class, gb, basis)
    if pitr:
        yield _line(
            resource, pricing, "usage", "dynamodb.pitr", table_class, gb, f"continuous backups of {gb:.2f} GB"
        )


def _stored(resource: Resource, pricing: Pricing, tables: list[Resource]) -> tuple[float, str] | None:
    """The GB this table holds: the profile's state in the conversations table, its vectors in the memories
    table (each over every table when no function names one); ``None`` for a table that holds neither."""
    assert pricing.usage is not None
    roles = _table_roles(pricing)
    dimensions = _dimensions(pricing)
    state = pricing.usage.storage.state_gb
    vectors = pricing.usage.storage.vectors
    vector_gb = vectors * dimensions * VECTOR_BYTES_PER_DIMENSION / 1e9
    parts = [
        ("conversations", state, f"{state:g} GB state"),
        ("memories", vector_gb, f"{vector_gb:.2f} GB of {vectors:,.0f} vectors x {dimensions} dims"),
    ]
    gb, bases = 0.0, []
    for role, amount, basis in parts:
        holders = [t.name for t in tables if roles.get(str(t.inputs.get("name"))) == role] or [
            t.name for t in tables
        ]
        if resource.name in holders:
            gb += amount / len(holders)
            bases.append(basis if len(holders) == 1 else f"1/{len(holders)} of {basis}")
    return (gb, " + ".join(bases)) if bases else None


def _log_group(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Logs ingested and stored for the group's retention: the stage's logs.gbPerDay over its log groups."""
    log_class = str(resource.inputs.get("logGroupClass") or "STANDARD")
    if pricing.usage is None:
        yield _usage_free(resource, "GB ingested and GB-month stored (logs.gbPerDay)")
        return
    groups = len(pricing.graph.of_type(LOG_GROUP))
    total = pricing.usage.logs.gb_per_day
    daily = total / groups
    spread = f"{total:g} GB/day over {groups} log groups: " if groups > 1 else ""
    yield _line(
        resource,
        pricing,
        "usage",
        "cloudwatch.logs.ingestion",
        log_class,
        daily * DAYS_PER_MONTH,
        f"{spread}{daily:g} GB/day x {DAYS_PER_MONTH:.1f} days",
    )
    retention = _number(resource.inputs.get("retentionInDays"))
    kept = retention or 365
    yield _line(
        resource,
        pricing,
        "usage",
        "cloudwatch.logs.storage",
        log_class,
        daily * kept,
        f"{daily:g} GB/day kept {kept:g} days, uncompressed"
        + ("" if retention else " (never expires: after one year, and growing)"),
    )


_NOT_METRIC_ALARMS = {
    "ANOMALY_DETECTION_BAND": "an anomaly detection alarm bills 3 alarm metrics per metric it watches",
    "SELECT ": "a Metrics Insights alarm bills per metric its query analyzes",
}


def _alarm(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Standard or high resolution, per alarm metric: an alarm on metric math bills each metric it reads
    (the expressions themselves are no alarm metrics)."""
    queries = [q for q in resource.inputs.get("metricQueries") or [] if isinstance(q, dict)]
    for query in queries:
        expression = str(query.get("expression") or "")
        for marker, reason in _NOT_METRIC_ALARMS.items():
            if marker in expression.upper():
                yield UnpricedResource(resource.name, resource.type, f"{reason}: not modeled")
                return
    if queries:
        metrics = [q["metric"] for q in queries if isinstance(q.get("metric"), dict)]
        periods = [_number(m.get("period"), 60) for m in metrics]
        count = len(metrics)
        basis = f"metric math over {count} metrics, each an alarm metric"
    else:
        periods = [_number(resource.inputs.get("period"), 60)]
        count = 1
        basis = "1 metric"
    sku = "high-resolution" if min(periods, default=60) < HIGH_RESOLUTION_BELOW_SECONDS else "standard"
    yield _line(resource, pricing, "fixed", "cloudwatch.alarm-metric", sku, count, basis)


def _dashboard(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Every dashboard is priced: the first 3 of an account are free, but that allowance is the account's,
    shared by every stack in it (this pilot's dev and prod already make two), not this stack's."""
    yield _line(
        resource,
        pricing,
        "fixed",
        "cloudwatch.dashboard",
        "standard",
        1,
        "1 dashboard (the account's 3 free ones not counted)",
        region=GLOBAL,
    )


def _kms_key(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    rotation = resource.inputs.get("enableKeyRotation") is True
    yield _line(
        resource,
        pricing,
        "fixed",
        "kms.key",
        "customer-managed",
        1,
        "1 key, first year: each yearly rotation adds a key-month, for the first two"
        if rotation
        else "1 key",
    )


def _secret(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    yield _line(resource, pricing, "fixed", "secretsmanager.secret", "standard", 1, "1 secret")
    if pricing.usage is not None:
        reads = pricing.monthly("vault_operations_per_request")
        yield _line(
            resource,
            pricing,
            "usage",
            "secretsmanager.api-calls",
            "standard",
            reads / 1e4,
            f"{reads:,.0f} reads (vaultOperationsPerRequest)",
        )


_GUARDRAIL_POLICIES = {
    "topicPolicyConfig": "denied topics",
    "sensitiveInformationPolicyConfig": "sensitive information filters",
    "contextualGroundingPolicyConfig": "contextual grounding checks",
}
"""Guardrail policies that bill per text unit at prices not in the table (word filters are free)."""


def _guardrail(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Content filters bill per 1,000 text units they assess: the model calls' input and output."""
    if pricing.usage is None:
        yield _usage_free(resource, "1,000 text units its filters assess (every model call)")
        return
    paid = [name for key, name in _GUARDRAIL_POLICIES.items() if resource.inputs.get(key)]
    if paid:
        yield UnpricedResource(
            resource.name, resource.type, f"{', '.join(paid)} bill per text unit: not in the price table"
        )
    filters = [f for f in resource.get("contentPolicyConfig.filtersConfigs") or [] if isinstance(f, dict)]
    assessed = [
        (label, per_request)
        for label, per_request, strength in (
            ("input", "input_tokens_per_request", "inputStrength"),
            ("output", "output_tokens_per_request", "outputStrength"),
        )
        if any(str(f.get(strength) or "NONE") != "NONE" for f in filters)
    ]
    if not assessed:
        if not paid:
            yield FreeResource(resource.name, resource.type, "no content filters: nothing it assesses bills")
        return
    users = [
        agent
        for r in pricing.graph.cloud_resources()
        if any(s.name == GUARDRAIL_SETTING and s.value for s in settings(r))
        for agent in pricing.agents_of(r)
    ]
    tokens = sum(pricing.monthly(per_request, users) for _, per_request in assessed)
    units = tokens * CHARS_PER_TOKEN / TEXT_UNIT_CHARS
    yield _line(
        resource,
        pricing,
        "usage",
        "bedrock.guardrail.content-filter",
        "text",
        units / 1000,
        f"{tokens:,.0f} {' and '.join(label for label, _ in assessed)} tokens x {CHARS_PER_TOKEN} characters, "
        f"{TEXT_UNIT_CHARS:,} per text unit",
    )


# --- The foundation's front door: API Gateway REST API and WAF --------------------------------------------


_REST_PART = "part of its REST API: requests bill on the API"


def _settings_of(resource: Resource) -> dict[str, Any]:
    return {setting.name: setting.value for setting in settings(resource)}


def _invoked_function(pricing: Pricing, uri: Any) -> Resource | None:
    """The plan's function an API Gateway integration's URI (a Lambda invoke ARN) invokes."""
    function_arn = str(uri or "").removesuffix("/invocations").rsplit("/functions/", 1)[-1]
    return _function_named(pricing, function_arn)


def _api_requests(api: Resource, pricing: Pricing) -> tuple[float, str]:
    """Requests a month through a REST API, and whose: those of the agents its functions run. Agents the
    orchestrator delegates to are reached over the bus, not through the API."""
    backends = {
        function.name: function
        for integration in pricing.graph.of_type(REST_INTEGRATION)
        if integration.inputs.get("restApi") == api.mock_id
        and (function := _invoked_function(pricing, integration.inputs.get("uri"))) is not None
    }
    if not backends:
        return pricing.monthly(), "of every agent (no function of the plan behind the API)"
    agents = [agent for function in backends.values() for agent in pricing.agents_of(function)]
    names = ", ".join(sorted({agent["name"] for agent in agents})) or "no agent"
    return pricing.monthly(agents=agents), f"of {names}"


def _rest_api(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    if pricing.usage is None:
        yield _usage_free(resource, "million requests")
        return
    requests, whose = _api_requests(resource, pricing)
    yield _line(
        resource,
        pricing,
        "usage",
        "apigateway.rest-requests",
        "REST",
        requests / 1e6,
        f"{requests:,.0f} requests {whose}",
    )


def _rest_stage(resource: Resource, _pricing: Pricing) -> Iterator[Outcome]:
    """A stage costs nothing of its own unless it runs a cache cluster. Its X-Ray traces are the traces of
    its requests, which X-Ray bills once per trace: on the functions that record them (active tracing)."""
    if resource.inputs.get("cacheClusterEnabled") is True:
        size = resource.inputs.get("cacheClusterSize") or "0.5"
        yield UnpricedResource(
            resource.name,
            resource.type,
            f"its {size} GB cache cluster bills per hour: not in the price table",
        )
        return
    yield FreeResource(resource.name, resource.type, _REST_PART)


def _method_settings(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Detailed (method-level) metrics are CloudWatch custom metrics, like an HTTP API's route metrics:
    billed for the hours they are published, only hours with requests."""
    configured = resource.inputs.get("settings") or {}
    if not isinstance(configured, dict) or configured.get("metricsEnabled") is not True:
        yield FreeResource(resource.name, resource.type, "settings of its REST API's stage: free")
        return
    if pricing.usage is None:
        yield _usage_free(
            resource, "custom metric-hour (detailed method metrics, published in hours with requests)"
        )
        return
    api_id = resource.inputs.get("restApi")
    methods = [m for m in pricing.graph.of_type(REST_METHOD) if m.inputs.get("restApi") == api_id]
    count = max(len(methods), 1) if resource.inputs.get("methodPath") == "*/*" else 1
    metrics = REST_METHOD_METRICS + (REST_CACHE_METRICS if configured.get("cachingEnabled") is True else ())
    api = next((a for a in pricing.graph.of_type(REST_API) if a.mock_id == api_id), None)
    hours = _hours_with_requests(_api_requests(api, pricing)[0] if api else pricing.monthly())
    yield _line(
        resource,
        pricing,
        "usage",
        "cloudwatch.custom-metric",
        "standard",
        count * len(metrics) * hours,
        f"{count} method{'s' if count != 1 else ''} x {len(metrics)} detailed metrics, published in "
        f"{hours:.0%} of hours",
    )


def _managed_group(rule: dict[str, Any]) -> dict[str, Any] | None:
    statement = rule.get("statement")
    group = statement.get("managedRuleGroupStatement") if isinstance(statement, dict) else None
    return group if isinstance(group, dict) else None


def _protected_requests(acl: Resource, pricing: Pricing) -> tuple[float, str]:
    """Requests a month the web ACL evaluates: those of the REST APIs whose stages it is associated with."""
    apis = {
        api.name: api
        for association in pricing.graph.of_type(WEB_ACL_ASSOCIATION)
        if association.inputs.get("webAclArn") in (acl.arn, acl.mock_id)
        and (stage := _REST_STAGE_ARN.search(str(association.inputs.get("resourceArn") or "")))
        for api in pricing.graph.of_type(REST_API)
        if api.mock_id == stage[1]
    }
    if not apis:
        return pricing.monthly(), "of every agent (no REST API of the plan associated)"
    counted = [_api_requests(api, pricing) for api in apis.values()]
    return sum(requests for requests, _ in counted), " and ".join(whose for _, whose in counted)


def _raised_inspection_limits(acl: Resource) -> list[str]:
    """Body inspection limits above the default 16 KB (``KB_32``...), per associated resource type."""
    bodies = acl.get("associationConfig.requestBodies")
    entries = bodies if isinstance(bodies, list) else [bodies]
    return sorted(
        {
            str(config["defaultSizeInspectionLimit"])
            for entry in entries
            if isinstance(entry, dict)
            for config in entry.values()
            if isinstance(config, dict)
            and config.get("defaultSizeInspectionLimit", DEFAULT_INSPECTION) != DEFAULT_INSPECTION
        }
    )


def _web_acl(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """A web ACL and each of its rules bill by the month - a rule group, managed or not, is one rule - and
    every request it evaluates bills per million: the requests of the REST APIs it protects (requests it
    blocks bill too, so an attack costs more than the profile's traffic). WAF's prices are global."""
    yield _line(resource, pricing, "fixed", "waf.web-acl", "standard", 1, "1 web ACL", region=GLOBAL)
    yield from _rules(resource, pricing)
    if pricing.usage is None:
        return
    requests, whose = _protected_requests(resource, pricing)
    raised = _raised_inspection_limits(resource)
    extra = (
        f"; bodies over 16 KB (inspected up to {', '.join(raised)}) bill extra, not estimated"
        if raised
        else ""
    )
    yield _line(
        resource,
        pricing,
        "usage",
        "waf.requests",
        "standard",
        requests / 1e6,
        f"{requests:,.0f} requests {whose}{extra}",
        region=GLOBAL,
    )


def _rules(acl: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """One rule-month per rule; rule groups that bill fees of their own are named, not priced."""
    rules = acl.inputs.get("rules")
    if rules is None and acl.inputs.get("ruleJson") is None:
        rules = []
    if not isinstance(rules, list):
        yield UnpricedResource(
            acl.name,
            acl.type,
            "rules: not a list the plan knows (unknown until deployment, or given as ruleJson); each rule "
            "bills by the month",
        )
        return
    groups = [group for rule in rules if isinstance(rule, dict) and (group := _managed_group(rule))]
    yield _line(
        acl,
        pricing,
        "fixed",
        "waf.rule",
        "standard",
        len(rules),
        f"{len(rules)} rules, {len(groups)} of them managed rule groups (one rule each)",
        region=GLOBAL,
    )
    for group in groups:
        name, vendor = str(group.get("name")), str(group.get("vendorName") or "AWS")
        if vendor != "AWS" or name in PAID_RULE_GROUPS:
            yield UnpricedResource(
                acl.name,
                acl.type,
                f"managed rule group {vendor}/{name} adds a subscription and request fees: not in the price "
                "table",
            )


# --- The bus: SQS queues and the event source mappings that poll them -------------------------------------


def _queue(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Per million requests (each 64 KB of a payload is one): each agent's bus operations
    (``messagesPerRequest``) land on the task queue of the function that runs the agent."""
    sku = "fifo" if resource.inputs.get("fifoQueue") is True else "standard"
    polled = any(
        mapping.inputs.get("eventSourceArn") in (resource.arn, resource.mock_id)
        for mapping in pricing.graph.of_type(EVENT_SOURCE_MAPPING)
    )
    polling = "; Lambda long-polls it, and its empty receives bill too (not estimated)" if polled else ""
    if pricing.usage is None:
        yield _usage_free(resource, f"million requests{polling}")
        return
    name = resource.inputs.get("name")
    agents = [
        agent
        for function in pricing.graph.of_type(FUNCTION)
        if _settings_of(function).get(TASK_QUEUE_SETTING) == name
        for agent in pricing.agents_of(function)
    ]
    operations = pricing.monthly("messages_per_request", agents)
    whose = (
        ", ".join(sorted({agent["name"] for agent in agents})) or "no agent (no function takes tasks from it)"
    )
    yield _line(
        resource,
        pricing,
        "usage",
        "sqs.requests",
        sku,
        operations / 1e6,
        f"{operations:,.0f} requests: messagesPerRequest of {whose}{polling}",
    )


def _event_source_mapping(resource: Resource, _pricing: Pricing) -> Iterator[Outcome]:
    if resource.inputs.get("provisionedPollerConfig"):
        yield UnpricedResource(
            resource.name,
            resource.type,
            "provisioned mode bills its event pollers by the hour: not in the price table",
        )
        return
    yield FreeResource(
        resource.name,
        resource.type,
        "no charge of its own: Lambda's pollers long-poll its queue, also when it is empty, and their "
        "requests bill on the queue",
    )


def _event_rule(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """A schedule's invocations of its target functions, every month whatever the traffic (see the module
    docstring); its own events are free."""
    expression = str(resource.inputs.get("scheduleExpression") or "")
    if not expression:
        yield FreeResource(
            resource.name, resource.type, "an event pattern's rule: events bill on the bus that receives them"
        )
        return
    rate = _RATE.match(expression)
    if rate is None:
        yield UnpricedResource(
            resource.name, resource.type, f"schedule {expression}: only rate() schedules are estimated"
        )
        return
    period = int(rate[1]) * _RATE_SECONDS[rate[2].rstrip("s")]
    invocations = SECONDS_PER_MONTH / period
    targets = [
        t for t in pricing.graph.of_type(EVENT_TARGET) if t.inputs.get("rule") == resource.inputs.get("name")
    ]
    for target in targets:
        function = _function_named(pricing, target.inputs.get("arn"))
        if function is None:
            yield UnpricedResource(
                resource.name,
                resource.type,
                f"target {target.inputs.get('arn')!r} is no function of the plan: what it bills is unknown",
            )
            continue
        name = function.inputs.get("name")
        memory_gb = _memory_gb(function)
        busy = invocations * SCHEDULED_SECONDS
        yield _line(
            resource,
            pricing,
            "fixed",
            "lambda.requests",
            "standard",
            invocations / 1e6,
            f"{invocations:,.0f} invocations of {name} ({expression})",
        )
        yield _line(
            resource,
            pricing,
            "fixed",
            "lambda.duration",
            _architecture(function),
            busy * memory_gb,
            f"{busy:,.0f} busy seconds ({SCHEDULED_SECONDS:g} s an invocation) x {memory_gb:g} GB",
        )
        if function.get("tracingConfig.mode") == "Active":
            yield _line(
                resource,
                pricing,
                "fixed",
                "xray.traces-recorded",
                "standard",
                invocations / 1e6,
                f"{invocations:,.0f} traces: each invocation is the first of its second (sampled)",
            )


# --- The knowledge source: the documents bucket -------------------------------------------------------------


def _bucket(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Storage of ``storage.blobGbPerAccount`` in each bucket. Requests bill per 1,000 (an upload, and the
    few reads of its ingestion): the usage profile counts no documents, so they are not estimated."""
    if pricing.usage is None:
        yield _usage_free(resource, "GB-month stored and 1,000 requests")
        return
    stored = pricing.usage.storage.blob_gb_per_account
    yield _line(
        resource,
        pricing,
        "usage",
        "s3.storage",
        "STANDARD",
        stored,
        f"{stored:g} GB (storage.blobGbPerAccount), current versions; requests (per 1,000) not estimated",
    )


# --- The private network: VPC endpoints ------------------------------------------------------------------


def _vpc_endpoint(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """An interface endpoint bills every hour in each of its availability zones (one per subnet), idle or
    not, and per GB it carries. Only the model traffic of the functions in its subnets is sizable (prompts
    and completions through ``bedrock-runtime``); other services' API calls carry kilobytes."""
    kind = str(resource.inputs.get("vpcEndpointType") or "Gateway")
    if kind == "Gateway":
        yield FreeResource(
            resource.name, resource.type, "gateway endpoints (S3, DynamoDB) are free: routes in route tables"
        )
        return
    if kind != "Interface":
        yield UnpricedResource(
            resource.name, resource.type, f"{kind} endpoints bill at their own rates: not in the price table"
        )
        return
    subnets = resource.inputs.get("subnetIds")
    if not isinstance(subnets, list) or not subnets:
        yield UnpricedResource(
            resource.name,
            resource.type,
            "subnetIds: unknown, so are its availability zones (it bills per hour in each, one per subnet)",
        )
        return
    zones = len(subnets)
    yield _line(
        resource,
        pricing,
        "fixed",
        "vpc.interface-endpoint",
        "standard",
        zones * HOURS_PER_MONTH,
        f"{zones} AZ{'s' if zones != 1 else ''} (one per subnet) x {HOURS_PER_MONTH} h",
    )
    if pricing.usage is None or not str(resource.inputs.get("serviceName")).endswith(".bedrock-runtime"):
        return
    inside = [
        function
        for function in pricing.graph.of_type(FUNCTION)
        if set(function.get("vpcConfig.subnetIds") or []) & set(subnets)
    ]
    agents = [agent for function in inside for agent in pricing.agents_of(function)]
    tokens = sum(pricing.monthly(per_request, agents) for per_request in _MODEL_TOKENS)
    whose = ", ".join(sorted({agent["name"] for agent in agents})) or "no agent"
    yield _line(
        resource,
        pricing,
        "usage",
        "vpc.interface-endpoint.data",
        "standard",
        tokens * CHARS_PER_TOKEN / 1e9,
        f"{tokens:,.0f} model tokens of {whose} x {CHARS_PER_TOKEN} bytes; JSON framing and embedding "
        "vectors not counted",
    )


# --- The enterprise stage: EKS and AWS Config ------------------------------------------------------------


def _eks_cluster(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """The control plane, every hour whether any pod runs or not. A Kubernetes version past its standard
    support bills the extended-support rate instead (the default ``upgradePolicy.supportType`` EXTENDED
    keeps such a cluster running): upgrade within the 14 months of standard support."""
    version = resource.inputs.get("version")
    yield _line(
        resource,
        pricing,
        "fixed",
        "eks.cluster",
        "standard",
        HOURS_PER_MONTH,
        f"1 cluster x {HOURS_PER_MONTH} h at the standard-support rate"
        + (
            f" (Kubernetes {version}; past its standard support, the extended-support rate)"
            if version
            else ""
        ),
    )


def _node_group(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """The nodes the group keeps at its autoscaling minimum, on demand, and their root volumes."""
    ami = str(resource.inputs.get("amiType") or "AL2023_x86_64_STANDARD")
    if resource.inputs.get("capacityType") == "SPOT":
        yield UnpricedResource(
            resource.name, resource.type, "Spot capacity bills the hour's Spot price: not in the price table"
        )
        return
    if not ami.startswith(LINUX_AMI_PREFIXES):
        yield UnpricedResource(
            resource.name, resource.type, f"amiType {ami}: only Linux instances are in the price table"
        )
        return
    scaling = resource.inputs.get("scalingConfig") or {}
    nodes = _number(scaling.get("minSize"))
    template = _launch_template(resource, pricing)
    types = resource.inputs.get("instanceTypes") or []
    instance_type = str(
        types[0]
        if types
        else (template.inputs.get("instanceType") if template else None) or DEFAULT_NODE_INSTANCE_TYPE
    )
    desired, most = _number(scaling.get("desiredSize")), _number(scaling.get("maxSize"))
    sizes = f"autoscaling minimum; desired {desired:g}, up to {most:g}"
    yield _line(
        resource,
        pricing,
        "fixed",
        "ec2.instance",
        instance_type,
        nodes * HOURS_PER_MONTH,
        f"{nodes:g} x {instance_type} ({sizes}) x {HOURS_PER_MONTH} h",
    )
    yield from _root_volumes(resource, pricing, template, nodes)


def _launch_template(group: Resource, pricing: Pricing) -> Resource | None:
    """The plan's launch template a node group names, by id or name."""
    named = {group.get("launchTemplate.id"), group.get("launchTemplate.name")} - {None}
    return next(
        (t for t in pricing.graph.of_type(LAUNCH_TEMPLATE) if {t.mock_id, t.inputs.get("name")} & named), None
    )


def _root_volumes(
    group: Resource, pricing: Pricing, template: Resource | None, nodes: float
) -> Iterator[Outcome]:
    """Each node's EBS volumes from its launch template, per GB-month (billed while the node exists)."""
    if template is None:
        yield UnpricedResource(
            group.name,
            group.type,
            "its nodes' root volumes take EKS's default size and type (no launch template of the plan): not priced",
        )
        return
    for mapping in template.inputs.get("blockDeviceMappings") or []:
        ebs = mapping.get("ebs") if isinstance(mapping, dict) else None
        if not isinstance(ebs, dict):
            continue
        kind = str(ebs.get("volumeType") or "gp3")
        size = _number(ebs.get("volumeSize"))
        if kind == "gp3" and (
            _number(ebs.get("iops"), GP3_FREE_IOPS) > GP3_FREE_IOPS
            or _number(ebs.get("throughput"), GP3_FREE_THROUGHPUT) > GP3_FREE_THROUGHPUT
        ):
            yield UnpricedResource(
                group.name,
                group.type,
                f"gp3 volumes beyond {GP3_FREE_IOPS} IOPS or {GP3_FREE_THROUGHPUT} MB/s bill the excess: not in "
                "the price table",
            )
        yield _line(
            group,
            pricing,
            "fixed",
            "ebs.volume",
            kind,
            nodes * size,
            f"{nodes:g} node{'' if nodes == 1 else 's'} x {size:g} GB {kind} ({mapping.get('deviceName')}, "
            f"launch template {template.name})",
        )


def _config_rule(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Each evaluation bills. A periodic rule (one with a ``maximumExecutionFrequency``) evaluates every
    resource of its type at that frequency; the configuration items its evaluations read bill on the
    account's recorder, which the stack does not own."""
    source = resource.get("source.sourceIdentifier")
    frequency = resource.inputs.get("maximumExecutionFrequency")
    if not frequency:
        yield _usage_free(resource, "evaluation: one each time a resource in its scope changes")
        return
    types = CONFIG_RULE_TYPES.get(str(source))
    if resource.get("source.owner") != "AWS" or types is None:
        yield UnpricedResource(
            resource.name,
            resource.type,
            f"rule {source or 'without a source identifier'}: cost/aws.py does not know which resources it "
            "evaluates (CONFIG_RULE_TYPES)",
        )
        return
    runs = CONFIG_RUNS_PER_MONTH.get(str(frequency))
    if runs is None:
        yield UnpricedResource(
            resource.name, resource.type, f"maximumExecutionFrequency {frequency!r} is unknown"
        )
        return
    evaluated = sum(len(pricing.graph.of_type(type_)) for type_ in types)
    yield _line(
        resource,
        pricing,
        "fixed",
        "config.rule-evaluation",
        "standard",
        evaluated * runs,
        f"{evaluated} of the plan's {' and '.join(t.rsplit(':', 1)[-1] for t in types)} resources x {runs:.1f} "
        "runs; the account's other resources of the type are evaluated too",
    )


# --- The knowledge index: Aurora PostgreSQL Serverless v2 ------------------------------------------------


def _serverless_instances(cluster: Resource, pricing: Pricing) -> list[Resource]:
    ids = {cluster.mock_id, cluster.inputs.get("clusterIdentifier")} - {None}
    return [
        instance
        for instance in pricing.graph.of_type(CLUSTER_INSTANCE)
        if instance.inputs.get("clusterIdentifier") in ids
        and instance.inputs.get("instanceClass") == SERVERLESS_CLASS
    ]


def _aurora_cluster(resource: Resource, pricing: Pricing) -> Iterator[Outcome]:
    """Each ``db.serverless`` instance bills its ACUs every second: at least the minimum capacity, always
    (a fixed line), unless the minimum is 0 - then it pauses when idle and bills no ACUs while paused. The
    cluster's storage bills per GB-month and, on Aurora Standard storage, every I/O per million."""
    engine = str(resource.inputs.get("engine"))
    if engine != ENGINE:
        yield UnpricedResource(
            resource.name, resource.type, f"engine {engine}: the price table holds {ENGINE}'s rates only"
        )
        return
    storage = str(resource.inputs.get("storageType") or STANDARD_STORAGE)
    scaling = resource.inputs.get("serverlessv2ScalingConfiguration") or {}
    minimum = _number(scaling.get("minCapacity"))
    pause = _number(scaling.get("secondsUntilAutoPause"), DEFAULT_AUTO_PAUSE_SECONDS)
    instances = len(_serverless_instances(resource, pricing))
    if instances:
        who = f"{instances} {SERVERLESS_CLASS} instance{'s' if instances != 1 else ''}"
        yield _line(
            resource,
            pricing,
            "fixed",
            "aurora.serverless-v2",
            storage,
            instances * minimum * HOURS_PER_MONTH,
            (
                f"{who} at 0 ACUs: paused after {pause:g} s without connections, when it bills no ACUs"
                if minimum == 0
                else f"{who} x {minimum:g} ACUs (minimum capacity) x {HOURS_PER_MONTH} h"
            )
            + "; storage and I/O bill with use",
        )
    if pricing.usage is None:
        return
    if instances and minimum == 0:
        yield _awake(resource, pricing, storage, instances, pause)
    yield _index_size(resource, pricing)
    if storage == STANDARD_STORAGE:
        yield UnpricedResource(
            resource.name,
            resource.type,
            "I/O requests bill per million on Aurora Standard storage: the usage profile does not say how "
            "many of the searches' page reads miss the buffer cache (aurora-iopt1 storage includes them)",
        )


def _awake(
    cluster: Resource, pricing: Pricing, storage: str, instances: int, pause: float
) -> CostLine | UnpricedResource:
    """ACU-hours of a cluster that scales to 0: awake after a search (a connection) until it has had no
    connection for ``pause`` seconds; searches arriving at random. A lower bound twice over: awake, it runs
    at least :data:`AWAKE_ACUS`, more under load; and a warm function keeps its pool's connection open
    between requests, which holds the instance awake until Lambda retires the function's instance."""
    searchers = [
        agent
        for function in pricing.graph.of_type(FUNCTION)
        if _settings_of(function).get(KNOWLEDGE_BACKEND_SETTING) == "postgres"
        for agent in pricing.agents_of(function)
        if KNOWLEDGE_TOOL in (agent.get("tools") or [])
    ]
    searches = pricing.monthly(agents=searchers)
    awake = 1 - math.exp(-searches * pause / SECONDS_PER_MONTH)
    whose = ", ".join(sorted({agent["name"] for agent in searchers})) or "no agent"
    return _line(
        cluster,
        pricing,
        "usage",
        "aurora.serverless-v2",
        storage,
        instances * AWAKE_ACUS * awake * HOURS_PER_MONTH,
        f"awake {awake:.0%} of the month: {searches:,.0f} requests of {whose} at random, each keeping it up "
        f"{pause:g} s; {instances} x {AWAKE_ACUS} ACU, the least it runs awake (a lower bound)",
    )


def _index_size(cluster: Resource, pricing: Pricing) -> CostLine | UnpricedResource:
    """The knowledge index's GB: the documents (``storage.blobGbPerAccount``, read as plain text) cut into
    the chunks of the runtimes that use the index, each stored with its embedding twice - in its row and in
    the HNSW index."""
    assert pricing.usage is not None
    documents = pricing.usage.storage.blob_gb_per_account
    values: dict[str, Any] = {}
    for function in pricing.graph.of_type(FUNCTION):
        if (own := _settings_of(function)).get(KNOWLEDGE_BACKEND_SETTING) == "postgres":
            values |= own
    chunk = _number(_integer(values.get(CHUNK_TOKENS_SETTING)), DEFAULT_CHUNK_TOKENS)
    overlap = _number(_integer(values.get(OVERLAP_TOKENS_SETTING)), DEFAULT_OVERLAP_TOKENS)
    if 2 * overlap >= chunk:
        return UnpricedResource(
            cluster.name,
            cluster.type,
            f"{OVERLAP_TOKENS_SETTING} ({overlap:g}) must be less than half of {CHUNK_TOKENS_SETTING} "
            f"({chunk:g}), as the runtime requires: fix the functions' settings",
        )
    dimensions = _dimensions(pricing)
    chunk_bytes = chunk * CHARS_PER_TOKEN + INDEX_COPIES * VECTOR_BYTES_PER_DIMENSION * dimensions
    factor = chunk_bytes / ((chunk - overlap) * CHARS_PER_TOKEN)
    return _line(
        cluster,
        pricing,
        "usage",
        "aurora.storage",
        str(cluster.inputs.get("storageType") or STANDARD_STORAGE),
        documents * factor,
        f"{documents:g} GB of documents (storage.blobGbPerAccount) as text in {chunk:g}-token chunks "
        f"({overlap:g} overlapping), each with its {dimensions}-dim vector in its row and its HNSW index: "
        f"x {factor:.1f}",
    )


def _integer(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _cluster_instance(resource: Resource, _pricing: Pricing) -> Iterator[Outcome]:
    instance_class = str(resource.inputs.get("instanceClass"))
    if instance_class == SERVERLESS_CLASS:
        yield FreeResource(
            resource.name,
            resource.type,
            "its ACUs bill on its cluster (one ACU line per db.serverless instance)",
        )
        return
    yield UnpricedResource(
        resource.name,
        resource.type,
        f"instance class {instance_class} bills per instance-hour: not in the price table",
    )


PRICERS: dict[str, Pricer] = {
    FUNCTION: _function,
    PROVISIONED_CONCURRENCY: _provisioned_concurrency,
    "aws:apigatewayv2/api:Api": _http_api,
    "aws:apigatewayv2/stage:Stage": _stage,
    TABLE: _table,
    LOG_GROUP: _log_group,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _alarm,
    "aws:cloudwatch/dashboard:Dashboard": _dashboard,
    "aws:kms/key:Key": _kms_key,
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:bedrock/guardrail:Guardrail": _guardrail,
    REST_API: _rest_api,
    "aws:apigateway/stage:Stage": _rest_stage,
    "aws:apigateway/methodSettings:MethodSettings": _method_settings,
    "aws:wafv2/webAcl:WebAcl": _web_acl,
    "aws:sqs/queue:Queue": _queue,
    EVENT_SOURCE_MAPPING: _event_source_mapping,
    EVENT_RULE: _event_rule,
    "aws:s3/bucket:Bucket": _bucket,
    "aws:ec2/vpcEndpoint:VpcEndpoint": _vpc_endpoint,
    "aws:rds/cluster:Cluster": _aurora_cluster,
    CLUSTER_INSTANCE: _cluster_instance,
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:cfg/rule:Rule": _config_rule,
}

_API_PART = "part of its HTTP API: requests bill on the API"
_BUCKET_PART = "a setting of its bucket: free"
_NETWORK_PART = "VPCs, subnets, route tables and security groups are free"
_CLUSTER_ACCESS = "who may use the cluster (access entries, Pod Identity): free"
_REPOSITORY_PART = "a setting of the registry's repositories: free"
FREE: dict[str, str] = {
    "aws:iam/role:Role": "IAM roles and policies are free",
    "aws:iam/rolePolicy:RolePolicy": "IAM roles and policies are free",
    "aws:kms/alias:Alias": "a name for a KMS key: billed on the key",
    "aws:lambda/alias:Alias": "a name for a function version: warm instances bill on its provisioned concurrency",
    "aws:lambda/permission:Permission": "a statement of the function's resource policy: free",
    EVENT_TARGET: "where its rule sends events: the invocations bill on the rule",
    "aws:apigatewayv2/route:Route": _API_PART,
    "aws:apigatewayv2/integration:Integration": _API_PART,
    "aws:apigatewayv2/authorizer:Authorizer": (
        "part of its HTTP API: JWT authorizers are free (a Lambda authorizer bills as its function)"
    ),
    "aws:bedrock/guardrailVersion:GuardrailVersion": "a published version of its guardrail: text units bill on the guardrail",
    "aws:sns/topic:Topic": (
        "no fixed cost: billed per publish and delivery; alarm e-mails stay within the account's first "
        "1,000 a month free"
    ),
    "aws:sns/topicSubscription:TopicSubscription": "e-mail deliveries bill on its topic's notifications",
    "aws:budgets/budget:Budget": (
        "AWS Budgets bills only action-enabled budgets (after an account's first two, 0.10 USD a day) and "
        "reports; budget notifications are free"
    ),
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": "a resource policy of CloudWatch Logs: free",
    "aws:lambda/invocation:Invocation": (
        "one run of its function per deployment that changes it: negligible, and billed on the function"
    ),
    # API Gateway REST API
    "aws:apigateway/resource:Resource": _REST_PART,
    "aws:apigateway/method:Method": _REST_PART,
    "aws:apigateway/integration:Integration": _REST_PART,
    "aws:apigateway/authorizer:Authorizer": (
        "part of its REST API: a Lambda authorizer bills as its function (its answers cached per token)"
    ),
    "aws:apigateway/deployment:Deployment": "a snapshot of its REST API's routes: free",
    "aws:apigateway/requestValidator:RequestValidator": "a validation setting of its REST API: free",
    "aws:apigateway/usagePlan:UsagePlan": "usage plans and API keys are free",
    "aws:apigateway/apiKey:ApiKey": "usage plans and API keys are free",
    "aws:apigateway/usagePlanKey:UsagePlanKey": "usage plans and API keys are free",
    "aws:apigateway/account:Account": "API Gateway's account settings (its CloudWatch logging role): free",
    # WAF
    "aws:wafv2/webAclAssociation:WebAclAssociation": "attaches its web ACL: requests bill on the web ACL",
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": (
        "WAF logs bill as their log group's ingestion and storage"
    ),
    # SQS
    "aws:sqs/queuePolicy:QueuePolicy": "a setting of its queue: requests bill on the queue",
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": "a setting of its queue: requests bill on the queue",
    # S3
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _BUCKET_PART,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _BUCKET_PART,
    "aws:s3/bucketVersioning:BucketVersioning": (
        "a setting of its bucket: versions kept bill as the bucket's storage"
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "a setting of its bucket: KMS requests bill on the key (bucket keys make them few)"
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _BUCKET_PART,
    "aws:s3/bucketPolicy:BucketPolicy": _BUCKET_PART,
    "aws:s3/bucketNotification:BucketNotification": (
        "S3 event notifications are free: the messages they send bill on the queue"
    ),
    # VPC
    "aws:ec2/vpc:Vpc": _NETWORK_PART,
    "aws:ec2/subnet:Subnet": _NETWORK_PART,
    "aws:ec2/routeTable:RouteTable": _NETWORK_PART,
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _NETWORK_PART,
    "aws:ec2/securityGroup:SecurityGroup": _NETWORK_PART,
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": _NETWORK_PART,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _NETWORK_PART,
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _NETWORK_PART,
    "aws:ec2/flowLog:FlowLog": "flow logs bill as their log group's ingestion and storage (vended logs)",
    # Aurora
    "aws:rds/subnetGroup:SubnetGroup": "DB subnet groups are free",
    # The enterprise stage: EKS, the agent registry, resource policies
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "IAM roles and policies are free",
    LAUNCH_TEMPLATE: "a template: the instances and volumes it launches bill on their node group",
    "aws:eks/addon:Addon": (
        "EKS add-ons have no charge of their own: their pods run on the nodes, and what they send (metrics, "
        "logs) bills on the service that receives it"
    ),
    "aws:eks/accessEntry:AccessEntry": _CLUSTER_ACCESS,
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": _CLUSTER_ACCESS,
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": _CLUSTER_ACCESS,
    "aws:ecr/repository:Repository": (
        "no fixed cost: billed per GB-month of the images it stores, which the usage profile does not size; "
        "pulls from inside the region are free"
    ),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": _REPOSITORY_PART,
    "aws:ecr/repositoryPolicy:RepositoryPolicy": _REPOSITORY_PART,
    "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate": _REPOSITORY_PART,
    "aws:ecr/pullThroughCacheRule:PullThroughCacheRule": (
        "a rule of the registry: free; the images it caches bill as storage of the repositories it creates"
    ),
    "aws:sns/topicPolicy:TopicPolicy": "a setting of its topic: free",
    "aws:secretsmanager/secretPolicy:SecretPolicy": "a setting of its secret: free",
    "aws:dynamodb/resourcePolicy:ResourcePolicy": "a setting of its table: free",
}
