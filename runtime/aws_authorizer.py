"""AWS Lambda host of the REST API's TOKEN authorizer: ``aws_authorizer.handler``.

It verifies callers' JWTs before API Gateway lets them through (:mod:`agent_runtime.gateway_authorizer`).
Its function is configured with :class:`~agent_runtime.settings.GatewayAuthorizerSettings` alone and
loads neither the web app nor any agent, so a cold start costs only the JWT libraries; it holds no secret,
so it reads no settings secret either. Every invocation runs on the process's one event loop, which the
signing keys' cache and its HTTP client are bound to, so warm invocations reuse the fetched keys.
"""

import asyncio
from typing import Any

from agent_runtime.gateway_authorizer import GatewayAuthorizer

loop = asyncio.new_event_loop()
authorizer = GatewayAuthorizer.from_environment()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway's answer to one TOKEN authorizer event."""
    return loop.run_until_complete(authorizer.authorize(event))
