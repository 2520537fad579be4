"""The data perimeter as planned: exactly which actions each data service refuses outside the VPC's endpoints,
on which resources, with which exemptions - and that nothing is fenced unless a perimeter is given."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pulumi_aws import get_caller_identity_output

from components.aws.context import AwsContext
from components.aws.data_perimeter import VpcPerimeter, perimeter_statement
from components.aws.knowledge import KnowledgeSource, KnowledgeSourceArgs, bucket_arn, documents_bucket_name
from components.aws.network import Network, NetworkArgs
from components.aws.queues import QueueSpec, TaskQueues, TaskQueuesArgs
from components.aws.role import ExecutionRole
from components.aws.secrets import Secrets
from components.aws.serverless_agent import LambdaAgent, LambdaAgentArgs
from components.aws.state import StateTables, StateTablesArgs
from components.packaging import Package
from core.engine import record
from core.graph import Resource, ResourceGraph

REGION = "eu-west-1"
ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000001"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
SECRET_POLICY = "aws:secretsmanager/secretPolicy:SecretPolicy"
TABLE_POLICY = "aws:dynamodb/resourcePolicy:ResourcePolicy"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
SENDER = f"arn:aws:iam::{ACCOUNT}:role/ags-dev-orchestrator"
BUCKET = f"ags-dev-documents-{ACCOUNT}"
EXEMPT = {
    "BoolIfExists": {"aws:PrincipalIsAWSService": "false", "aws:ViaAWSService": "false"},
    "ArnNotLikeIfExists": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/*"},
}
"""What every perimeter statement exempts: AWS services, requests they make for a caller, service-linked
roles."""
TLS_ONLY = {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "sqs:*"}


def build(factory: Callable[[AwsContext], None]) -> ResourceGraph:
    def program() -> None:
        account = get_caller_identity_output().account_id
        factory(AwsContext("ags", "dev", REGION, account, {}, kms_key_arn=KEY))

    return record(program, config={"aws:region": REGION})


def data_services(context: AwsContext, fenced: bool) -> TaskQueues:
    """Queues (one a function consumes, one pods consume, the ingest queue), the settings secret, the state
    tables and the documents bucket; behind the network's endpoints when ``fenced``."""
    network = Network("network", context, NetworkArgs(interface_services=("sqs", "secretsmanager")))

    def perimeter(service: str) -> VpcPerimeter | None:
        return network.perimeter(service) if fenced else None

    bus = TaskQueues(
        "bus",
        context,
        TaskQueuesArgs(
            queues=[
                QueueSpec("tasks-research", 29, senders=(SENDER,)),
                QueueSpec("tasks-coder", 29, senders=(SENDER,), consumed_in_vpc=True),
                QueueSpec("knowledge-ingest", 29, source=("s3.amazonaws.com", bucket_arn(BUCKET))),
            ],
            perimeter=perimeter("sqs"),
        ),
    )
    Secrets("secrets", context, perimeter=perimeter("secretsmanager"))
    StateTables("state", context, StateTablesArgs(perimeter=perimeter("dynamodb")))
    KnowledgeSource(
        "documents",
        context,
        documents_bucket_name(context),
        KnowledgeSourceArgs(queues=bus, queue="knowledge-ingest", perimeter=perimeter("s3")),
    )
    return bus


@pytest.fixture(scope="module")
def fenced() -> ResourceGraph:
    return build(lambda context: data_services(context, fenced=True) and None)


def endpoint_id(graph: ResourceGraph, service: str) -> str:
    [endpoint] = [
        e for e in graph.of_type(ENDPOINT) if e.get("serviceName") == f"com.amazonaws.{REGION}.{service}"
    ]
    assert endpoint.mock_id
    return endpoint.mock_id


def statements(resource: Resource) -> list[dict[str, Any]]:
    return json.loads(resource.get("policy"))["Statement"]


def policy(graph: ResourceGraph, type_: str, name: str) -> list[dict[str, Any]]:
    [found] = [r for r in graph.of_type(type_) if r.name == name]
    return statements(found)


