"""Sections only the aws cloud has (the agents' Lambda functions, the API Gateway, the VPC, the EKS cluster),
and what the neutral sections must say on AWS (:func:`check_aws`): Bedrock model ids, an OpenID Connect
issuer for callers, an AWS region, and on the enterprise stage agents on EKS from the stack's own ECR
repository, by digest."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from core.aws_endpoints import ENDPOINTS_BY_PREFIX, GATEWAY_SERVICES
from core.config.base import NAMESPACE, Strict, did_you_mean, pattern
from core.config.kubernetes import AZURE_CLUSTER_KEYS, OWN_CLUSTER_KEYS
from core.config.regions import check_location
from core.config.sections import IAM_ROLE_ARN

if TYPE_CHECKING:
    from core.config.sections import KubernetesConfig
    from core.config.stack import StackConfig

BEDROCK_MODEL = re.compile(r"([a-z]{2,4}\.)?[a-z0-9-]+\.[a-z0-9][a-z0-9.:-]*")
"""A Bedrock foundation-model id (``amazon.nova-lite-v1:0``) or a cross-region inference profile id
(``eu.anthropic.claude-3-5-haiku-20241022-v1:0``). Matched whole (fullmatch), like every pattern here: one
ending in $ also matches before a final newline, which would then reach IAM ARNs and the authorizer."""
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,256}")
_URI = re.compile(r"[a-z][a-z0-9+.-]*://[^\s]+")
TITAN_EMBEDDINGS_V2 = "amazon.titan-embed-text-v2:0"
TITAN_V2_DIMENSIONS = (256, 512, 1024)
API_GATEWAY_TIMEOUT_SECONDS = 30
"""An API Gateway HTTP API ends every request at 30 s, whatever the integration still does."""


class LambdaConfig(Strict):
    """Sizing of the agents' Lambda functions (the AWS pilot's compute).

    ``timeoutSeconds`` stays below API Gateway's 30 s so the runtime answers (with its own deadline error)
    before the gateway cuts the connection; ``reservedConcurrency`` is both the scale ceiling and the
    worst-case spend per second; ``provisionedConcurrency`` keeps instances initialised (no cold starts,
    billed while idle).
    """

    memory_mb: int = Field(
        default=1024, ge=512, le=10240, description="Memory (and with it CPU) per instance."
    )
    architecture: Literal["arm64", "x86_64"] = Field(
        default="arm64", description="Graviton (arm64) is cheaper."
    )
    timeout_seconds: int = Field(default=29, ge=5, lt=API_GATEWAY_TIMEOUT_SECONDS)
    reserved_concurrency: int = Field(default=10, ge=1, le=1000)
    provisioned_concurrency: int = Field(default=0, ge=0, le=100)


class UsagePlanConfig(Strict):
    """A calling application's own API Gateway usage plan: its request rate, burst and daily quota.

    The gateway's Lambda authorizer selects the plan from the validated token's client id (``azp``,
    ``client_id`` or ``appid``); applications without a plan of their own share the default plan.
    """

    client_id: str = Field(
        pattern=pattern(r"^[A-Za-z0-9._:-]{1,128}$", "1-128 letters, digits, '.', '_', ':' or '-'"),
        description="The application's client id as its tokens carry it.",
    )
    rate_limit: float = Field(gt=0, le=10_000, description="Steady requests per second.")
    burst_limit: int = Field(ge=1, le=5_000, description="Requests admitted at once above the rate.")
    requests_per_day: int | None = Field(default=None, ge=1, description="Daily quota; none by default.")


class AwsGatewayConfig(Strict):
    """The AWS foundation's front door: an API Gateway REST API with a WAF web ACL.

    API Gateway enforces the request rates (per stage and per application's usage plan) and the WAF its
    rules; it has no token-limit policy, so ``tokensPerMinute`` per calling application is enforced by the
    runtime on the stage's shared ledger (DynamoDB), answering 429 with ``Retry-After`` like the Azure
    gateway.
    """

    rate_limit: float = Field(default=50.0, gt=0, le=10_000, description="Stage-wide requests per second.")
    burst_limit: int = Field(default=100, ge=1, le=5_000, description="Stage-wide burst.")
    default_rate_limit: float = Field(
        default=10.0, gt=0, le=10_000, description="Per application without a usage plan of its own."
    )
    default_burst_limit: int = Field(default=20, ge=1, le=5_000)
    default_requests_per_day: int | None = Field(default=None, ge=1)
    usage_plans: tuple[UsagePlanConfig, ...] = ()
    tokens_per_minute: int = Field(default=20_000, ge=100, description="Token limit per calling application.")
    requests_per_five_minutes_per_ip: int = Field(
        default=2_000, ge=100, le=2_000_000_000, description="The WAF's rate-based rule per client address."
    )
    account_logging_role_arn: str | None = Field(
        default=None,
        pattern=IAM_ROLE_ARN,
        description="Keep this existing account-level API Gateway logging role instead of setting the stack's "
        "(one role per account and region serves every REST API there).",
    )
    max_body_kb: int = Field(
        default=64,
        ge=16,
        le=64,
        description="Larger request bodies are blocked by the WAF (16-64 KB: what it can inspect on API Gateway).",
    )


def _ec2_id(prefix: str, what: str) -> str:
    """An EC2 id: ``<prefix>-`` and 8 (older resources) or 17 hexadecimal digits."""
    return pattern(
        rf"^{prefix}-([0-9a-f]{{8}}|[0-9a-f]{{17}})$",
        f"{what} id: {prefix}- and 8 or 17 lowercase hexadecimal digits (e.g. {prefix}-0123456789abcdef0)",
    )


SubnetId = Annotated[str, Field(pattern=_ec2_id("subnet", "a subnet"))]
RouteTableId = Annotated[str, Field(pattern=_ec2_id("rtb", "a route table"))]
EndpointId = Annotated[str, Field(pattern=_ec2_id("vpce", "a VPC endpoint"))]
SecurityGroupId = Annotated[str, Field(pattern=_ec2_id("sg", "a security group"))]

SUBNET_ROLES = ("lambda", "nodes", "endpoints", "data")
"""The enterprise network's subnet roles: the functions' interfaces, the EKS nodes (and their pods), the
interface endpoints, the database (components.aws.network.ROLES)."""
MIN_ZONES = 2
"""An interface endpoint, an EKS cluster and a DB subnet group each need subnets in two zones or more."""
BEDROCK_ENDPOINTS = ("bedrock", "bedrock-agent-runtime", "bedrock-runtime")
"""The endpoint services of ``bedrock:`` actions (core.aws_endpoints maps them by action name)."""
INTERFACE_SERVICES = frozenset(
    {service for services in ENDPOINTS_BY_PREFIX.values() for service in services} | set(BEDROCK_ENDPOINTS)
) - set(GATEWAY_SERVICES)
"""Every interface endpoint service a stage's IAM actions can need: what an existing endpoint may serve."""
VPC_BLOCK_PREFIXES = range(16, 29)
"""The sizes of a VPC's CIDR blocks AWS allows: /16 to /28."""
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(r) for r in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
"""RFC 1918's private ranges: where a VPC the stack creates takes its addresses."""


def _network(value: str) -> ipaddress.IPv4Network:
    """``value`` as an IPv4 CIDR, or an error that says what it should be: the network address when only
    host bits are wrong (AWS keeps a range by its network address, so the stack would drift from it)."""
    not_a_cidr = f"'{value}' is not an IPv4 CIDR <address>/<prefix length>, e.g. 10.60.0.0/16"
    if "/" not in value:
        raise ValueError(not_a_cidr)
    with contextlib.suppress(ValueError):
        return ipaddress.IPv4Network(value)
    try:
        loose = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        raise ValueError(not_a_cidr) from None
    raise ValueError(f"'{value}' has host bits set; write its network address {loose.with_prefixlen}")


class ExistingVpcConfig(Strict):
    """A VPC you already run (hub-and-spoke estates): the stack creates no VPC, subnet, route table or flow
    log, only its security groups, the S3 and DynamoDB gateway endpoints on ``routeTableIds`` and the
    interface endpoints the VPC does not have yet. It must be in the stack's account and region.

    ``cidrs``: the VPC's CIDR blocks as the VPC has them (``aws ec2 describe-vpcs --vpc-ids <id> --query
    "Vpcs[].CidrBlockAssociationSet[].CidrBlock"``); a Kubernetes network policy takes ranges known when the
    program runs, so they are stated here rather than read from AWS. ``subnetIds``: per role, private subnets in two zones or more. ``endpointIds``: service -> the id of an
    interface endpoint with private DNS the VPC already has (a VPC takes one per service), used as it is and
    named in the stage's data perimeters; ``endpointSecurityGroupIds`` are those endpoints' security groups,
    which must admit HTTPS from the VPC.
    """

    vpc_id: str = Field(pattern=_ec2_id("vpc", "a VPC"))
    cidrs: tuple[str, ...] = Field(
        min_length=1,
        description="The VPC's IPv4 CIDR blocks, primary and secondary: the agents' pods may connect to them "
        "(endpoints, database) and nowhere else, so their network policy names them.",
    )
    subnet_ids: dict[str, tuple[SubnetId, ...]] = Field(
        description="Role (lambda, nodes, endpoints, data) -> its private subnets, one per zone."
    )
    route_table_ids: tuple[RouteTableId, ...] = Field(
        min_length=1,
        description="The route tables of the lambda and nodes subnets (gateway endpoint routes).",
    )
    endpoint_ids: dict[str, EndpointId] = Field(default_factory=dict)
    endpoint_security_group_ids: tuple[SecurityGroupId, ...] = ()

    @field_validator("cidrs")
    @classmethod
    def _vpc_blocks(cls, cidrs: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in cidrs:
            if not VPC_BLOCK_PREFIXES.start <= _network(cidr).prefixlen < VPC_BLOCK_PREFIXES.stop:
                raise ValueError(f"'{cidr}' is not a VPC's CIDR block: those are /16 to /28")
        if len(set(cidrs)) != len(cidrs):
            raise ValueError("each block may be listed once")
        return cidrs

    @model_validator(mode="after")
    def _complete(self) -> ExistingVpcConfig:
        roles = set(self.subnet_ids)
        if roles != set(SUBNET_ROLES):
            unknown, missing = sorted(roles - set(SUBNET_ROLES)), sorted(set(SUBNET_ROLES) - roles)
            raise ValueError(
                f"subnetIds needs exactly the roles {', '.join(SUBNET_ROLES)} (the enterprise network's subnets "
                "per role)"
                + (f"; not a role: {', '.join(unknown)}" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else "")
            )
        for role, subnets in self.subnet_ids.items():
            if len(set(subnets)) < MIN_ZONES:
                raise ValueError(
                    f"subnetIds.{role}: give {MIN_ZONES} or more different subnets, one per availability zone "
                    "(an interface endpoint, the EKS cluster and a DB subnet group each span two zones)"
                )
        listed = [subnet for subnets in self.subnet_ids.values() for subnet in subnets]
        repeated = sorted({subnet for subnet in listed if listed.count(subnet) > 1})
        if repeated:
            raise ValueError(f"subnetIds: {', '.join(repeated)} listed more than once; a subnet has one role")
        for service in self.endpoint_ids:
            if service in GATEWAY_SERVICES:
                raise ValueError(
                    f"endpointIds.{service}: {service} is reached through the stack's own gateway endpoint "
                    "on routeTableIds; remove it"
                )
            if service not in INTERFACE_SERVICES:
                raise ValueError(
                    f"endpointIds.{service}: not an interface endpoint service the stage calls (e.g. sqs, "
                    f"bedrock-runtime, ecr.dkr){did_you_mean(service, sorted(INTERFACE_SERVICES))}"
                )
        if bool(self.endpoint_ids) != bool(self.endpoint_security_group_ids):
            raise ValueError(
                "endpointSecurityGroupIds: give the security groups of the VPC's own endpoints exactly when "
                "endpointIds names some (the functions and nodes send HTTPS to them)"
            )
        return self


class VpcConfig(Strict):
    """The private network of the stage's data services and the workloads that reach them: a VPC the stack
    creates (``cidr``, ``availabilityZones``) or, on the enterprise stage, one you bring (``existing``)."""

    cidr: str = Field(
        default="10.60.0.0/16",
        pattern=pattern(
            r"^\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-4])$", "an IPv4 range from /16 to /24, e.g. 10.60.0.0/16"
        ),
    )
    availability_zones: int = Field(default=2, ge=2, le=3, description="Zones with a private subnet each.")
    existing: ExistingVpcConfig | None = Field(
        default=None, description="enterprise: a VPC you already run, used instead of creating one."
    )

    @field_validator("cidr")
    @classmethod
    def _private(cls, cidr: str) -> str:
        network = _network(cidr)
        if not any(network.subnet_of(r) for r in PRIVATE_RANGES):
            raise ValueError(
                f"'{cidr}' is not a private range; use one inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
            )
        return cidr

    @model_validator(mode="after")
    def _created_or_brought(self) -> VpcConfig:
        layout = [to_camel(key) for key in ("cidr", "availability_zones") if key in self.model_fields_set]
        if self.existing is not None and layout:
            raise ValueError(
                f"{' and '.join(layout)} describe a VPC the stack creates; with existing the VPC and its "
                "subnets are yours: remove them"
            )
        return self


class VectorDatabaseConfig(Strict):
    """The shared knowledge index: Aurora PostgreSQL Serverless v2 with pgvector.

    ``minCapacity: 0`` lets the cluster pause when idle (storage is then all it costs); the first query
    after a pause waits for it to resume (about 15 seconds).
    """

    min_capacity: float = Field(
        default=0.0, ge=0, le=256, description="Aurora capacity units (ACU) when idle."
    )
    max_capacity: float = Field(default=4.0, ge=1, le=256, description="ACU ceiling under load.")
    seconds_until_auto_pause: int = Field(default=900, ge=300, le=86_400)
    backup_retention_days: int = Field(default=7, ge=1, le=35)


EKS_KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33")
"""The Kubernetes minors the kit pins its EKS add-ons for: a Cluster Autoscaler release is made per minor
(components.aws.cluster_autoscaler.RELEASES) and KEDA is tested on these (components.aws.keda)."""
EKS_DEFAULT_KUBERNETES_VERSION = EKS_KUBERNETES_VERSIONS[-1]
"""What an absent ``kubernetes.kubernetesVersion`` means on aws: the newest pinned minor, not EKS's own
default, which moves with EKS's releases and could leave the add-ons' pins behind."""
PARTITION = "aws"
"""The AWS partition the kit's components are written for (components.aws.context.PARTITION)."""
IMAGE_CACHE_SECRET_PREFIX = "ecr-pullthroughcache/"
"""ECR reads a pull-through cache rule's upstream credentials only from a secret whose name starts so."""

AMI_ARCHITECTURES: Mapping[str, str] = MappingProxyType(
    {"AL2023_x86_64_STANDARD": "x86_64", "AL2023_ARM_64_STANDARD": "arm64"}
)
"""The EKS-optimized Amazon Linux 2023 AMI types and the processors they run on."""
_GRAVITON_FAMILY = re.compile(r"a1|[a-z]+\d+[a-z]*g[a-z]*")
"""AWS Graviton (arm64) families: ``a1``, and those whose attributes after the generation hold a ``g``
(``t4g``, ``m7g``, ``c7gn``, ``x2gd``, ``im4gn``, ``is4gen``, ``g5g``); ``g5`` and ``gr6`` are x86_64."""
_SECRET_ARN = re.compile(
    rf"arn:{PARTITION}:secretsmanager:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}}):secret:"
    r"(?P<name>[A-Za-z0-9/_+=.@-]+)-[A-Za-z0-9]{6}"
)


def instance_architecture(instance_type: str) -> str:
    """``arm64`` for an AWS Graviton instance type (``m7g.large``), else ``x86_64``."""
    family = instance_type.split(".", 1)[0].split("-", 1)[0]
    return "arm64" if _GRAVITON_FAMILY.fullmatch(family) else "x86_64"


def _cidrs(cidrs: tuple[str, ...], *, public: bool) -> tuple[str, ...]:
    for cidr in cidrs:
        network = _network(cidr)
        if network.prefixlen == 0:
            raise ValueError(
                f"'{cidr}' is the whole internet: anyone could reach the cluster's API and try credentials "
                "on it; list only your networks (an office, a VPN or CI egress range)"
            )
        if public and not network.is_global:
            raise ValueError(
                f"'{cidr}' is not a public range: the public endpoint sees callers' public addresses; "
                "networks routed to the VPC reach the private endpoint through apiClientCidrs"
            )
        if not public and not network.is_private:
            raise ValueError(
                f"'{cidr}' is not a private range: apiClientCidrs are networks routed to the VPC (a VPN, a "
                "peered or Transit Gateway network); public ranges go in publicAccessCidrs"
            )
    if len(set(cidrs)) != len(cidrs):
        raise ValueError("each range may be listed once")
    return cidrs


class EksConfig(Strict):
    """The enterprise stage's EKS cluster on aws: its managed node group and who reaches its API.

    The API endpoint is private: ``pulumi up`` and ``kubectl`` run from the VPC or from ``apiClientCidrs``
    (networks routed to it, admitted on 443). ``publicAccessCidrs`` turns the public endpoint on for those
    ranges only. The node group is resized between ``minSize`` and ``maxSize`` by the Cluster Autoscaler as
    KEDA adds and removes agent workers; one node at least stays up for KEDA, the autoscaler and CoreDNS.
    Nodes have no internet: the add-ons' images come through ECR pull-through caches, and ghcr.io (KEDA's)
    needs a login, read from ``imageCacheCredentialsArn``.
    """

    instance_types: tuple[
        Annotated[
            str,
            Field(
                pattern=pattern(
                    r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$",
                    "an EC2 instance type <family>.<size>, e.g. m6i.large or m7g.large",
                )
            ),
        ],
        ...,
    ] = Field(default=("m6i.large",), min_length=1, description="Of the AMI's architecture.")
    ami_type: Literal["AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD"] = Field(
        default="AL2023_x86_64_STANDARD", description="AL2023_ARM_64_STANDARD for Graviton instance types."
    )
    min_size: int = Field(
        default=1, ge=1, description="Nodes kept at least: KEDA, the autoscaler and CoreDNS need one."
    )
    max_size: int = Field(default=3, ge=1)
    desired_size: int = Field(default=2, ge=1, description="Nodes at creation; the autoscaler moves it.")
    root_volume_gb: int = Field(
        default=50,
        ge=20,
        le=500,
        description="Each node's root volume (images, logs), encrypted with the stack's key.",
    )
    public_access_cidrs: tuple[str, ...] = Field(
        default=(),
        max_length=40,
        description="Public IPv4 ranges admitted to a public API endpoint; none keeps the API private.",
    )
    api_client_cidrs: tuple[str, ...] = Field(
        default=(),
        description="Private IPv4 ranges routed to the VPC (a VPN) admitted to the private API endpoint.",
    )
    image_cache_credentials_arn: str = Field(
        description='The full ARN of a secret named ecr-pullthroughcache/<name> holding {"username", '
        '"accessToken"}: a GitHub user and a classic token with read:packages only, for ECR\'s pull-through '
        "cache of ghcr.io (KEDA's images)."
    )

    @field_validator("instance_types")
    @classmethod
    def _listed_once(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({t for t in types if types.count(t) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        return types

    @field_validator("public_access_cidrs")
    @classmethod
    def _public(cls, cidrs: tuple[str, ...]) -> tuple[str, ...]:
        return _cidrs(cidrs, public=True)

    @field_validator("api_client_cidrs")
    @classmethod
    def _private(cls, cidrs: tuple[str, ...]) -> tuple[str, ...]:
        return _cidrs(cidrs, public=False)

    @field_validator("image_cache_credentials_arn")
    @classmethod
    def _cache_secret(cls, arn: str) -> str:
        name = secret_arn(arn)["name"]
        if not name.startswith(IMAGE_CACHE_SECRET_PREFIX) or name == IMAGE_CACHE_SECRET_PREFIX:
            raise ValueError(
                f"the secret '{name}' must be named '{IMAGE_CACHE_SECRET_PREFIX}<name>': ECR reads an upstream "
                f"registry's credentials from no other secret (e.g. {IMAGE_CACHE_SECRET_PREFIX}ghcr)"
            )
        return arn

    @model_validator(mode="after")
    def _node_group_fits(self) -> EksConfig:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"minSize ({self.min_size}), desiredSize ({self.desired_size}) and maxSize ({self.max_size}) "
                "must satisfy minSize <= desiredSize <= maxSize"
            )
        architecture = AMI_ARCHITECTURES[self.ami_type]
        for index, instance_type in enumerate(self.instance_types):
            if instance_architecture(instance_type) != architecture:
                other = next(ami for ami, arch in AMI_ARCHITECTURES.items() if arch != architecture)
                raise ValueError(
                    f"instanceTypes[{index}]: {instance_type} is an {instance_architecture(instance_type)} "
                    f"type and amiType {self.ami_type} runs on {architecture} only: set amiType {other}, or "
                    f"choose {architecture} instance types (every type of the node group shares the AMI)"
                )
        return self


def secret_arn(arn: str) -> re.Match[str]:
    """``arn`` split into ``region``, ``account`` and ``name``, if it is a secret's full ARN."""
    match = _SECRET_ARN.fullmatch(arn)
    if match is None:
        raise ValueError(
            f"'{arn}' is not a Secrets Manager secret's full ARN; expected arn:{PARTITION}:secretsmanager:"
            f"<region>:<account>:secret:{IMAGE_CACHE_SECRET_PREFIX}<name>-<6 characters>, as `aws "
            "secretsmanager describe-secret --secret-id <name> --query ARN` prints it"
        )
    return match


DEAD_LETTER = "dlq"
"""What a task queue's dead-letter queue adds to the queue's name: components/aws/queues.py names it so,
and :func:`_refuse_dead_letter_lookalikes` refuses agent names that would collide with it."""


def _refuse_dead_letter_lookalikes(config: StackConfig) -> None:
    """Each agent's task queue is named after the agent, its dead-letter queue after the agent plus
    :data:`DEAD_LETTER`, and SQS queue names are unique in an account's region: an agent named like
    another's dead-letter queue would make two resources claim one queue."""
    named = [(f"agents[{i}].name", agent.name) for i, agent in enumerate(config.agents)]
    if config.orchestrator is not None:
        named.append(("orchestrator.name", config.orchestrator.name))
    keys = {name: key for key, name in named}
    for key, name in named:
        owner = name.removesuffix(f"-{DEAD_LETTER}")
        if owner != name and owner in keys:
            raise ValueError(
                f"{NAMESPACE}:{key}: '{name}' would give its task queue the name of the dead-letter queue of "
                f"{NAMESPACE}:{keys[owner]} '{owner}' (SQS queue names are unique in a region); rename it"
            )


def check_aws(config: StackConfig) -> None:
    """What the neutral sections must say on AWS."""
    check_location(config.location, ("aws",))
    for index, model in enumerate(config.models):
        azure_only = [key for key in ("version", "capacity", "sku") if key in model.model_fields_set]
        if azure_only:
            raise ValueError(
                f"{NAMESPACE}:models[{index}].{azure_only[0]} describes an Azure OpenAI deployment; Bedrock "
                "models are called on demand by id: remove it"
            )
        if not BEDROCK_MODEL.fullmatch(model.model):
            raise ValueError(
                f"{NAMESPACE}:models[{index}].model: {model.model!r} is not a Bedrock model or inference "
                "profile id (e.g. amazon.nova-lite-v1:0, eu.anthropic.claude-3-5-haiku-20241022-v1:0)"
            )
    embedding = next(m for m in config.models if m.name == config.memory.embedding_deployment)
    if embedding.model == TITAN_EMBEDDINGS_V2 and config.memory.dimensions not in TITAN_V2_DIMENSIONS:
        raise ValueError(
            f"{NAMESPACE}:memory.dimensions: {TITAN_EMBEDDINGS_V2} returns "
            f"{', '.join(map(str, TITAN_V2_DIMENSIONS))} dimensions, not {config.memory.dimensions}"
        )
    if not config.api.issuer:
        raise ValueError(
            f"{NAMESPACE}:api.issuer is needed on aws: the OpenID Connect issuer of your callers' tokens "
            "(a Cognito user pool, Entra ID, Okta ...); API Gateway and the runtime accept only its tokens"
        )
    deadline = config.lambda_function.timeout_seconds - 1
    if config.orchestrator is not None and config.orchestrator.subtask_deadline_seconds >= deadline:
        raise ValueError(
            f"{NAMESPACE}:orchestrator.subtaskDeadlineSeconds ({config.orchestrator.subtask_deadline_seconds:g}) "
            f"must be below the orchestrator's run deadline on Lambda, {deadline} s ({NAMESPACE}:lambda."
            "timeoutSeconds minus one: API Gateway ends every request at 29 s); leave time to route and combine "
            f"the answers, e.g. {max(1, deadline - 8)}"
        )
    _refuse_dead_letter_lookalikes(config)
    readers = [agent.name for agent in config.agents if "knowledge_search" in agent.tools]
    if config.vector_database is not None and not readers:
        raise ValueError(
            f"{NAMESPACE}:vectorDatabase: no agent declares the knowledge_search tool, so nothing would read "
            "the knowledge index; remove the section or give an agent the tool"
        )
    plans = [plan.client_id for plan in config.api_gateway.usage_plans] if config.api_gateway else []
    if len(plans) != len(set(plans)):
        raise ValueError(f"{NAMESPACE}:apiGateway.usagePlans: each clientId may have one plan only")
    audience = config.api.audience
    if audience is not None and not (_CLIENT_ID.fullmatch(audience) or _URI.fullmatch(audience)):
        raise ValueError(
            f"{NAMESPACE}:api.audience: {audience!r} is not a token audience API Gateway can match; expected "
            "your identity provider's app client id (letters, digits, '.', '_', '-', e.g. a Cognito app client "
            "id) or a URI without spaces (e.g. api://agentstage, https://api.example.com)"
        )
    if config.vpc is not None:
        _check_vpc(config, config.vpc)
    if config.kubernetes is not None:
        _check_kubernetes(config, config.kubernetes)
    if config.eks is not None:
        _check_eks(config, config.eks)


ENTERPRISE_MIN_VPC_PREFIX = 20
"""The smallest VPC the enterprise network fits: it is cut into 16 equal subnets (four roles, up to four
zones each) and the nodes' subnets, whose addresses every pod takes, need a /24 at least
(components.aws.network: SUBNET_BITS, MIN_SUBNET_PREFIX)."""


def _check_vpc(config: StackConfig, vpc: VpcConfig) -> None:
    if vpc.existing is not None and config.blueprint != "enterprise":
        raise ValueError(
            f"{NAMESPACE}:vpc.existing applies to enterprise on aws, not {config.blueprint} on aws: the "
            f"{config.blueprint} stage creates its VPC ({NAMESPACE}:vpc.cidr, availabilityZones); remove it"
        )
    if config.blueprint == "enterprise" and vpc.existing is None:
        prefix = ipaddress.ip_network(vpc.cidr).prefixlen
        if prefix > ENTERPRISE_MIN_VPC_PREFIX:
            raise ValueError(
                f"{NAMESPACE}:vpc.cidr: '{vpc.cidr}' is too small for the enterprise network: it is cut into 16 "
                f"subnets (a /{prefix + 4} each) and the EKS nodes' subnets, where every pod takes an address, "
                f"need a /24 at least: use a /{ENTERPRISE_MIN_VPC_PREFIX} or larger, e.g. 10.60.0.0/16"
            )


_AKS_SETTINGS: Mapping[str, str] = MappingProxyType(
    {
        "system_pool": "an AKS node pool; on aws the EKS managed node group is sized by "
        f"{NAMESPACE}:eks.instanceTypes, minSize, desiredSize and maxSize",
        "user_pool": "an AKS node pool; on aws the EKS managed node group is sized by "
        f"{NAMESPACE}:eks.instanceTypes, minSize, desiredSize and maxSize",
        "private_cluster": "on aws the cluster's API endpoint is private unless "
        f"{NAMESPACE}:eks.publicAccessCidrs lists public ranges ({NAMESPACE}:eks.apiClientCidrs admits networks "
        "routed to the VPC)",
        "admin_group_object_ids": "Entra ID groups administer AKS; on aws the principal running pulumi up "
        "gets cluster admin through an EKS access entry",
        "encryption_at_host": f"on aws every node's root volume ({NAMESPACE}:eks.rootVolumeGb) is encrypted "
        "with the stack's KMS key",
        "zone_redundant_registry": "an Azure Container Registry setting; on aws the stack's ECR repository is "
        "regional and has no zone setting",
    }
)
"""Why each AKS setting of ``kubernetes`` means nothing on EKS, and where its job is done there."""
_ECR_IMAGE = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/"
    r"(?P<repository>(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*)@sha256:[0-9a-f]{64}"
)
"""An image of a private ECR repository in ``account`` and ``region``, by digest (ECR's repository names)."""


def _check_kubernetes(config: StackConfig, kubernetes: KubernetesConfig) -> None:
    """The neutral keys only; a Kubernetes minor the add-ons are pinned for; the image by digest from the
    repository the stack creates (its node role is the only principal that may pull there)."""
    for key in (*AZURE_CLUSTER_KEYS, *OWN_CLUSTER_KEYS):
        if key not in kubernetes.model_fields_set:
            continue
        where = (
            f"the azure cloud: {_AKS_SETTINGS[key]}"
            if key in _AKS_SETTINGS
            else "the kubernetes cloud (your own cluster): on aws the stack creates the EKS cluster, a Pod "
            "Identity role for each agent and the agents' settings"
        )
        raise ValueError(f"{NAMESPACE}:kubernetes.{to_camel(key)} applies to {where}; remove it")
    version = kubernetes.kubernetes_version
    if version not in EKS_KUBERNETES_VERSIONS:
        raise ValueError(
            f"{NAMESPACE}:kubernetes.kubernetesVersion: '{version}' is not a Kubernetes minor the kit pins its EKS "
            f"add-ons for (the Cluster Autoscaler, KEDA); use {', '.join(EKS_KUBERNETES_VERSIONS)}, or leave it "
            f"out for {EKS_DEFAULT_KUBERNETES_VERSION}"
        )
    _check_agent_image(config, kubernetes.image)


def _check_agent_image(config: StackConfig, image: str) -> None:
    repository = f"{config.name_prefix}-{config.environment}-<repository>"
    expected = f"<account>.dkr.ecr.{config.location}.amazonaws.com/{repository}@sha256:<64 hex digits>"
    key = f"{NAMESPACE}:kubernetes.image"
    if "@" not in image:
        raise ValueError(
            f"{key}: '{image}' names a tag; on aws agents run images by digest, the one the image pipeline "
            f"tested, scanned and pushed (a tag is resolved by each node when it pulls): use {expected}"
        )
    match = _ECR_IMAGE.fullmatch(image)
    if match is None:
        raise ValueError(
            f"{key}: '{image}' is not in the ECR repository this stack creates, the only one its nodes may pull "
            f"from: use {expected}"
        )
    if match["region"] != config.location:
        raise ValueError(
            f"{key}: '{image}' is in the registry of {match['region']}; the stack's repository is in "
            f"{config.location} ({NAMESPACE}:location): use {expected}"
        )
    name = match["repository"]
    if not name.startswith(f"{config.name_prefix}-{config.environment}-"):
        raise ValueError(
            f"{key}: '{name}' is not a repository this stack creates, the only one its nodes may pull from: "
            f"the stack names its repositories {repository} ({NAMESPACE}:namePrefix, environment); use {expected}"
        )


def _check_eks(config: StackConfig, eks: EksConfig) -> None:
    """The image cache's secret is in the stack's region and the account of the stack's registry: ECR reads
    a pull-through cache rule's credentials from its own account and region only."""
    secret = secret_arn(eks.image_cache_credentials_arn)
    key = f"{NAMESPACE}:eks.imageCacheCredentialsArn"
    if secret["region"] != config.location:
        raise ValueError(
            f"{key}: the secret is in {secret['region']}, but ECR reads a pull-through cache's credentials "
            f"only in the cache's region, the stack's {config.location} ({NAMESPACE}:location): create it there"
        )
    image = _ECR_IMAGE.fullmatch(config.kubernetes.image) if config.kubernetes else None
    if image is not None and image["account"] != secret["account"]:
        raise ValueError(
            f"{key}: the secret is in account {secret['account']} and {NAMESPACE}:kubernetes.image in account "
            f"{image['account']}; both must be the stack's account (ECR reads a cache's credentials in its "
            "own account, and the nodes pull from the stack's own repository)"
        )
