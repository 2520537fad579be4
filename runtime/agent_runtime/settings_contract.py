"""The runtime's environment contract: every setting's name, type, default and checks.

Every environment variable the agent runtime reads is a field of :class:`SettingsContract`. The
infrastructure components build a deployed agent's app settings / container env with :func:`env_for`, which checks the
field names against this class, so infrastructure and code cannot drift apart: a renamed or missing
variable fails the offline plan instead of the first request in production.

Values are text. A list of names (roles, hosts, modules, algorithms) may be written comma-separated
(``user,reviewer``) or as JSON (``["user", "reviewer"]``); a list of regular expressions only as JSON, since
a pattern may itself contain commas. Structured settings (agents, budgets, prices, queues, keys) are JSON;
:data:`agent_runtime.settings.JSON_FORMATS` shows each one's shape.

The runtime reads these fields from its environment with :class:`agent_runtime.settings.Settings`; this
module has no reader, so ``agentstage plan`` checks names and values without loading one.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationInfo, model_validator

ENV_PREFIX = "AGENTSTAGE_"
SETTINGS_DIR_VARIABLE = "AGENTSTAGE_SETTINGS_DIR"
"""A directory of files named ``AGENTSTAGE_<SETTING>`` whose contents are settings (a mounted Kubernetes
Secret): secret settings then never sit in the process environment. The environment wins over a file."""


def _names(value: Any) -> Any:
    """A list of names from text: JSON (``["a", "b"]``) or comma-separated (``a, b``; blanks dropped)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"starts with '[' but is not a JSON list ({error.msg} at position {error.pos}); write a "
                'comma-separated list such as a,b or a JSON list such as ["a", "b"]'
            ) from None
    return [item.strip() for item in text.split(",") if item.strip()]


def _patterns(value: Any) -> Any:
    """A list of regular expressions from text: JSON only (a comma is part of ``{1,64}``, not a separator)."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return []
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list):
        return parsed
    raise ValueError(
        'must be a JSON list of regular expressions, e.g. ["ACME-[0-9]{6}", "(?i)project x"]; not '
        "comma-separated, because a pattern may itself contain commas"
    )


def _header_value(value: Any) -> Any:
    """A value sent as an HTTP header (a key): a line break or NUL would end the header, so it is refused at
    start, naming the setting (a newline copied in with the key is the usual way it gets there)."""
    if isinstance(value, str) and any(char in value for char in "\r\n\0"):
        raise ValueError(
            "holds a line break or NUL, which no HTTP header can carry: remove it (a newline copied in with the key?)"
        )
    return value


NameList = Annotated[list[str], BeforeValidator(_names)]
"""A list setting of names: ``a,b`` or ``["a", "b"]``."""
PatternList = Annotated[list[str], BeforeValidator(_patterns)]
"""A list setting of regular expressions: ``["p1", "p2"]`` only."""


def _usage_keys(value: Any) -> Any:
    """The API gateway's usage plan keys by client application, from JSON text: an object of non-empty
    strings with a ``"*"`` entry, so every caller resolves to some plan's key."""
    if value is None:
        return None
    shape = (
        "a JSON object mapping client application ids to API key values (non-empty strings), "
        'e.g. {"reporting-app": "<its key>", "*": "<default key>"}'
    )
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as error:
        raise ValueError(
            f"is not valid JSON ({error.msg} at position {error.pos}): it must be {shape}"
        ) from None
    if not isinstance(parsed, dict) or not all(
        isinstance(name, str) and name and isinstance(key, str) and key for name, key in parsed.items()
    ):
        raise ValueError(f"must be {shape}")
    if "*" not in parsed:
        raise ValueError(
            'needs a "*" entry: the key of the default usage plan, for callers whose application has none'
        )
    return parsed


AgentProtocol = Literal["tcp", "udp"]
_AGENT_ENDPOINT_SHAPE = "tcp://host:port or udp://host:port, e.g. tcp://127.0.0.1:25888"


