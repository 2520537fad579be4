"""What every AWS stage builds the same way: the context, the key, the models, the state, the secrets, and
the settings every runtime of the stage shares. Growing from the pilot to the foundation keeps these
blocks and their names (``encryption``, ``models``, ``state``, ``secrets``), so their data carries over."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import get_caller_identity_output

from blueprints.packages import runtime_package
from blueprints.topology import Topology, stack_tags
from components.aws.context import AwsContext
from components.aws.encryption import Encryption
from components.aws.models import BedrockModels, ModelsArgs
from components.aws.monitoring import (
    ApiWatch,
    FunctionWatch,
    ModelPrice,
    Monitoring,
    MonitoringArgs,
    QueueWatch,
)
from components.aws.network import Network, NetworkArgs, VpcPlacement
from components.aws.role import ExecutionRole
from components.aws.secrets import SETTINGS_SECRET_VARIABLE, Secrets
from components.aws.serverless_agent import (
    ENVIRONMENT_LIMIT,
    LambdaAgent,
    LambdaAgentArgs,
    environment,
    environment_size,
)
from components.aws.state import StateTables, StateTablesArgs
from components.packaging import LAMBDA, Package
from core.config import NAMESPACE, StackConfig, StackConfigError

PROTECTED_ENVIRONMENTS = frozenset({"prod", "production"})
"""Environments whose tables refuse deletion (DynamoDB deletion protection): the stack's data outlives a
mistaken ``pulumi destroy``."""


def aws_context(config: StackConfig) -> AwsContext:
    """The stack's account (from the caller's identity), region, names and tags; no key yet."""
    return AwsContext(
        name_prefix=config.name_prefix,
        environment=config.environment,
        region=config.location,
        account_id=get_caller_identity_output().account_id,
        tags=stack_tags(config),
    )


def caller_auth_settings(config: StackConfig) -> dict[str, str]:
    """The runtime checks callers' tokens again behind API Gateway: same issuer and audience, and the roles
    and tenant claims it maps to tool access and ownership."""
    assert config.api.issuer is not None and config.api.keys_url is not None
    return {
        "auth_mode": "jwt",
        "jwt_issuer": config.api.issuer,
        "jwt_audience": config.api_audience,
        "jwt_jwks_url": config.api.keys_url,
    }


@dataclass
class AwsShared:
    """The blocks every runtime of an AWS stage uses: key, models, state tables and secrets."""

    config: StackConfig
    context: AwsContext
    topology: Topology
    encryption: Encryption
    models: BedrockModels
    state: StateTables
    secrets: Secrets
    network: Network | None = None
    fenced: Network | None = None
    """The network whose endpoints fence the stage's data (:mod:`components.aws.data_perimeter`), if any."""

    @classmethod
    def build(
        cls,
        config: StackConfig,
        *,
        s3_notifications: bool = False,
        network: NetworkArgs | None = None,
        perimeters: bool = False,
    ) -> AwsShared:
        """``s3_notifications``: S3 announces objects on one of the stack's encrypted queues. ``network``:
        the stage's VPC, built before the data it may fence: with ``perimeters``, the state tables and the
        settings secret deny their data outside the VPC's endpoints."""
        context = aws_context(config)
        topology = Topology(config, called={model.name: model.model for model in config.models})
        encryption = Encryption("encryption", context, s3_notifications=s3_notifications)
        context = context.with_key(encryption.key_arn)
        built = None if network is None else Network("network", context, network)
        fenced = built if perimeters else None
        models = BedrockModels(
            "models",
            context,
            ModelsArgs(
                model_ids=[model.model for model in config.models],
                severity_threshold=config.content_filter.severity_threshold,
                block_prompt_attacks=config.content_filter.block_prompt_attacks,
            ),
        )
        state = StateTables(
            "state",
            context,
            StateTablesArgs(
                deletion_protection=config.environment in PROTECTED_ENVIRONMENTS,
                tasks=topology.queued,
                perimeter=fenced and fenced.perimeter("dynamodb"),
            ),
        )
        secrets = Secrets("secrets", context, perimeter=fenced and fenced.perimeter("secretsmanager"))
        return cls(config, context, topology, encryption, models, state, secrets, built, fenced)

    def model_id(self, deployment: str) -> str:
        """What Bedrock calls the stack file's model ``deployment``."""
        return self.topology.called[deployment]

    def runtime_role(
        self, name: str, models: list[str] | None = None, role: ExecutionRole | None = None
    ) -> ExecutionRole:
        """A runtime's role - a new Lambda role, or ``role`` (a pod's) - granted the key, ``models``
        (Bedrock ids; all the stack's by default), the state tables and the settings secret."""
        role = role or ExecutionRole(name, self.context)
        self.encryption.grant_use(role)
        self.models.grant_invoke(role, models)
        self.state.grant_data_access(role)
        self.secrets.grant_read(role)
        return role

    @property
    def package(self) -> Package:
        """The runtime's Lambda package for the stack's architecture: every function of the stage runs it."""
        return runtime_package(LAMBDA.for_architecture(self.config.lambda_function.architecture))

    def function(
        self,
        name: str,
        role: ExecutionRole,
        settings: Mapping[str, pulumi.Input[str]],
        *,
        handler: str = "lambda_handler.handler",
        vpc: VpcPlacement | None = None,
        secrets: bool = True,
        agent_runtime: bool = True,
    ) -> LambdaAgent:
        """A function of the stage's package, sized by the stack's ``lambda`` section. ``secrets``: it reads
        the settings secret at cold start; ``agent_runtime``: it runs an agent runtime (not the authorizer)."""
        sizing = self.config.lambda_function
        args = LambdaAgentArgs(
            role=role,
            package=self.package,
            handler=handler,
            runtime_settings=settings,
            agent_runtime=agent_runtime,
            vpc=vpc,
            host_environment={SETTINGS_SECRET_VARIABLE: self.secrets.secret_arn} if secrets else {},
            architecture=sizing.architecture,
            memory_mb=sizing.memory_mb,
            timeout_seconds=sizing.timeout_seconds,
            reserved_concurrency=sizing.reserved_concurrency,
            provisioned_concurrency=sizing.provisioned_concurrency,
            log_retention_days=self.config.log_retention_days,
        )
        variables = environment(args)
        size = environment_size(variables)
        if size > ENVIRONMENT_LIMIT:
            raise StackConfigError(
                f"the Lambda function {self.context.name(name)} would get at least {size:,} bytes of environment "
                f"variables (names and values, as Lambda counts them); AWS takes at most {ENVIRONMENT_LIMIT:,}: "
                f"shorten {', '.join(self._longest_texts(settings, variables))}"
            )
        return LambdaAgent(name, self.context, args)

    def _longest_texts(
        self, settings: Mapping[str, pulumi.Input[str]], variables: Mapping[str, pulumi.Input[str]]
    ) -> list[str]:
        """What to shorten in a function's environment, longest first: the instructions and descriptions of
        the agents its runtime carries (AGENTSTAGE_AGENTS), else its largest variables."""
        agents = settings.get("agents")
        carried = (
            {definition["name"] for definition in json.loads(agents)} if isinstance(agents, str) else set()
        )
        texts = [
            (f"{NAMESPACE}:agents[{i}].{key}", getattr(agent, key))
            for i, agent in enumerate(self.config.agents)
            if agent.name in carried
            for key in ("instructions", "description")
        ]
        orchestrator = self.config.orchestrator
        if orchestrator is not None and orchestrator.name in carried:
            texts.append((f"{NAMESPACE}:orchestrator.instructions", orchestrator.instructions))
        if not texts:
            texts = [(name, value) for name, value in variables.items() if isinstance(value, str)]
        longest = sorted(texts, key=lambda text: len(text[1]), reverse=True)[:3]
        return [f"{key} ({len(text):,} characters)" for key, text in longest if text]

    def monitoring(
        self,
        functions: Sequence[FunctionWatch],
        api: ApiWatch,
        dead_letter_queues: Sequence[QueueWatch] = (),
        *,
        api_latency_alarm: bool = False,
        workloads: Sequence[str] = (),
    ) -> Monitoring:
        """Alarms to the stack's contacts, the per-agent dashboard and the monthly budget;
        ``api_latency_alarm``: the API's own p95 latency is alarmed too (at the stack's ``latency_p95_ms``);
        ``workloads``: the agents that run on EKS, alarmed on their runtime's own metrics."""
        config, alerts, budget = self.config, self.config.alerts, self.config.budget
        assert budget is not None  # every AWS stage requires it (StackConfig)
        thresholds: dict[str, float | int] = {}
        if alerts is not None:
            thresholds = {
                "server_error_percent": alerts.server_error_percent,
                "latency_p95_ms": alerts.latency_p95_ms,
                "daily_spend_usd": alerts.daily_spend_usd,
            }
        if api_latency_alarm:
            thresholds["api_latency_p95_ms"] = thresholds.get("latency_p95_ms", MonitoringArgs.latency_p95_ms)
        return Monitoring(
            "monitoring",
            self.context,
            MonitoringArgs(
                functions=functions,
                api=api,
                dead_letter_queues=dead_letter_queues,
                workloads=workloads,
                agents=list(self.topology.definitions),
                prices=[
                    ModelPrice(m.model, m.input_price_per_million or 0.0, m.output_price_per_million or 0.0)
                    for m in config.models
                ],
                contact_emails=budget.contact_emails,
                budget_usd=budget.amount,
                budget_thresholds=budget.thresholds,
                **thresholds,  # type: ignore[arg-type]
            ),
        )

    def runtime_settings(self, name: str, deadline_seconds: int) -> dict[str, pulumi.Input[str]]:
        """The settings of runtime ``name`` that do not depend on the stage's shape."""
        return {
            **self.topology.agent_settings(name),
            **self.models.runtime_settings(),
            **self.state.runtime_settings(),
            **caller_auth_settings(self.config),
            # Metrics as CloudWatch embedded-metric log lines: the per-agent dashboard and alarms read them.
            "telemetry_exporter": "emf",
            "deadline_seconds": str(deadline_seconds),
        }
