"""Stage 1 - the serverless single-agent pilot.

One Function App (Flex Consumption) runs the configured agents; Azure OpenAI serves the models through
a content filter; Cosmos DB keeps conversations and vector memory so the agent is stateless; Key
Vault holds whatever secrets tools need; Log Analytics and Application Insights receive every log,
trace and token metric. Optional Azure AI Search for retrieval. The agent's managed identity gets
exactly one narrow role on each service it calls - no keys anywhere.
"""

from __future__ import annotations

from blueprints.azure_base import AzureFoundation, vector_search
from blueprints.topology import Topology
from components.azure.identity import ManagedIdentity
from core.config import StackConfig


def deploy_azure(config: StackConfig) -> None:
    base = AzureFoundation(config)
    identity = ManagedIdentity("agent", base.context)
    base.grant_shared(identity)
    base.models.grant_inference(identity)
    search = vector_search(base)
    if search is not None:
        search.grant_query(identity)
        search.grant_index_write(identity)
    settings = base.agent_settings(Topology(config), "agent", identity)
    base.serverless_agent("agent", identity, settings)
