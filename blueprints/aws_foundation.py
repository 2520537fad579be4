"""Stage 2 on AWS - the orchestrated multi-agent foundation.

Requests enter through an API Gateway REST API behind a WAF web ACL: a Lambda authorizer checks each
caller's token and picks its application's usage plan (request rates and quotas); token quotas per
application, which API Gateway cannot count, are enforced by the runtime on the shared DynamoDB ledger.
The API invokes the orchestrator's function, which routes and delegates to the agents over SQS: one queue
per agent, each with a dead-letter queue; each role receives from its own queue only, and only the
orchestrator may send to the agents' queues. No worker loop runs on Lambda, so an EventBridge schedule
invokes the orchestrator's function every minute to sweep its queue and the agents', as a worker would
(tasks whose message was never sent get one). Every runtime calls Bedrock (through the stack's guardrail)
with its own role, for its own model and the embeddings only.

The knowledge index, where an agent searches it (``knowledge_search``), is Aurora PostgreSQL Serverless v2
with pgvector in a private VPC: documents uploaded to the documents bucket are announced by S3 on the
``knowledge-ingest`` queue, and the ingestion worker - the same runtime package in a function of its own,
running no agent - extracts, chunks and embeds them into the index as the database's writer; agents that
search it connect as its reader, through IAM database authentication. Functions in the VPC reach AWS APIs
through VPC endpoints only (no internet route).

Alarms and a per-agent dashboard watch it all; a monthly AWS Budget pages the stack's contacts.
"""

from __future__ import annotations

import json

import pulumi

from blueprints.aws_base import PROTECTED_ENVIRONMENTS, AwsShared, caller_auth_settings
from blueprints.topology import agents_json, task_queue
from components.aws.knowledge import KnowledgeSource, KnowledgeSourceArgs, bucket_arn, documents_bucket_name
from components.aws.monitoring import ApiWatch, FunctionWatch, QueueWatch
from components.aws.network import NetworkArgs, VpcPlacement
from components.aws.queues import QueueSpec, TaskQueues, TaskQueuesArgs
from components.aws.rest_gateway import DEFAULT_PLAN, RestGateway, RestGatewayArgs, UsagePlanSpec, usage_keys
from components.aws.role import ExecutionRole
from components.aws.serverless_agent import LambdaAgent
from components.aws.vector_database import VectorDatabase, VectorDatabaseArgs
from components.aws.waf import WebFirewall, WebFirewallArgs
from core.config import StackConfig
from core.config.aws import VectorDatabaseConfig, VpcConfig

GATEWAY = "gateway"
AUTHORIZER = "authorizer"
"""The gateway's token authorizer: its role and function are named after it."""
INGEST = "ingest"
INGEST_QUEUE = "knowledge-ingest"
DOCUMENTS = "documents"
KNOWLEDGE_TOOL = "knowledge_search"
IN_VPC_SERVICES = ("bedrock-runtime", "sqs", "secretsmanager")
"""What the functions in the VPC call besides S3 and DynamoDB (gateway endpoints): Bedrock, their queues,
and the settings secret (read at cold start; the database bootstrap reads the master secret)."""
API_HANDLER = "lambda_handler.main"
"""The orchestrator's entry point: its API (from the gateway) and its own task queue."""
TASK_HANDLER = "lambda_handler.tasks"
DOCUMENT_HANDLER = "lambda_handler.documents"
AUTHORIZER_HANDLER = "aws_authorizer.handler"
AUTHORIZER_P95_MS = 3_000
"""The authorizer runs before every uncached call: a slow one delays every request."""
APPLICATION_TOKENS = "gateway-tokens-per-minute"
"""The runtime budget that stands in for the token limit API Gateway does not have."""
READER, WRITER = "agentstage_reader", "agentstage_writer"
"""The knowledge database's users: agents that search it, and the ingestion worker."""
SWEEP = "sweep"
SWEEP_RATE = "rate(1 minute)"
SWEEP_EVENT = {"agentstage": "sweep"}
"""The event the orchestrator's schedule invokes it with, every minute (a worker loop sweeps its queue that
often): ``lambda_handler`` then sweeps the queues it delegates to (``agent_runtime.hosting.SWEEP_EVENT``)."""


