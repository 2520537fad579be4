"""Names the bus tests share (imported by conftest.py and the test modules)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import boto3
from botocore.config import Config

from agent_runtime.bus.base import MessageBus

BACKENDS = ["sqlite", "storage_queue", "sqs"]

BusFactory = Callable[..., Awaitable[MessageBus]]


def sqs_client(endpoint_url: str, region: str = "us-east-1", **config: Any) -> Any:
    """A boto3 SQS client for moto (which takes any credentials) or for an endpoint nothing answers on."""
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**config),
    )
