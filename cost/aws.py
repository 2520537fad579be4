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
"""The region of prices AWS does not set per region (CloudWatch dashboards)."""
FUNCTION = "aws:lambda/function:Function"
TABLE = "aws:dynamodb/table:Table"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROUTE = "aws:apigatewayv2/route:Route"
PROVISIONED_CONCURRENCY = "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig"

DEFAULT_MEMORY_MB = 128
DEFAULT_ARCHITECTURE = "x86_64"
FREE_EPHEMERAL_MB = 512
"""Ephemeral storage a function gets with no charge; more bills per GB-second."""
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
EMBEDDING_SETTING = "AGENTSTAGE_EMBEDDING_MODEL"
DIMENSIONS_SETTING = "AGENTSTAGE_EMBEDDING_DIMENSIONS"
GUARDRAIL_SETTING = "AGENTSTAGE_BEDROCK_GUARDRAIL_ID"
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
    requests = pricing.monthly()
    hours = 1 - math.exp(-requests / HOURS_PER_MONTH)  # hours with a request, requests arriving at random
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
}

_API_PART = "part of its HTTP API: requests bill on the API"
FREE: dict[str, str] = {
    "aws:iam/role:Role": "IAM roles and policies are free",
    "aws:iam/rolePolicy:RolePolicy": "IAM roles and policies are free",
    "aws:kms/alias:Alias": "a name for a KMS key: billed on the key",
    "aws:lambda/alias:Alias": "a name for a function version: warm instances bill on its provisioned concurrency",
    "aws:lambda/permission:Permission": "a statement of the function's resource policy: free",
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
}
