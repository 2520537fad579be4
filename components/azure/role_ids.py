"""Azure role definition ids as data: what grants, policies and reports name roles by.

Kept apart from :mod:`components.azure.roles` (which creates assignments with the Azure SDK) so that the
policy rules and the plan's renderers can read role names without loading pulumi-azure-native.
"""

from __future__ import annotations

# Cosmos DB's own data-plane roles (sqlRoleDefinitions of every account): Data Contributor reads and
# writes items and runs queries; neither grants the control plane.
COSMOS_DATA_ROLES: dict[str, str] = {
    "Cosmos DB Built-in Data Reader": "00000000-0000-0000-0000-000000000001",
    "Cosmos DB Built-in Data Contributor": "00000000-0000-0000-0000-000000000002",
}

# Built-in role definition ids (identical in every Azure tenant).
BUILTIN_ROLES: dict[str, str] = {
    "Cognitive Services OpenAI User": "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Search Index Data Reader": "1407120a-92aa-4202-b7e9-c0e197c71c8f",
    "Search Index Data Contributor": "8ebe5a00-799e-43f5-93ac-243d3dce84a7",
    # Creating or updating an index definition: held by the knowledge ingestion worker alone.
    "Search Service Contributor": "7ca78c08-252a-4471-8644-bb5ff32d4ba0",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Azure Service Bus Data Sender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
    "Azure Service Bus Data Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    # Kubernetes (Azure RBAC for the Kubernetes API; the cluster's local accounts are off).
    "Azure Kubernetes Service RBAC Cluster Admin": "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",
    "Azure Kubernetes Service RBAC Writer": "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb",
    "Azure Kubernetes Service RBAC Reader": "7f6c6a51-bcf8-42ba-9220-52d62157d7db",
    # What KEDA's operator needs to read a queue's length (never granted to an agent identity).
    "Azure Service Bus Data Owner": "090c5cfd-751d-490a-894a-3ce6f1109419",
    "Storage Queue Data Reader": "19e7f393-937e-4f77-808e-94535e297925",
    # An AKS control plane joining its nodes to a subnet it does not own (scoped to that subnet only).
    "Network Contributor": "4d97b98b-1d4f-4787-a291-c67834d212e7",
}

# Roles no agentstage grant may ever use: they allow changing resources or access itself.
FORBIDDEN_ROLES: dict[str, str] = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
}
