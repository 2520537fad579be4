"""AWS Lambda host of the knowledge database's bootstrap (:mod:`agent_runtime.knowledge.postgres_bootstrap`).

Pulumi invokes it at deploy time (``aws.lambda.Invocation``) with the cluster's coordinates as the input;
every key is required but ``dimensions`` (which, when given, has the index's tables created as well)::

    {"secretArn": "arn:aws:secretsmanager:...", "host": "<cluster endpoint>", "port": 5432,
     "database": "agentstage", "schema": "agentstage", "writer": "knowledge_writer",
     "reader": "knowledge_reader", "dimensions": 1536}

It signs in as the cluster's master user, whose password RDS manages in Secrets Manager (``secretArn``: a
JSON secret with ``username`` and ``password``), over TLS, and returns a summary without secrets. The region
is the function's own (``AWS_REGION``); the execution role needs ``secretsmanager:GetSecretValue`` on that
secret (and ``kms:Decrypt`` on its key) and no ``rds-db:connect``.
"""

import asyncio
import json
import logging
import os
from typing import Any

from agent_runtime.knowledge.postgres_bootstrap import bootstrap

TEXT_KEYS = ("secretArn", "host", "database", "schema", "writer", "reader")
CONNECT_TIMEOUT_SECONDS = 15

log = logging.getLogger("agentstage.database_bootstrap")


class BootstrapEventError(ValueError):
    """The invocation's input is not what the infrastructure sends; the message names the key."""


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Prepare the database the event names; raises (failing the deployment) with the reason."""
    request = parse_event(event)
    region = os.environ.get("AWS_REGION")
    if not region:
        raise RuntimeError("AWS_REGION is not set: run this function on AWS Lambda, which sets it")
    username, password = master_credentials(request["secretArn"], region)
    summary = asyncio.run(_prepare(request, username, password))
    log.info("database %s prepared: %s", request["database"], json.dumps(summary))
    return summary


def parse_event(event: Any) -> dict[str, Any]:
    """The event's keys, checked: text where text is expected, a port number, optional dimensions."""
    if not isinstance(event, dict):
        raise BootstrapEventError(f"the event must be a JSON object, not {type(event).__name__}")
    missing = [key for key in (*TEXT_KEYS, "port") if key not in event]
    if missing:
        raise BootstrapEventError(f"the event lacks {', '.join(missing)}")
    for key in TEXT_KEYS:
        if not isinstance(event[key], str) or not event[key]:
            raise BootstrapEventError(f"event key {key} must be a non-empty string, got {event[key]!r}")
    port, dimensions = event["port"], event.get("dimensions")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise BootstrapEventError(f"event key port must be a TCP port number, got {event['port']!r}")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)):
        raise BootstrapEventError(f"event key dimensions must be an integer when given, got {dimensions!r}")
    return {**{key: event[key] for key in TEXT_KEYS}, "port": port, "dimensions": dimensions}


def master_credentials(secret_arn: str, region: str) -> tuple[str, str]:
    """The master user's name and password from the secret RDS manages (never logged or returned)."""
    import boto3  # the Lambda runtime's

    value = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_arn)
    try:
        secret = json.loads(value.get("SecretString") or "")
        username, password = secret["username"], secret["password"]
    except (ValueError, TypeError, KeyError):
        raise RuntimeError(
            f"secret {secret_arn} must be JSON with username and password, as RDS's managed master user "
            "password secret is"
        ) from None
    return str(username), str(password)


async def _prepare(request: dict[str, Any], username: str, password: str) -> dict[str, Any]:
    from psycopg import AsyncConnection

    conn = await AsyncConnection.connect(
        host=request["host"],
        port=request["port"],
        dbname=request["database"],
        user=username,
        password=password,
        sslmode="require",
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        application_name="agentstage-bootstrap",
        autocommit=True,
    )
    async with conn:
        report = await bootstrap(
            conn, request["schema"], request["writer"], request["reader"], dimensions=request["dimensions"]
        )
    return {
        "database": request["database"],
        "schema": report.schema,
        "writer": report.writer,
        "reader": report.reader,
        "createdRoles": report.created_roles,
        "dimensions": report.dimensions,
    }
