"""Which VPC endpoints an IAM action needs: what a workload in a VPC without internet must be able to reach.

A function or pod in a private subnet reaches an AWS API only through a VPC endpoint of that API: an
interface endpoint (``com.amazonaws.<region>.<service>``, private DNS) or, for S3 and DynamoDB, a gateway
endpoint (a route to the service's prefix list). The actions a workload's role is granted say which APIs
it calls, so the endpoints a stage needs can be derived from its IAM policies - by the tests of a stage's
graph and by the policy rules - instead of being listed by hand and drifting.

Pure data and functions: the policy rules import this module without any cloud SDK. A service prefix that
is not mapped raises :class:`UnknownServicePrefix`, so a new service cannot slip into a stage without
someone deciding which endpoint it needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

GATEWAY_SERVICES = ("s3", "dynamodb")
"""Services reached through gateway endpoints (route-table entries, no hourly charge)."""

ENDPOINTS_BY_PREFIX: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "autoscaling": ("autoscaling",),
        "cloudwatch": ("monitoring",),  # CloudWatch metrics and alarms: monitoring.<region>.amazonaws.com
        "dynamodb": ("dynamodb",),
        # ECR: the API (tokens, image manifests) and the Docker registry; the layers themselves are
        # downloaded from S3, so pulling an image also needs the S3 gateway endpoint.
        "ecr": ("ecr.api", "ecr.dkr", "s3"),
        "ec2": ("ec2",),
        "eks": ("eks",),
        "eks-auth": ("eks-auth",),  # the Pod Identity Agent's AssumeRoleForPodIdentity
        "elasticloadbalancing": ("elasticloadbalancing",),
        "events": ("events",),
        "execute-api": ("execute-api",),
        "kms": ("kms",),
        "lambda": ("lambda",),
        "logs": ("logs",),
        "rds": ("rds",),
        "rds-db": (),  # rds-db:connect authorises a database login (an IAM token), not an API call
        "s3": ("s3",),
        "secretsmanager": ("secretsmanager",),
        "sns": ("sns",),
        "sqs": ("sqs",),
        "ssm": ("ssm",),
        "states": ("states",),
        "sts": ("sts",),
        "xray": ("xray",),
    }
)
"""IAM service prefix -> the endpoint services its actions are called through (Bedrock: see below)."""

BEDROCK_RUNTIME_ACTIONS = frozenset(
    {
        "ApplyGuardrail",
        "CountTokens",
        "GetAsyncInvoke",
        "InvokeModel",  # also authorises Converse
        "InvokeModelWithBidirectionalStream",
        "InvokeModelWithResponseStream",  # also authorises ConverseStream
        "ListAsyncInvokes",
        "StartAsyncInvoke",
    }
)
"""``bedrock:`` actions served by ``bedrock-runtime`` (inference)."""
BEDROCK_AGENT_RUNTIME_ACTIONS = frozenset(
    {"InvokeAgent", "InvokeFlow", "InvokeInlineAgent", "Rerank", "Retrieve", "RetrieveAndGenerate"}
)
"""``bedrock:`` actions served by ``bedrock-agent-runtime`` (agents, flows, knowledge bases)."""


class UnknownServicePrefix(ValueError):
    """An action of a service this module does not map to endpoints."""


@dataclass(frozen=True)
class RequiredEndpoints:
    """The endpoint services a set of actions needs, sorted: interface endpoints and gateway endpoints."""

    interface: tuple[str, ...]
    gateway: tuple[str, ...]


def endpoint_services(action: str) -> tuple[str, ...]:
    """The endpoint services ``action`` (``sqs:SendMessage``) is called through; empty for ``rds-db:``.

    ``bedrock:`` actions are served by three APIs - ``bedrock-runtime`` (inference), ``bedrock-agent-runtime``
    (agents, knowledge bases) and ``bedrock`` (the control plane) - so they are mapped by name, and a
    wildcard ``bedrock:`` action is refused: it could need any of the three.
    """
    prefix, separator, name = action.partition(":")
    if not separator or not prefix or not name:
        raise ValueError(f"action: '{action}' is not an IAM action such as sqs:SendMessage")
    if prefix == "bedrock":
        return (_bedrock_endpoint(action, name),)
    services = ENDPOINTS_BY_PREFIX.get(prefix)
    if services is None:
        raise UnknownServicePrefix(
            f"action: '{action}' is of the service '{prefix}', whose VPC endpoint is not known; add '{prefix}' "
            "to core.aws_endpoints.ENDPOINTS_BY_PREFIX with the endpoint services its actions are called through"
        )
    return services


def required_endpoints(actions: Iterable[str]) -> RequiredEndpoints:
    """Every endpoint ``actions`` need, split into interface and gateway endpoints."""
    needed = {service for action in actions for service in endpoint_services(action)}
    return RequiredEndpoints(
        interface=tuple(sorted(needed - set(GATEWAY_SERVICES))),
        gateway=tuple(sorted(needed & set(GATEWAY_SERVICES))),
    )


def _bedrock_endpoint(action: str, name: str) -> str:
    if "*" in name or "?" in name:
        raise ValueError(
            f"action: '{action}' may be served by bedrock-runtime, bedrock-agent-runtime or bedrock; name the "
            "actions instead of a wildcard"
        )
    if name in BEDROCK_RUNTIME_ACTIONS:
        return "bedrock-runtime"
    if name in BEDROCK_AGENT_RUNTIME_ACTIONS:
        return "bedrock-agent-runtime"
    return "bedrock"
