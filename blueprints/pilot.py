"""Stage 1 - the serverless single-agent pilot.

One Function App (Flex Consumption) runs the configured agents; Azure OpenAI serves the models through
a content filter; Cosmos DB keeps conversations and vector memory so the agent is stateless; Key
Vault holds whatever secrets tools need; Log Analytics and Application Insights receive every log,
trace and token metric. Optional Azure AI Search holds the knowledge index the agent's
``knowledge_search`` tool queries. The agent's managed identity gets exactly one narrow role on each
service it calls - no keys anywhere.

The pilot deploys no ingestion pipeline (no document storage, events or worker: that is the foundation's).
The agent may only query the index; documents get in by an operator running ``agentstage ingest PATH``
against it (``AGENTSTAGE_KNOWLEDGE_BACKEND=aisearch``, ``AGENTSTAGE_SEARCH_ENDPOINT`` = the service,
``AGENTSTAGE_KNOWLEDGE_MANAGE_INDEX=true`` and the stack's model settings) as an Entra ID identity that
holds Search Index Data Contributor on the service, and Search Service Contributor for the first run,
which creates the index. People are not part of the stack, so that grant is the estate's to make.
"""

from __future__ import annotations

from blueprints.azure_base import AzureFoundation
from blueprints.topology import Topology
from components.azure.identity import ManagedIdentity
from core.config import StackConfig


def deploy_azure(config: StackConfig) -> None:
    base = AzureFoundation(config)
    identity = ManagedIdentity("agent", base.context)
    base.grant_shared(identity)
    base.models.grant_inference(identity)
    if base.search is not None:
        base.search.grant_query(identity)
    settings = base.agent_settings(Topology(config), "agent", identity)
    base.serverless_agent("agent", identity, settings)