def parse_agent_endpoint(value: str) -> tuple[AgentProtocol, str, int]:
    """The protocol, host and port of a CloudWatch agent EMF listener written ``tcp://host:port`` or
    ``udp://host:port`` (the aws-embedded-metrics libraries' ``AWS_EMF_AGENT_ENDPOINT`` form); a
    :class:`ValueError` saying what is wrong otherwise. The host is resolved when the runtime connects, so
    a name (a Kubernetes Service) works as well as an address."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"must be {_AGENT_ENDPOINT_SHAPE}, with a port from 1 to 65535") from None
    if parts.scheme not in ("tcp", "udp"):
        given = f"'{parts.scheme}://'" if parts.scheme else "no protocol"
        raise ValueError(
            f"must be {_AGENT_ENDPOINT_SHAPE} (the CloudWatch agent's EMF listener); {given} given"
        )
    if not parts.hostname or not port:
        raise ValueError(f"must be {_AGENT_ENDPOINT_SHAPE}: name the host and a port from 1 to 65535")
    if parts.username is not None or parts.path or parts.query or parts.fragment:
        raise ValueError(f"must be {_AGENT_ENDPOINT_SHAPE}, with nothing before the host or after the port")
    protocol: AgentProtocol = "tcp" if parts.scheme == "tcp" else "udp"
    return protocol, parts.hostname, port


def _emf_agent_endpoint(value: Any, info: ValidationInfo) -> Any:
    """A blank value is unset (stdout); any other must parse, and only the emf exporter sends to an agent."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    parse_agent_endpoint(value)
    exporter = info.data.get("telemetry_exporter")
    if exporter is not None and exporter != "emf":
        raise ValueError(
            f"applies only to {ENV_PREFIX}TELEMETRY_EXPORTER=emf, which is '{exporter}' here: unset it, or "
            "choose the emf exporter"
        )
    return value.strip()