class AwsFoundation:
    """The stage-2 system on AWS; see the module docstring."""

    def __init__(self, config: StackConfig) -> None:
        assert config.orchestrator and config.api_gateway and config.budget  # guaranteed by StackConfig
        self.config = config
        self.orchestrator = config.orchestrator.name
        self.api_gateway = config.api_gateway
        self.readers = [agent.name for agent in config.agents if KNOWLEDGE_TOOL in agent.tools]
        self.function = config.lambda_function
        self.shared = shared = AwsShared.build(
            config, s3_notifications=bool(self.readers), network=self._network_args(), perimeters=self.private
        )
        self.context = shared.context
        self.network = shared.network
        self.definitions = shared.topology.definitions
        self._prepare()
        self.roles = {
            name: shared.runtime_role(name, self._models_of(definition.model), self._role(name))
            for name, definition in self.definitions.items()
        }
        self.bus = self._bus()
        self.database = self._knowledge_index() if self.readers else None
        self.functions = {name: self._runtime(name) for name in self.definitions if self.serverless(name)}
        self.watched = [
            FunctionWatch(name, function.function_name) for name, function in self.functions.items()
        ]
        for name, function in self.functions.items():
            self.bus.trigger(
                task_queue(name), function, maximum_concurrency=self.function.reserved_concurrency
            )
        # The orchestrator sweeps its queue and its delegates' (agent_runtime.hosting.swept_queues).
        self.functions[self.orchestrator].schedule(SWEEP, SWEEP_RATE, SWEEP_EVENT)
        if self.readers:
            self._ingestion_worker()
        self._containers()
        self.gateway = self._gateway(self.functions[self.orchestrator])
        shared.monitoring(
            self.watched,
            ApiWatch.rest_api(self.gateway.api_name, self.gateway.stage_name),
            [QueueWatch(queue, name) for queue, name in self.bus.dead_letter_names.items()],
            api_latency_alarm=True,
            workloads=sorted(name for name in self.definitions if not self.serverless(name)),
        )
        self.firewall = WebFirewall(
            "firewall",
            self.context,
            WebFirewallArgs(
                stage_arn=self.gateway.stage_arn,
                max_body_bytes=self.api_gateway.max_body_kb * 1024,
                requests_per_window=self.api_gateway.requests_per_five_minutes_per_ip,
                log_retention_days=config.log_retention_days,
            ),
        )

    private = False
    """Whether the stage fences its data to the VPC and runs every function but the authorizer in it."""

    def _network_args(self) -> NetworkArgs | None:
        """The VPC: here only where an agent searches the knowledge index, for the functions that reach it."""
        if not self.readers:
            return None
        vpc = self.config.vpc or VpcConfig()
        return NetworkArgs(
            cidr=vpc.cidr,
            zones=vpc.availability_zones,
            interface_services=IN_VPC_SERVICES,
            flow_log_retention_days=self.config.log_retention_days,
        )

    def _prepare(self) -> None:
        """What a later stage builds before the runtimes' roles (the foundation: nothing)."""

    def _role(self, name: str) -> ExecutionRole | None:
        """Runtime ``name``'s own role, or None for a new Lambda role (the foundation's every runtime)."""
        return None

    def serverless(self, name: str) -> bool:
        """Whether runtime ``name`` runs on Lambda (the foundation's all do)."""
        return True

    def _placement(self, name: str, role: ExecutionRole) -> VpcPlacement | None:
        """Where runtime ``name``'s function runs: in the VPC where it searches the knowledge index."""
        return self.network.place(role) if self.network is not None and name in self.readers else None

    def _containers(self) -> None:
        """The runtimes that do not run on Lambda (the foundation: none)."""

    def _models_of(self, deployment: str) -> list[str]:
        """A runtime's model and the embeddings (memory search embeds queries): nothing else."""
        shared = self.shared
        return [shared.model_id(deployment), shared.model_id(self.config.memory.embedding_deployment)]

    def _bus(self) -> TaskQueues:
        timeout = self.function.timeout_seconds
        senders: dict[str, list[pulumi.Input[str]]] = {}
        for sender, queue in self.shared.topology.senders():
            senders.setdefault(queue, []).append(self.roles[sender].arn)
        owners = {task_queue(name): name for name in self.definitions}
        specs = [
            QueueSpec(queue, timeout, senders=tuple(arns), consumed_in_vpc=not self.serverless(owners[queue]))
            for queue, arns in senders.items()
        ]
        if self.readers:
            bucket = documents_bucket_name(self.context)
            specs.append(QueueSpec(INGEST_QUEUE, timeout, source=("s3.amazonaws.com", bucket_arn(bucket))))
        fenced = self.shared.fenced
        perimeter = fenced.perimeter("sqs") if fenced is not None else None
        bus = TaskQueues("bus", self.context, TaskQueuesArgs(queues=specs, perimeter=perimeter))
        sends: dict[str, list[str]] = {}
        for sender, queue in self.shared.topology.senders():
            sends.setdefault(sender, []).append(queue)
        for name, role in self.roles.items():
            bus.grant_receive(role, task_queue(name))
            bus.grant_send(role, sends[name])
        return bus

    def _knowledge_index(self) -> VectorDatabase:
        """The Aurora cluster holding the knowledge index (only where an agent searches it)."""
        assert self.network is not None  # built with the shared blocks wherever an agent searches the index
        network = self.network
        sizing = self.config.vector_database or VectorDatabaseConfig()
        return VectorDatabase(
            "knowledge",
            self.context,
            VectorDatabaseArgs(
                network=network,
                bootstrap_package=self.shared.package,
                dimensions=self.config.memory.dimensions,
                architecture=self.function.architecture,
                min_capacity=sizing.min_capacity,
                max_capacity=sizing.max_capacity,
                seconds_until_auto_pause=sizing.seconds_until_auto_pause,
                backup_retention_days=sizing.backup_retention_days,
                deletion_protection=self.config.environment in PROTECTED_ENVIRONMENTS,
                log_retention_days=self.config.log_retention_days,
            ),
        )

    def _runtime(self, name: str) -> LambdaAgent:
        """Runtime ``name``'s function: the orchestrator serves the API and its queue, an agent its queue;
        an agent that searches the knowledge index runs in the VPC and connects as the index's reader."""
        orchestrator = name == self.orchestrator
        role = self.roles[name]
        settings = self.runtime_settings(name)
        if orchestrator:
            # Larger bodies never reach it: the firewall refuses them with the same 413.
            settings["max_request_bytes"] = str(self.api_gateway.max_body_kb * 1024)
        return self.shared.function(
            name,
            role,
            settings,
            handler=API_HANDLER if orchestrator else TASK_HANDLER,
            vpc=self._placement(name, role),
        )

    def runtime_settings(self, name: str) -> dict[str, pulumi.Input[str]]:
        """Runtime ``name``'s settings wherever it runs; an agent that searches the knowledge index is
        granted connecting to it as its reader."""
        knowledge: dict[str, pulumi.Input[str]] = {"knowledge_backend": "none"}
        if name in self.readers:
            assert self.database is not None
            self.database.grant_connect(self.roles[name], READER)
            knowledge = dict(self.database.runtime_settings(READER))
        return {
            **self.shared.runtime_settings(name, self.function.timeout_seconds - 1),
            **self._bus_settings(name),
            "budgets": self._budgets(),
            **knowledge,
        }

    def _ingestion_worker(self) -> None:
        """The knowledge ingestion worker: its own role and function in the VPC, fed by the ingest queue.

        Its role holds exactly: the key, the embedding model, reading the documents bucket, receiving from
        the ingest queue, connecting as the index's writer, and its network interfaces - no state tables,
        no settings secret, no task queue. It runs no agent (``agents`` is empty) and takes no tasks."""
        assert self.network is not None and self.database is not None
        shared, config = self.shared, self.config
        source = KnowledgeSource(
            DOCUMENTS,
            self.context,
            documents_bucket_name(self.context),
            KnowledgeSourceArgs(
                queues=self.bus,
                queue=INGEST_QUEUE,
                perimeter=shared.fenced.perimeter("s3") if shared.fenced is not None else None,
            ),
        )
        role = ExecutionRole(INGEST, self.context)
        shared.encryption.grant_use(role)
        embeddings = shared.model_id(config.memory.embedding_deployment)
        shared.models.grant_invoke(role, [embeddings])
        source.grant_read(role)
        self.bus.grant_receive(role, INGEST_QUEUE)
        self.database.grant_connect(role, WRITER)
        settings: dict[str, pulumi.Input[str]] = {
            "environment": config.environment,
            "agents": agents_json([]),
            "embedding_model": embeddings,
            "tasks_enabled": "false",
            "telemetry_exporter": "emf",
            "deadline_seconds": str(self.function.timeout_seconds - 1),
            **shared.models.runtime_settings(),
            **self.database.runtime_settings(WRITER),
            "knowledge_manage_index": "true",
            "knowledge_source": source.source_url,
            "ingest_queue": self.bus.queue_names[INGEST_QUEUE],
            **caller_auth_settings(config),
        }
        worker = self.shared.function(
            INGEST, role, settings, handler=DOCUMENT_HANDLER, vpc=self.network.place(role), secrets=False
        )
        self.watched.append(FunctionWatch(INGEST, worker.function_name))
        self.bus.trigger(INGEST_QUEUE, worker, maximum_concurrency=self.function.reserved_concurrency)

    def _bus_settings(self, name: str) -> dict[str, pulumi.Input[str]]:
        """SQS by the queues' physical names (SQS names are per account and region, so they are prefixed),
        and the deliveries their redrive allows (a pushed message does not say it)."""
        names = self.bus.queue_names
        settings: dict[str, pulumi.Input[str]] = {
            "bus_backend": "sqs",
            "task_queue": names[task_queue(name)],
            "bus_max_delivery_count": str(self.bus.max_receive_count),
        }
        if name == self.orchestrator:
            agents = [agent.name for agent in self.config.agents]
            settings["agent_queues"] = pulumi.Output.all(*(names[task_queue(a)] for a in agents)).apply(
                lambda physical: json.dumps(dict(zip(agents, physical, strict=True)))
            )
        return settings

    def _budgets(self) -> str:
        """The stack's runtime budgets and the per-application token limit of the gateway section."""
        gateway = self.api_gateway
        rules = [rule.model_dump(mode="json", exclude_none=True) for rule in self.config.runtime_budgets]
        rules.append(
            {
                "name": APPLICATION_TOKENS,
                "scope": "application",
                "window_seconds": 60,
                "tokens": gateway.tokens_per_minute,
            }
        )
        return json.dumps(rules, separators=(",", ":"))

    def _gateway(self, orchestrator: LambdaAgent) -> RestGateway:
        gateway = self.api_gateway
        plans = [
            UsagePlanSpec(
                DEFAULT_PLAN,
                gateway.default_rate_limit,
                gateway.default_burst_limit,
                gateway.default_requests_per_day,
            ),
            *(
                UsagePlanSpec(plan.client_id, plan.rate_limit, plan.burst_limit, plan.requests_per_day)
                for plan in gateway.usage_plans
            ),
        ]
        role = ExecutionRole(AUTHORIZER, self.context)
        self.shared.encryption.grant_use(role)
        authorizer = self.shared.function(
            AUTHORIZER,
            role,
            {
                **caller_auth_settings(self.config),
                "gateway_usage_plans": json.dumps(usage_keys(self.context, plans), sort_keys=True),
            },
            handler=AUTHORIZER_HANDLER,
            secrets=False,
            agent_runtime=False,
        )
        self.watched.append(FunctionWatch(AUTHORIZER, authorizer.function_name, AUTHORIZER_P95_MS))
        return RestGateway(
            GATEWAY,
            self.context,
            RestGatewayArgs(
                backend=orchestrator,
                authorizer=authorizer,
                plans=plans,
                rate_limit=gateway.rate_limit,
                burst_limit=gateway.burst_limit,
                log_retention_days=self.config.log_retention_days,
                account_logging_role=gateway.account_logging_role_arn,
            ),
        )


def deploy_aws_foundation(config: StackConfig) -> None:
    foundation = AwsFoundation(config)
    pulumi.export("url", foundation.gateway.url)