def fence(actions: list[str], resource: str | list[str], endpoint: str) -> dict[str, Any]:
    return {
        "Sid": "OnlyThroughVpcEndpoints",
        "Effect": "Deny",
        "Principal": "*",
        "Action": actions,
        "Resource": resource,
        "Condition": {"StringNotEquals": {"aws:SourceVpce": [endpoint]}, **EXEMPT},
    }


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:ags-dev-{name}"


def test_a_queue_a_function_consumes_refuses_sends_from_outside_only(fenced: ResourceGraph) -> None:
    arn = queue_arn("tasks-research")
    assert policy(fenced, QUEUE_POLICY, "bus-tasks-research-policy") == [
        {**TLS_ONLY, "Resource": arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {
            "Sid": "OnlyNamedSenders",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [SENDER]}},
        },
        fence(["sqs:SendMessage"], arn, endpoint_id(fenced, "sqs")),
    ]


def test_a_queue_pods_consume_refuses_sends_and_receives_from_outside(fenced: ResourceGraph) -> None:
    arn = queue_arn("tasks-coder")
    assert policy(fenced, QUEUE_POLICY, "bus-tasks-coder-policy")[-1] == fence(
        ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage", "sqs:SendMessage"],
        arn,
        endpoint_id(fenced, "sqs"),
    )


