"""Stage 1 - the serverless single-agent pilot.

One Function App (Flex Consumption) runs the configured agents; Azure OpenAI serves the models through
a content filter; Cosmos DB keeps conversations and vector memory so the agent is stateless; Key
Vault holds whatever secrets tools need; Log Analytics and Application Insights receive every log,
trace and token metric. Optional Azure AI Search for retrieval. The agent's managed identity gets
exactly one narrow role on each service it calls - no keys anywhere.
"""

from __future__ import annotations

from blueprints.azure_base import AzureFoundation, agents_json, runtime_package
from blueprints.config import StackConfig
from components.azure.identity import ManagedIdentity
from components.azure.search import VectorSearch, VectorSearchArgs
from components.azure.serverless_agent import ServerlessAgent, ServerlessAgentArgs


def deploy_azure(config: StackConfig) -> None:
    base = AzureFoundation(config)
    identity = ManagedIdentity("agent", base.context)
    base.models.grant_inference(identity)
    base.secrets.grant_secrets_read(identity)
    base.observability.grant_telemetry_publish(identity)
    base.state.grant_data_access(identity)

    if config.vector_search is not None and config.vector_search.enabled:
        search = VectorSearch(
            "search",
            base.context,
            VectorSearchArgs(
                sku=config.vector_search.sku,
                replicas=config.vector_search.replicas,
                partitions=config.vector_search.partitions,
            ),
        )
        search.grant_query(identity)
        search.grant_index_write(identity)

    ServerlessAgent(
        "agent",
        base.context,
        ServerlessAgentArgs(
            identity=identity,
            package=runtime_package(),
            runtime_settings={
                **base.runtime_settings(identity),
                "agents": agents_json(config),
            },
            telemetry_connection_string=base.observability.connection_string,
            instance_memory_mb=config.functions.instance_memory_mb,
            maximum_instance_count=config.functions.maximum_instance_count,
            always_ready=config.functions.always_ready,
            zone_redundant=config.functions.zone_redundant,
        ),
    )
