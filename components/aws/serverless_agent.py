"""A serverless agent on AWS: the agent runtime in a Lambda function, as its own execution role.

- code: the runtime's Lambda package (``components.packaging``, the ``LAMBDA`` layout for the function's
  architecture), uploaded with the function; its sha256 decides when the code changes.
- environment: the runtime's settings (checked by its contract), encrypted with the stack's key.
- logs: a log group created first, with retention and the stack's key; JSON log format.
- tracing: X-Ray active tracing (the only X-Ray permission takes no resource scope).
- scale: reserved concurrency is the ceiling (and the worst-case spend per second); provisioned
  concurrency, when asked, keeps instances initialised on a published alias.
- no function URL: callers come through the API gateway, which authenticates them first.
- network: outside any VPC unless placed in one (``vpc``, from ``Network.place``): then the function runs
  in the private subnets with the functions' security group, and reaches AWS through VPC endpoints only.
- schedules (optional, :meth:`LambdaAgent.schedule`): an EventBridge rule invokes the function with a
  constant event, allowed by a permission for ``events.amazonaws.com`` on that rule's ARN only.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_aws import cloudwatch, lambda_

from agent_runtime.settings_contract import env_for
from components.aws.context import AwsContext
from components.aws.iam import Statement
from components.aws.logs import log_group, retention
from components.aws.network import VpcPlacement
from components.aws.role import ExecutionRole
from components.base import Component
from components.packaging import Package, vendoring_needed

HANDLER = "lambda_handler.handler"
RUNTIME = "python3.11"
RUNTIME_DEFAULTS: Mapping[str, str] = {"sqlite_path": "/tmp/agentstage/state.db"}
"""Lambda's code directory is read-only: anything embedded lives on /tmp."""
ARCHITECTURES = ("arm64", "x86_64")
ENVIRONMENT_LIMIT = 4096
"""Bytes of environment variables AWS takes per function, as Lambda measures them (:func:`environment_size`);
it refuses more when the function is created or updated."""


@dataclass(frozen=True)
class LambdaAgentArgs:
    """One agent function. ``runtime_settings`` are names of the runtime's Settings contract (every
    cloud-required one present); ``package`` is built for ``architecture``."""

    role: ExecutionRole
    package: Package
    runtime_settings: Mapping[str, pulumi.Input[str]]
    handler: str = HANDLER
    """The host's entry point (``module.function``): the API by default, or another one of the package."""
    agent_runtime: bool = True
    """Whether the function runs the agent runtime, whose cloud-required settings must then all be given;
    the gateway's token authorizer reads only its own few."""
    architecture: str = "arm64"
    memory_mb: int = 1024
    timeout_seconds: int = 29
    reserved_concurrency: int = 10
    provisioned_concurrency: int = 0
    log_retention_days: int = 30
    host_environment: Mapping[str, pulumi.Input[str]] = dataclasses.field(default_factory=dict)
    """Variables of the Lambda host itself, outside the runtime's settings (the settings secret's ARN)."""
    vpc: VpcPlacement | None = None
    """The private subnets and security group the function runs in (``Network.place(role)``), if any."""

    def __post_init__(self) -> None:
        check_architecture(self.package, self.architecture)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*", self.handler):
            raise ValueError(f"handler: '{self.handler}' is not module.function, such as {HANDLER}")
        if self.provisioned_concurrency > self.reserved_concurrency:
            raise ValueError("provisioned_concurrency cannot exceed reserved_concurrency")
        if self.vpc is not None and self.vpc.role is not self.role:
            raise ValueError(
                "vpc: the placement was granted to another execution role; call network.place(role) with "
                "this function's role"
            )


def environment(args: LambdaAgentArgs) -> dict[str, pulumi.Input[str]]:
    """The function's environment variables: the runtime's settings, and the host's own variables."""
    return {
        **(
            env_for({**RUNTIME_DEFAULTS, **args.runtime_settings}, cloud=True)
            if args.agent_runtime
            else env_for(dict(args.runtime_settings), cloud=False)
        ),
        **args.host_environment,
    }


def environment_size(variables: Mapping[str, pulumi.Input[str]]) -> int:
    """The size of ``variables`` as Lambda measures it against :data:`ENVIRONMENT_LIMIT`: the variables as one
    compact JSON object (``{"KEY":"value",...}``, the string its error quotes), non-ASCII escaped.

    A value not known yet (an Output: a table's name, a queue's URL, a secret's ARN) counts as empty, so
    while a program runs this is a lower bound, short by those values (a few hundred bytes in the kit's
    stacks); measured on a plan's recorded inputs, where every value is resolved, it is exact.
    """
    known = {key: value if isinstance(value, str) else "" for key, value in variables.items()}
    return len(json.dumps(known, separators=(",", ":")).encode())


