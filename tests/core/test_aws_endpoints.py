"""Which VPC endpoints an action needs: the map the stage's graph tests and policy rules derive endpoints from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.aws_endpoints import (
    ENDPOINTS_BY_PREFIX,
    GATEWAY_SERVICES,
    RequiredEndpoints,
    UnknownServicePrefix,
    endpoint_services,
    required_endpoints,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("action", "services"),
    [
        ("bedrock:InvokeModel", ("bedrock-runtime",)),
        ("bedrock:InvokeModelWithResponseStream", ("bedrock-runtime",)),
        ("bedrock:ApplyGuardrail", ("bedrock-runtime",)),
        ("bedrock:Retrieve", ("bedrock-agent-runtime",)),
        ("bedrock:GetFoundationModel", ("bedrock",)),
        ("sqs:ReceiveMessage", ("sqs",)),
        ("secretsmanager:GetSecretValue", ("secretsmanager",)),
        ("logs:PutLogEvents", ("logs",)),
        ("cloudwatch:PutMetricData", ("monitoring",)),
        ("kms:Decrypt", ("kms",)),
        ("sts:AssumeRole", ("sts",)),
        ("ecr:BatchGetImage", ("ecr.api", "ecr.dkr", "s3")),
        ("xray:PutTraceSegments", ("xray",)),
        ("ec2:CreateNetworkInterface", ("ec2",)),
        ("eks-auth:AssumeRoleForPodIdentity", ("eks-auth",)),
        ("dynamodb:GetItem", ("dynamodb",)),
        ("s3:GetObject", ("s3",)),
        ("rds-db:connect", ()),
        ("execute-api:Invoke", ("execute-api",)),
        ("sqs:*", ("sqs",)),
    ],
)
def test_each_action_maps_to_the_endpoints_it_is_called_through(
    action: str, services: tuple[str, ...]
) -> None:
    assert endpoint_services(action) == services


def test_a_stage_needs_interface_and_gateway_endpoints_apart() -> None:
    actions = [
        "bedrock:InvokeModel",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "dynamodb:PutItem",
        "ecr:GetAuthorizationToken",
        "rds-db:connect",
    ]
    assert required_endpoints(actions) == RequiredEndpoints(
        interface=("bedrock-runtime", "ecr.api", "ecr.dkr", "sqs"), gateway=("dynamodb", "s3")
    )
    assert required_endpoints([]) == RequiredEndpoints((), ())


def test_an_unmapped_service_cannot_slip_through() -> None:
    with pytest.raises(
        UnknownServicePrefix,
        match="service 'opensearch', whose VPC endpoint is not known; add 'opensearch' to core",
    ):
        endpoint_services("opensearch:ESHttpGet")
    with pytest.raises(ValueError, match="action: 'GetItem' is not an IAM action"):
        endpoint_services("GetItem")
    with pytest.raises(ValueError, match=r"'bedrock:Invoke\*' may be served by bedrock-runtime"):
        endpoint_services("bedrock:Invoke*")


def test_every_gateway_service_is_its_own_prefix() -> None:
    assert all(ENDPOINTS_BY_PREFIX[service] == (service,) for service in GATEWAY_SERVICES)


def test_the_map_loads_without_a_cloud_sdk() -> None:
    probe = "import sys, core.aws_endpoints; print(sorted(m for m in sys.modules if m.startswith('pulumi')))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert loaded.stdout.strip() == "[]"