class SettingsContract(BaseModel):
    """The runtime's settings; each field is read from ``AGENTSTAGE_<FIELD NAME IN CAPITALS>`` by
    :class:`~agent_runtime.settings.Settings`, which validates them. The contract itself is never validated, so
    its schema is not built (``defer_build``): the plan reads its fields only.

    Defaults are safe for local use: an embedded SQLite store, the scripted local model server, and an
    API key for dev mode. Fields marked ``json_schema_extra={"cloud_required": True}`` must be set by
    every component that deploys the runtime to a cloud.
    """

    model_config = ConfigDict(extra="ignore", defer_build=True)

    environment: str = Field(
        default="local",
        description="Deployment environment name (local, dev, prod, ...); shown in traces and logs.",
        json_schema_extra={"cloud_required": True},
    )
    llm_provider: Literal["openai", "azure_openai", "anthropic", "bedrock"] = Field(
        default="openai",
        description="'openai' for any OpenAI-compatible endpoint, 'azure_openai' for an Azure OpenAI account, "
        "'anthropic' for Anthropic's Messages API, 'bedrock' for Amazon Bedrock's Converse API.",
        json_schema_extra={"cloud_required": True},
    )
    llm_endpoint: str = Field(
        default="http://127.0.0.1:8400/v1",
        description="Base URL of the model endpoint (the local model server by default).",
        json_schema_extra={"cloud_required": True},
    )
    llm_auth: Literal["api_key", "entra", "aws", "none"] = Field(
        default="api_key",
        description="How to authenticate to the model: an API key (local only), an Entra ID token, or AWS "
        "credentials from the environment or the execution role (SigV4; llm_provider=bedrock).",
        json_schema_extra={"cloud_required": True},
    )
    llm_api_key: Annotated[str | None, BeforeValidator(_header_value)] = Field(
        default=None,
        description="API key for llm_auth=api_key. Never set in the cloud: deployed agents use Entra ID.",
        json_schema_extra={"secret": True},
    )
    llm_api_version: str = Field(
        default="2024-10-21",
        description="Azure OpenAI data-plane API version (ignored for plain OpenAI endpoints).",
    )
    anthropic_version: str = Field(
        default="2023-06-01",
        description="The anthropic-version header of Anthropic Messages API calls (llm_provider=anthropic).",
    )
    bedrock_guardrail_id: str | None = Field(
        default=None,
        description="Bedrock guardrail applied to every Converse call (llm_provider=bedrock); infrastructure "
        "generates it from the stack's content-filter settings.",
    )
    bedrock_guardrail_version: str = Field(
        default="DRAFT", description="Version of the Bedrock guardrail (a number once published, or DRAFT)."
    )
    identity_client_id: str | None = Field(
        default=None,
        description="azure: client id of the user-assigned managed identity the runtime authenticates as (on "
        "AWS the execution role's credentials come from the environment).",
    )
    state_backend: Literal["sqlite", "redis", "postgres", "cosmos", "dynamodb"] = Field(
        default="sqlite",
        description="Where conversation state lives.",
    )
    vector_backend: Literal["sqlite", "redis", "postgres", "cosmos", "dynamodb"] = Field(
        default="sqlite",
        description="Where long-term vector memory lives.",
    )
    sqlite_path: str = Field(
        default=".agentstage/state.db",
        description="File of the embedded SQLite store: conversations, memory, the budget ledger and task records.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis:// or rediss:// URL for the Redis backends.",
        json_schema_extra={"secret": True},  # it may carry the password
    )
    postgres_dsn: str | None = Field(
        default=None,
        description="libpq connection string for the PostgreSQL + pgvector backends.",
        json_schema_extra={"secret": True},  # it may carry the password
    )
    postgres_iam_auth: bool = Field(
        default=False,
        description="Sign in to PostgreSQL on Amazon RDS / Aurora with IAM database authentication: every new "
        "connection presents a 15-minute token signed with the execution role's credentials (rds-db:connect) "
        "for aws_region. postgres_dsn then names host, port, dbname and user but no password, and TLS is "
        "required (sslmode=require unless it sets verify-ca or verify-full).",
    )
    cosmos_endpoint: str | None = Field(
        default=None, description="Cosmos DB for NoSQL account endpoint; reached with the managed identity."
    )
    cosmos_database: str = Field(default="agentstage", description="Cosmos DB database name.")
    cosmos_conversations_container: str = Field(
        default="conversations-by-owner",
        description="Container of conversation history, partitioned by [/tenant, /caller, /conversationId]. "
        "With Entra ID data-plane roles the runtime cannot create containers: infrastructure creates it "
        "with this name.",
    )
    cosmos_memories_container: str = Field(
        default="memories",
        description="Container of vector memory, partitioned by /namespace, vector policy on /embedding.",
    )
    cosmos_ledger_container: str = Field(
        default="ledger",
        description="Container of the shared budget ledger and tool-call idempotency records "
        "(budget_backend=cosmos), partitioned by /partition, with TTL on.",
    )
    llm_token_scope: str = Field(
        default="https://cognitiveservices.azure.com/.default",
        description="Entra ID scope of the tokens sent with model calls (llm_auth=entra): Azure OpenAI's by "
        "default; the API gateway's audience when models are reached through the gateway.",
    )
    bus_backend: Literal["sqlite", "servicebus", "storage_queue", "sqs"] = Field(
        default="sqlite",
        description="Message bus carrying tasks between the orchestrator and the agents (consumed by the task "
        "worker and orchestrator): the embedded SQLite queue locally; Azure Service Bus or Storage Queues on "
        "Azure; SQS on AWS.",
    )
    bus_sqlite_path: str = Field(
        default=".agentstage/bus.db",
        description="File of the embedded SQLite bus; apart from sqlite_path, so queue traffic never waits on "
        "the state store's write lock. Every worker process on the machine shares it.",
    )
    bus_max_delivery_count: int = Field(
        default=5,
        ge=1,
        description="Deliveries of a message before it is dead-lettered. Infrastructure sets the same number on "
        "Service Bus queues (MaxDeliveryCount) and SQS redrive policies (maxReceiveCount).",
    )
    bus_visibility_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a received message stays leased (hidden from other receivers) before it is "
        "delivered again unless completed or renewed. Service Bus uses the queue's lock duration instead.",
    )
    bus_create_queues: bool = Field(
        default=False,
        description="Create missing queues and their dead-letter queues on first use: for the emulators "
        "(Azurite, moto) only; in the cloud infrastructure creates them and the runtime may not.",
    )
    servicebus_namespace: str | None = Field(
        default=None,
        description="Fully qualified Service Bus namespace (<name>.servicebus.windows.net); reached with the "
        "managed identity, never a connection string.",
    )
    storage_queue_account_url: str | None = Field(
        default=None,
        description="Queue endpoint of the storage account (https://<account>.queue.core.windows.net) for "
        "bus_backend=storage_queue; reached with the managed identity.",
    )
    storage_queue_connection_string: SecretStr | None = Field(
        default=None,
        description="Storage connection string of the Azurite emulator (tests, local runs) only; deployed "
        "agents use storage_queue_account_url and the managed identity.",
    )
    sqs_endpoint_url: str | None = Field(
        default=None,
        description="SQS endpoint override (moto, a VPC endpoint); unset, the region's public endpoint applies.",
    )
    aws_region: str | None = Field(
        default=None,
        description="AWS region of SQS, DynamoDB and Bedrock; unset, the AWS_REGION the Lambda or pod carries "
        "applies. AWS endpoints can be overridden (moto, local servers) with the SDK's own AWS_ENDPOINT_URL.",
    )
    dynamodb_conversations_table: str = Field(
        default="agentstage-conversations",
        description="DynamoDB table of conversation history (state_backend=dynamodb); infrastructure creates it.",
    )
    dynamodb_memories_table: str = Field(
        default="agentstage-memories",
        description="DynamoDB table of vector memory (vector_backend=dynamodb); infrastructure creates it.",
    )
    dynamodb_tasks_table: str = Field(
        default="agentstage-tasks",
        description="DynamoDB table of task records (state_backend=dynamodb); infrastructure creates it.",
    )
    dynamodb_ledger_table: str = Field(
        default="agentstage-ledger",
        description="DynamoDB table of the budget ledger and tool-call idempotency records "
        "(budget_backend=dynamodb); infrastructure creates it with TTL on.",
    )
    knowledge_backend: Literal["none", "sqlite", "postgres", "aisearch"] = Field(
        default="sqlite",
        description="Where the shared knowledge index lives (documents agents search with knowledge_search): "
        "the embedded SQLite file (sqlite_path), PostgreSQL + pgvector (postgres_dsn), Azure AI Search "
        "(search_endpoint), or none.",
    )
    knowledge_index: str = Field(
        default="knowledge",
        pattern=r"^[a-z0-9][a-z0-9-]{0,127}$",
        description="Name of the knowledge index (an AI Search index name: lower-case letters, digits and "
        "dashes, starting with a letter or digit).",
    )
    search_endpoint: str | None = Field(
        default=None,
        description="Azure AI Search endpoint (https://<service>.search.windows.net) for knowledge_backend="
        "aisearch; reached with the managed identity, never an API key.",
    )
    knowledge_manage_index: bool = Field(
        default=False,
        description="Create or update the AI Search index definition, or the PostgreSQL index tables, on start: "
        "the ingestion worker only (it holds Search Service Contributor, or owns the tables); agents hold "
        "query rights and only check the index exists.",
    )
    knowledge_schema: str = Field(
        default="agentstage",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema of the knowledge index (knowledge_backend=postgres): lower-case letters, "
        "digits and underscores. On AWS the database bootstrap creates it, owned by the ingestion worker's "
        "database user.",
    )
    knowledge_source: str | None = Field(
        default=None,
        description="Where the ingestion worker reads documents: a Blob container URL "
        "(https://<account>.blob.core.windows.net/<container>), an S3 URL (s3://<bucket>[/<prefix>]) or a "
        "local folder.",
    )
    ingest_queue: str | None = Field(
        default=None,
        description="The queue of document events (Event Grid blob events on Service Bus or a Storage queue; "
        "S3 notifications on SQS) that this runtime's ingestion worker consumes.",
    )
    knowledge_default_readers: NameList = Field(
        default_factory=list,
        description="Readers of a document that declares none (blob metadata 'readers', S3 tag 'readers', "
        "or the local folder's readers file). Empty: such documents are skipped and reported, never "
        "indexed readable by everyone by accident; '*' means every authenticated caller.",
    )
    knowledge_chunk_tokens: int = Field(
        default=400, ge=16, le=8000, description="Upper bound of a chunk's tokens (estimated)."
    )
    knowledge_overlap_tokens: int = Field(
        default=60, ge=0, description="Tokens repeated from the end of one chunk at the start of the next."
    )
    knowledge_max_document_bytes: int = Field(
        default=20_000_000,
        ge=1,
        description="Larger documents are dead-lettered with the reason instead of being read into memory.",
    )
    task_queue: str | None = Field(
        default=None, description="The queue this runtime's worker receives its tasks from."
    )
    tasks_enabled: bool = Field(
        default=True,
        description="Whether a worker runs this runtime's tasks. A stage without one (the pilot: no task "
        "queue, no trigger) sets it false, and the task endpoints answer 501 rather than accept work that "
        "nothing would run.",
    )
    agent_queues: str = Field(
        default="{}",
        description="JSON object mapping agent name -> task queue: where the orchestrator delegates work.",
    )
    cosmos_tasks_container: str = Field(
        default="tasks",
        description="Cosmos DB container of task records (state_backend=cosmos), partitioned by /id; "
        "infrastructure creates it.",
    )
    task_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a worker owns a running task without a heartbeat; a task whose worker died is "
        "taken over once it passes. The worker renews it, and its message's lease (bus_visibility_seconds), "
        "every third of the shorter of the two.",
    )
    worker_concurrency: int = Field(
        default=4, gt=0, le=256, description="Tasks one worker process runs at once."
    )
    worker_bus_retries: int = Field(
        default=5,
        ge=0,
        description="Retries of a failing queue operation (backoff from retry_base_seconds to "
        "retry_max_seconds) before the worker exits non-zero; the queued messages stay on the queue.",
    )
    worker_shutdown_grace_seconds: float = Field(
        default=25.0,
        ge=0,
        description="On SIGTERM, how long running tasks may finish before they are handed back to the "
        "queue; keep it below the pod's terminationGracePeriodSeconds.",
    )
    worker_heartbeat_file: str | None = Field(
        default=None,
        description="File the worker touches on every poll of its queue: a liveness probe checks its age.",
    )
    reviewer_role: str = Field(
        default="reviewer",
        description="Caller role that may approve or reject tool calls parked for human review.",
    )
    approval_timeout_seconds: float = Field(
        default=259200.0,
        ge=60,
        description="How long a tool call parked for human review waits for a decision. Past it the task "
        "fails with approval_expired, its callback is sent and it leaves the reviewers' queue, so no caller "
        "waits for ever and the queue stays bounded. The default, 3 days, outlasts a weekend. At least 60: "
        "workers sweep for expired approvals once a minute, so a shorter timeout could not be kept.",
    )
    operator_role: str = Field(
        default="operator",
        description="Caller role that may delete every conversation of a tenant on request "
        "(DELETE /v1/tenants/{tenant}/conversations); each deletion is audited.",
    )
    platform_tenant: str | None = Field(
        default=None,
        description="The tenant whose reviewers and operators act for every tenant (the platform team's "
        "own), and whose roles read the knowledge index's documents as the default tenant's do. A role of "
        "any other tenant counts within its own tenant only: in multi-tenant tokens each tenant's "
        "administrators assign the roles. Unset: every one acts within its own tenant.",
    )
    callback_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one POST to a task's callback URL."
    )
    callback_max_retries: int = Field(
        default=3,
        ge=0,
        description="Retries of a failed task callback (allowed hosts as http_get: http_allowed_hosts).",
    )
    embedding_model: str = Field(default="text-embedding-3-small", description="Embedding model/deployment.")
    embedding_dimensions: int = Field(default=384, description="Dimensions of the stored embeddings.")
    agents: str = Field(
        default="[]",
        description="JSON list of agent definitions (name, instructions, model, tools, token_budget).",
        json_schema_extra={"cloud_required": True},
    )

    default_model: str = Field(
        default="gpt-4o-mini",
        description="Model (or Azure OpenAI deployment) of agents whose definition names none.",
    )
    llm_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Timeout of one model call; of a streamed one, of each wait for the next piece of its "
        "answer (text, or part of a tool call).",
    )
    llm_max_retries: int = Field(
        default=2,
        ge=0,
        description="Retries of a model call failing with 429, 5xx, a timeout or a malformed answer, with "
        "exponential backoff and full jitter, honouring Retry-After (the openai SDK's own retries are off).",
    )
    retry_base_seconds: float = Field(
        default=0.25, gt=0, description="Backoff before the first retry; doubles with each retry (jittered)."
    )
    retry_max_seconds: float = Field(
        default=8.0,
        gt=0,
        description="Longest wait before one retry, Retry-After included (longer: fall back).",
    )
    breaker_failure_threshold: int = Field(
        default=5,
        gt=0,
        description="Consecutive failures of a model deployment that open its circuit breaker.",
    )
    breaker_reset_seconds: float = Field(
        default=30.0, gt=0, description="How long an open breaker refuses calls before one probe (half-open)."
    )
    max_output_tokens: int = Field(
        default=4096,
        gt=0,
        description="Default cap on one model answer (sent as max_completion_tokens; an agent's "
        "max_output_tokens overrides it); budgets hold this much output before each call, so a call can never "
        "spend more than was held.",
    )
    budget_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a call may wait, within its deadline, for calls in flight to settle when they "
        "hold the room its budget needs (0: refuse at once, 429 with reason held).",
    )
    budgets: str = Field(
        default="[]",
        description='JSON list of budgets: {"name", "scope": tenant|agent|caller|application, '
        '"match": id or "*", "window_seconds", "tokens"?, "requests"?, "cost_usd"?}; '
        "see governance/budgets.py.",
    )
    model_prices: str = Field(
        default="{}",
        description='JSON object of USD prices per million tokens: {"<model>": {"input": 0.15, "output": 0.6}}.',
    )
    budget_backend: Literal["sqlite", "redis", "cosmos", "dynamodb"] = Field(
        default="sqlite",
        description="Where the budget ledger and tool-call idempotency records live: sqlite (this instance "
        "only: local use), or one ledger every instance shares: redis (needs redis_url), cosmos (needs "
        "cosmos_endpoint; cosmos_ledger_container), dynamodb (dynamodb_ledger_table).",
    )
    budget_prompt_bytes_per_token: float = Field(
        default=1.0,
        gt=0,
        description="Bytes of prompt per token assumed when reserving; 1 is a strict upper bound (a token is "
        "at least one byte), larger values reserve less and may let a burst overshoot by the estimate's error.",
    )
    idempotency_ttl_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="How long a side-effecting tool call's result is kept for replays.",
    )
    injection_screening: Literal["enforce", "report", "off"] = Field(
        default="enforce",
        description="Prompt-injection screening of user input (refused with 400) and tool output (withheld "
        "from the model); 'report' only records detections in logs and traces.",
    )
    injection_patterns: PatternList = Field(
        default=[],
        description="JSON list of extra regular expressions that count as prompt injection, matched as the "
        "built-in ones: against a JSON tool result's decoded strings, with one space between words.",
    )
    content_safety_endpoint: str | None = Field(
        default=None,
        description="Azure AI Content Safety endpoint; when set, Prompt Shields screens input and tool "
        "output too (with the managed identity's Entra token).",
    )
    output_leakage: Literal["redact", "block", "off"] = Field(
        default="redact",
        description="What happens to an answer carrying secrets, keys or sensitive_patterns: redacted, or "
        "refused with 502 output_blocked.",
    )
    sensitive_patterns: PatternList = Field(
        default=[],
        description="JSON list of regular expressions (Python re syntax) of data that must never leave the "
        "runtime or be logged. Streamed answers are checked as they arrive, so each must have a longest match "
        "(bounded repeats such as {1,64}, at most 32768 characters), match at least one character and not "
        "anchor to the end of the text ($, \\Z); any other is refused at start.",
    )
    redact_pii: bool = Field(
        default=True,
        description="Redact PII (emails, phone, card numbers, IBANs) besides secrets in logs, traces, "
        "stored history and answers.",
    )
    telemetry_exporter: Literal["none", "console", "otlp", "azure_monitor", "emf"] = Field(
        default="none",
        description="Where traces and metrics go; azure_monitor uses applicationinsights_connection_string or, "
        "when unset, the standard APPLICATIONINSIGHTS_CONNECTION_STRING the host already carries; emf writes "
        "metrics per agent as CloudWatch Embedded Metric Format lines to stdout (Lambda: CloudWatch Logs "
        "extracts them; the host flushes after each event), or to the CloudWatch agent with "
        "emf_agent_endpoint, and exports no traces.",
        json_schema_extra={"cloud_required": True},
    )
    emf_agent_endpoint: Annotated[str | None, BeforeValidator(_emf_agent_endpoint)] = Field(
        default=None,
        description="telemetry_exporter=emf where standard output does not become metrics (pods on EKS): the "
        "CloudWatch agent's EMF listener, tcp://host:port or udp://host:port: on EKS "
        "tcp://cloudwatch-agent.amazon-cloudwatch:25888, the port the amazon-cloudwatch-observability add-on "
        "opens once its agent configuration collects emf (logs.metrics_collected.emf). Records are "
        "sent off the request path, one JSON document per line (TCP) or per datagram (UDP), to the log group "
        "emf_log_group names; while the agent is away they wait in a bounded buffer and are "
        "dropped (counted, logged) when it is full. Unset, emf writes to stdout.",
    )
    emf_log_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.#/-]{1,512}$",
        description="With emf_agent_endpoint: the CloudWatch log group the agent writes the records to (the "
        "infrastructure creates it, with its retention and key, and lets the agent write there); unset, "
        "/agentstage/<environment>/metrics.",
    )
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP collector base URL (else OTEL_EXPORTER_OTLP_ENDPOINT applies)."
    )
    trace_sample_ratio: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Share of runs traced (otlp, console, azure_monitor), decided once per trace at its root "
        "by the trace id; a caller's traceparent decision is always followed. Unset: the exporter's default "
        "(otlp and console: OTEL_TRACES_SAMPLER, else every run; azure_monitor: its distro's rate-limited "
        "5 traces/s). Metrics count every run whatever is sampled; emf derives its metrics from every span "
        "and ignores it.",
    )
    applicationinsights_connection_string: str | None = Field(
        default=None, description="Application Insights connection string (telemetry_exporter=azure_monitor)."
    )
    service_name: str = Field(default="agentstage-runtime", description="service.name of traces and metrics.")
    capture_content: bool = Field(
        default=False,
        description="Record prompts, answers and tool arguments/results (redacted) in logs and span events.",
    )
    auth_mode: Literal["api_key", "jwt", "none"] = Field(
        default="api_key",
        description="How callers authenticate: an API key, a JWT bearer token, or not at all (tests only).",
        json_schema_extra={"cloud_required": True},
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="A single API key (dev mode, small deployments); its caller id is 'api-key' and its "
        "roles are api_key_roles. `agentstage dev` defaults it to 'dev-key'.",
    )
    api_key_roles: NameList = Field(
        default=["user"],
        description="Roles of the caller holding api_key: comma-separated (user,reviewer) or a JSON list.",
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="JSON object mapping API keys to callers: "
        '{"<key>": {"caller": "id", "roles": ["user"], "tenant": "t1", "application": "app"}} (tenant '
        "optional; application optional, defaults to the key's caller).",
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of JWT bearer tokens.")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of JWT bearer tokens.")
    jwt_jwks_url: str | None = Field(default=None, description="URL of the issuer's JSON Web Key Set.")
    jwt_algorithms: NameList = Field(
        default=["RS256"], description="Accepted JWT algorithms: RS256,ES256 or a JSON list."
    )
    jwt_roles_claim: str = Field(default="roles", description="JWT claim holding the caller's roles.")
    jwt_tenant_claim: str = Field(
        default="tid", description="JWT claim naming the caller's tenant (tenant budgets); Entra ID's 'tid'."
    )
    jwks_cache_seconds: float = Field(
        default=300.0, gt=0, description="How long fetched signing keys are trusted before a refresh."
    )
    gateway_usage_plans: Annotated[dict[str, str] | None, BeforeValidator(_usage_keys)] = Field(
        default=None,
        description="The API gateway's Lambda authorizer (agent_runtime.gateway_authorizer): JSON object "
        "mapping a caller's client application (JWT azp, client_id or appid) to the API key of its usage "
        'plan, "*" to the default plan\'s key. The values only select a plan (the REST API takes keys '
        "from the authorizer), they grant nothing.",
    )
    max_request_bytes: int = Field(
        default=1_048_576, gt=0, description="Largest request body accepted (HTTP 413 above it)."
    )
    max_prompt_chars: int = Field(
        default=100_000, gt=0, description="Largest total text of a request's messages (HTTP 413 above it)."
    )
    max_steps: int = Field(
        default=8, gt=0, description="Model calls one request may make, unless an agent sets its own."
    )
    deadline_seconds: float = Field(
        default=60.0, gt=0, description="Wall-clock limit of one agent run, model and tool calls included."
    )
    default_token_budget: int = Field(
        default=50_000, gt=0, description="Tokens one request may spend, unless an agent sets token_budget."
    )
    tool_timeout_seconds: float = Field(default=15.0, gt=0, description="Timeout of one tool call.")
    http_allowed_hosts: NameList = Field(
        default=[],
        description="Hosts the http_get tool and task callbacks may reach, comma-separated or a JSON list: "
        "an exact name (port 443) or name:port; only public addresses, checked on the address connected to.",
    )
    http_allow_loopback: bool = Field(
        default=False, description="Let http_get reach loopback hosts over plain http (tests, dev only)."
    )
    http_max_bytes: int = Field(default=262_144, gt=0, description="Largest body http_get reads.")
    http_timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one http_get request.")
    tool_modules: NameList = Field(
        default=[],
        description="Python modules imported at startup, which register custom tools: comma-separated "
        "(mytools,acme.tools) or a JSON list.",
    )

    @model_validator(mode="after")
    def _jwt_settings_complete(self) -> SettingsContract:
        """Fail at startup, not at the first request, when JWT auth lacks what it verifies tokens with."""
        if self.auth_mode == "jwt":
            missing = [
                env_name(name)
                for name in ("jwt_issuer", "jwt_audience", "jwt_jwks_url")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"auth_mode 'jwt' needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _overlap_fits_in_a_chunk(self) -> SettingsContract:
        """Fail at startup, not at every document ingested: chunking refuses an overlap of half a chunk or
        more (:func:`agent_runtime.knowledge.chunking.split`), where each chunk would add no more than it
        repeats."""
        chunk, overlap = self.knowledge_chunk_tokens, self.knowledge_overlap_tokens
        if 2 * overlap >= chunk:
            raise ValueError(
                f"{env_name('knowledge_overlap_tokens')} ({overlap}) must be less than half of "
                f"{env_name('knowledge_chunk_tokens')} ({chunk}): lower the overlap to at most "
                f"{(chunk - 1) // 2}, or raise the chunk size above {2 * overlap}"
            )
        return self

    @model_validator(mode="after")
    def _conversations_in_a_file(self) -> SettingsContract:
        """The SQLite conversation store opens its file twice (a connection for the event loop, one for its
        thread): an in-memory database would be two databases."""
        if self.state_backend == "sqlite" and self.sqlite_path == ":memory:":
            raise ValueError(
                f"{env_name('sqlite_path')} ':memory:' cannot hold conversations (state_backend sqlite): "
                "name a file, e.g. .agentstage/state.db"
            )
        return self


def secret_fields() -> frozenset[str]:
    """Names of the settings whose values are secrets: those typed ``SecretStr``, and those marked ``secret``
    (a key or URL its client takes as text). No message, log or stack file shows or holds their values."""
    return frozenset(
        name
        for name, field in SettingsContract.model_fields.items()
        if "SecretStr" in str(field.annotation)
        or (isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("secret"))
    )


def cloud_required_fields() -> set[str]:
    """Names of the fields every cloud deployment must set."""
    return {
        name
        for name, field in SettingsContract.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("cloud_required")
    }


def env_name(field: str) -> str:
    """The environment variable that carries ``field``."""
    if field not in SettingsContract.model_fields:
        known = ", ".join(sorted(SettingsContract.model_fields))
        raise KeyError(f"'{field}' is not a runtime setting; known settings: {known}")
    return f"{ENV_PREFIX}{field.upper()}"


def env_for(values: dict[str, Any], *, cloud: bool = True) -> dict[str, Any]:
    """Map setting names to environment variables, checking them against the contract.

    Values may be any object (infrastructure passes Pulumi outputs); only the names are checked. With
    ``cloud=True`` every cloud-required field must be present, and an API key is refused.
    """
    env = {env_name(name): value for name, value in values.items()}
    if cloud:
        missing = sorted(cloud_required_fields() - values.keys())
        if missing:
            raise ValueError(f"runtime settings missing for a cloud deployment: {', '.join(missing)}")
        if "llm_api_key" in values:
            raise ValueError(
                "llm_api_key must not be set in the cloud: deployed agents authenticate with their cloud identity "
                "(Entra ID, an IAM role), and other secrets come from the vault"
            )
    return env
