"""Stage 2 - the orchestrated multi-agent foundation.

Requests enter through the API gateway (Entra ID tokens, token limits, token metrics), which fronts
the orchestrator's Function App. The orchestrator delegates to specialised agents over Service Bus: one
queue per agent, each agent's identity may receive from its own queue only, and only the orchestrator
may send. Agents and orchestrator call the models through the gateway's pooled, circuit-broken model
API, so every token is limited and measured in one place; only the gateway's identity holds a role on
Azure OpenAI. AI Search is the shared vector DB, Cosmos DB the shared state store.
"""

from __future__ import annotations

import json

from blueprints.azure_base import AzureFoundation, agents_json, vector_search
from blueprints.config import StackConfig
from components.azure.apim_backends import ModelBackendArgs
from components.azure.apim_policies import TokenLimit
from components.azure.gateway import Gateway, GatewayArgs, gateway_url
from components.azure.gateway_policies import CALLER_APP, JwtArgs
from components.azure.identity import ManagedIdentity
from components.azure.messaging import Messaging, MessagingArgs, QueueSpec

GATEWAY = "gateway"


def task_queue(agent: str) -> str:
    """The Service Bus queue an agent's worker receives its tasks from."""
    return f"tasks-{agent}"


def deploy_azure(config: StackConfig) -> None:
    assert config.orchestrator and config.gateway and config.messaging  # guaranteed by StackConfig
    base = AzureFoundation(config)
    search = vector_search(base)
    assert search is not None  # guaranteed by StackConfig for this blueprint
    names = [config.orchestrator.name, *(agent.name for agent in config.agents)]
    bus = Messaging(
        "bus",
        base.context,
        MessagingArgs(
            sku=config.messaging.sku,
            queues=tuple(
                QueueSpec(name=task_queue(name), max_delivery_count=config.messaging.max_delivery_count)
                for name in names
            ),
        ),
    )
    identities = {name: ManagedIdentity(name, base.context) for name in names}
    through_gateway = {
        "llm_endpoint": gateway_url(base.context, GATEWAY),
        "llm_token_scope": f"{config.api_audience}/.default",
        "bus_backend": "servicebus",
        "servicebus_namespace": bus.fully_qualified_namespace,
    }
    for name, identity in identities.items():
        base.grant_shared(identity)
        search.grant_query(identity)
        bus.grant_receive(identity, task_queue(name))

    orchestrator = identities[config.orchestrator.name]
    search.grant_index_write(orchestrator)
    for agent in config.agents:
        bus.grant_send(orchestrator, task_queue(agent.name))
    orchestrator_app = base.serverless_agent(
        config.orchestrator.name,
        orchestrator,
        agents_json([config.orchestrator]),
        {
            **through_gateway,
            "task_queue": task_queue(config.orchestrator.name),
            "agent_queues": json.dumps({a.name: task_queue(a.name) for a in config.agents}),
        },
    )
    for agent in config.agents:
        base.serverless_agent(
            agent.name,
            identities[agent.name],
            agents_json([agent]),
            {**through_gateway, "task_queue": task_queue(agent.name)},
        )

    gateway_identity = ManagedIdentity(GATEWAY, base.context)
    base.models.grant_inference(gateway_identity)
    base.observability.grant_telemetry_publish(gateway_identity)
    Gateway(
        GATEWAY,
        base.context,
        GatewayArgs(
            publisher_name=config.gateway.publisher_name,
            publisher_email=config.gateway.publisher_email,
            identity=gateway_identity,
            app_insights_id=base.observability.app_insights_id,
            app_insights_connection_string=base.observability.connection_string,
            jwt=JwtArgs(
                audience=config.api_audience,
                client_application_ids=(
                    *(identity.client_id for identity in identities.values()),
                    *config.gateway.caller_application_ids,
                ),
            ),
            models=(ModelBackendArgs(name="models", models=base.models),),
            agents={config.orchestrator.name: orchestrator_app.url},
            sku=config.gateway.sku,
            capacity=config.gateway.capacity,
            token_limit=(
                None
                if config.gateway.sku == "Consumption"
                else TokenLimit(tokens_per_minute=config.gateway.tokens_per_minute, counter_key=CALLER_APP)
            ),
        ),
    )