def test_dead_letters_are_sent_from_inside_and_read_from_anywhere(fenced: ResourceGraph) -> None:
    for queue in ("tasks-research", "tasks-coder", "knowledge-ingest"):
        arn = queue_arn(f"{queue}-dlq")
        assert policy(fenced, QUEUE_POLICY, f"bus-{queue}-dlq-policy") == [
            {**TLS_ONLY, "Resource": arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            fence(["sqs:SendMessage"], arn, endpoint_id(fenced, "sqs")),
        ]


def test_the_ingest_queue_still_takes_s3_events(fenced: ResourceGraph) -> None:
    arn = queue_arn("knowledge-ingest")
    found = policy(fenced, QUEUE_POLICY, "bus-knowledge-ingest-policy")
    assert [s["Sid"] for s in found] == [
        "TlsOnly",
        "SourceSends",
        "OnlySourceSends",
        "OnlyThroughVpcEndpoints",
    ]
    assert found[1]["Principal"] == {"Service": "s3.amazonaws.com"}, "allowed, and exempt from the perimeter"
    assert found[-1] == fence(["sqs:SendMessage"], arn, endpoint_id(fenced, "sqs"))


def test_the_secret_value_is_read_from_inside_only(fenced: ResourceGraph) -> None:
    [secret_policy] = fenced.of_type(SECRET_POLICY)
    [secret] = fenced.of_type("aws:secretsmanager/secret:Secret")
    assert (secret_policy.get("secretArn"), secret_policy.get("blockPublicPolicy")) == (secret.arn, True)
    assert statements(secret_policy) == [
        fence(["secretsmanager:GetSecretValue"], secret.arn, endpoint_id(fenced, "secretsmanager"))
    ]


def test_items_are_read_and_written_from_inside_only(fenced: ResourceGraph) -> None:
    items = [
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PartiQLDelete",
        "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLSelect",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
    ]
    gateway = endpoint_id(fenced, "dynamodb")
    policies = {p.name: p for p in fenced.of_type(TABLE_POLICY)}
    assert sorted(policies) == [
        f"state-{t}-perimeter" for t in ("conversations", "ledger", "memories", "tasks")
    ]
    for purpose in ("conversations", "memories", "ledger"):
        table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ags-dev-{purpose}"
        found = policies[f"state-{purpose}-perimeter"]
        assert found.get("resourceArn") == table
        assert statements(found) == [fence(items, table, gateway)]
    tasks = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ags-dev-tasks"
    assert statements(policies["state-tasks-perimeter"]) == [
        fence(items, [tasks, f"{tasks}/index/awaiting_approval"], gateway)
    ]


def test_documents_are_read_from_inside_only_and_uploaded_from_anywhere(fenced: ResourceGraph) -> None:
    arn = f"arn:aws:s3:::{BUCKET}"
    assert policy(fenced, BUCKET_POLICY, "documents-tls-only") == [
        {
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        fence(["s3:GetObject", "s3:GetObjectVersion"], f"{arn}/*", endpoint_id(fenced, "s3")),
    ]


def test_without_a_perimeter_nothing_is_fenced() -> None:
    graph = build(lambda context: data_services(context, fenced=False) and None)
    assert not graph.of_type(SECRET_POLICY) and not graph.of_type(TABLE_POLICY)
    for resource in (*graph.of_type(QUEUE_POLICY), *graph.of_type(BUCKET_POLICY)):
        assert "OnlyThroughVpcEndpoints" not in [s["Sid"] for s in statements(resource)], resource.name


def agent(context: AwsContext) -> LambdaAgent:
    role = ExecutionRole("coder", context)
    settings = {
        "agents": "[]",
        "environment": "dev",
        "llm_provider": "bedrock",
        "llm_auth": "aws",
        "llm_endpoint": f"https://bedrock-runtime.{REGION}.amazonaws.com",
        "auth_mode": "jwt",
        "telemetry_exporter": "none",
    }
    package = Package(Path("build/lambda.zip"), "0" * 64, vendored=False, platform="manylinux2014_aarch64")
    return LambdaAgent(
        "coder", context, LambdaAgentArgs(role=role, package=package, runtime_settings=settings)
    )


def test_lambda_cannot_poll_a_queue_fenced_for_pods() -> None:
    def factory(context: AwsContext) -> None:
        bus = data_services(context, fenced=True)
        bus.trigger("tasks-coder", agent(context), maximum_concurrency=2)

    with pytest.raises(ValueError, match="queue tasks-coder: its perimeter denies receiving outside the VPC"):
        build(factory)


def test_lambda_polls_a_queue_whose_receives_stay_open() -> None:
    def factory(context: AwsContext) -> None:
        bus = data_services(context, fenced=True)
        role = ExecutionRole("worker", context)
        bus.grant_receive(role, "tasks-research")
        bus.trigger("tasks-research", agent(context), maximum_concurrency=2)

    [mapping] = build(factory).of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    assert mapping.get("eventSourceArn") == queue_arn("tasks-research")


SQS = VpcPerimeter("sqs", ("vpce-0123456789abcdef0",))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda _: TaskQueuesArgs(queues=[], perimeter=VpcPerimeter("s3", ("vpce-1",))), "not s3"),
        (
            lambda context: Secrets("secrets", context, perimeter=SQS),
            "read through the secretsmanager endpoint",
        ),
        (lambda _: StateTablesArgs(perimeter=SQS), "reached through the dynamodb endpoint, not sqs"),
        (
            lambda context: KnowledgeSourceArgs(
                queues=TaskQueues("bus", context, TaskQueuesArgs(queues=[])), queue="q", perimeter=SQS
            ),
            "read through the s3 endpoint, not sqs",
        ),
    ],
)
def test_a_perimeter_of_another_service_is_named(make: Callable[[AwsContext], Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"perimeter: .*{message}"):
        build(lambda context: make(context) and None)


def test_a_perimeter_names_endpoints_and_its_own_actions() -> None:
    with pytest.raises(ValueError, match="endpoint_ids: the sqs perimeter needs a tuple of VPC endpoint ids"):
        VpcPerimeter("sqs", ())
    with pytest.raises(ValueError, match="endpoint_ids"):
        VpcPerimeter("sqs", "vpce-0123456789abcdef0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"a sqs perimeter fences sqs actions only, got \['s3:GetObject'\]"):
        SQS.statement(("s3:GetObject",), ("arn:aws:s3:::b/*",), ACCOUNT)


def test_a_statement_sorts_what_it_names() -> None:
    assert perimeter_statement(
        ("sqs:SendMessage", "sqs:DeleteMessage"), ("arn:b", "arn:a"), ("vpce-2", "vpce-1"), ACCOUNT
    ) == {
        "Sid": "OnlyThroughVpcEndpoints",
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["sqs:DeleteMessage", "sqs:SendMessage"],
        "Resource": ["arn:a", "arn:b"],
        "Condition": {"StringNotEquals": {"aws:SourceVpce": ["vpce-1", "vpce-2"]}, **EXEMPT},
    }