def check_architecture(package: Package, architecture: str) -> None:
    """``package`` runs on a Lambda function of ``architecture``, or a ValueError says why not."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {architecture}")
    expected = "manylinux2014_aarch64" if architecture == "arm64" else "manylinux2014_x86_64"
    if package.platform != expected:
        raise ValueError(f"the package was built for {package.platform}, the function runs {expected}")


def check_deployable(name: str, package: Package) -> None:
    """A real engine deploys only a vendored package (the lean one has no dependencies inside)."""
    if vendoring_needed() and not package.vendored:
        raise ValueError(
            f"{name}: a real deployment needs the vendored package (its dependencies inside); the lean "
            "one is for offline plans only"
        )


class LambdaAgent(Component):
    """``agentstage:aws:ServerlessAgent``: the function, its log group and (optionally) a warm alias.

    Outputs: ``function_name``, ``function_arn``, ``invoke_arn`` (of the alias callers reach).
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        args: LambdaAgentArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "ServerlessAgent", name, opts)
        check_deployable(name, args.package)
        self._name, self._context = name, context
        function_name = context.name(name)
        logs = log_group(
            name, context, f"/aws/lambda/{function_name}", retention(args.log_retention_days), self
        )
        args.role.allow(
            "logs-write",
            Statement(
                "WriteOwnLogs",
                ("logs:CreateLogStream", "logs:PutLogEvents"),
                (pulumi.Output.concat(logs.arn, ":*"),),
            ),
        )
        args.role.allow(
            "xray-write",
            Statement("UploadTraces", ("xray:PutTraceSegments", "xray:PutTelemetryRecords"), ("*",)),
        )
        self.function = lambda_.Function(
            f"{name}-function",
            name=function_name,
            role=args.role.arn,
            runtime=RUNTIME,
            handler=args.handler,
            architectures=[args.architecture],
            code=pulumi.FileArchive(str(args.package.path)),
            source_code_hash=args.package.sha256,
            memory_size=args.memory_mb,
            timeout=args.timeout_seconds,
            reserved_concurrent_executions=args.reserved_concurrency,
            publish=args.provisioned_concurrency > 0,
            environment={"variables": environment(args)},
            kms_key_arn=context.key,
            tracing_config={"mode": "Active"},
            logging_config={"log_format": "JSON", "log_group": logs.name},
            vpc_config=_vpc_config(args.vpc),
            tags=context.tags,
            opts=self.child(depends_on=[logs, *([args.vpc.grant] if args.vpc else [])]),
        )
        self.function_name: pulumi.Output[str] = self.function.name
        self.function_arn: pulumi.Output[str] = self.function.arn
        self.invoke_arn: pulumi.Output[str] = self.function.invoke_arn
        if args.provisioned_concurrency:
            alias = lambda_.Alias(
                f"{name}-live",
                name="live",
                function_name=self.function.name,
                function_version=self.function.version,
                opts=self.child(),
            )
            lambda_.ProvisionedConcurrencyConfig(
                f"{name}-warm",
                function_name=self.function.name,
                qualifier=alias.name,
                provisioned_concurrent_executions=args.provisioned_concurrency,
                opts=self.child(),
            )
            self.function_arn = alias.arn
            self.invoke_arn = alias.invoke_arn
        self.register_outputs(
            {
                "function_name": self.function_name,
                "function_arn": self.function_arn,
                "invoke_arn": self.invoke_arn,
            }
        )

    def schedule(self, purpose: str, expression: str, event: Mapping[str, str]) -> cloudwatch.EventRule:
        """Invoke the function (its warm alias, if any) with ``event`` on ``expression`` (``rate(1 minute)``):
        an EventBridge rule ``<prefix>-<environment>-<function>-<purpose>`` on the default bus, its target,
        and the permission that lets that rule, and no other, invoke the function. EventBridge invokes
        asynchronously: a failed invocation is retried by Lambda (twice), then dropped."""
        rule = cloudwatch.EventRule(
            f"{self._name}-{purpose}",
            name=self._context.name(self._name, purpose),
            description=f"invokes {self._context.name(self._name)} with {json.dumps(event, sort_keys=True)}",
            schedule_expression=expression,
            tags=self._context.tags,
            opts=self.child(),
        )
        permission = lambda_.Permission(
            f"{self._name}-{purpose}-invoke",
            action="lambda:InvokeFunction",
            function=self.function_arn,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
            opts=self.child(),
        )
        cloudwatch.EventTarget(
            f"{self._name}-{purpose}-target",
            rule=rule.name,
            target_id=purpose,
            arn=self.function_arn,
            input=json.dumps(dict(event), sort_keys=True),
            opts=self.child(depends_on=[permission]),
        )
        return rule


def _vpc_config(placement: VpcPlacement | None) -> dict[str, list[pulumi.Input[str]]] | None:
    if placement is None:
        return None
    return {
        "subnet_ids": list(placement.subnet_ids),
        "security_group_ids": list(placement.security_group_ids),
    }
