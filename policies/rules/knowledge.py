"""Knowledge: the shared index is used, written by the ingestion worker alone, fed from a locked-down source.

checkov sees each resource alone: a search service, a role assignment, an app's settings. Whether the
service is read by anything, whether the identity that may write the index belongs to an agent, and
whether the documents an index is built from sit in an account that takes keys, only shows when the
settings, the grants and the identities are read together - which these rules do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from agent_runtime.settings_contract import env_name
from components.azure.role_ids import BUILTIN_ROLES
from core.graph import Resource, ResourceGraph
from core.workloads import AZURE_SETTING_HOLDERS, K8S_WORKLOADS, SETTING_HOLDERS
from policies.findings import Severity
from policies.rules.context import StackContext
from policies.rules.identity import ROLE_ASSIGNMENT
from policies.rules.model import Rule, Verdict, failed, passed
from policies.rules.network import STORAGE
from policies.rules.predicates import (
    IDENTITY,
    is_unknown,
    resolve,
    role_guid,
    runs_agents,
    setting_values,
    shown,
    workload_identities,
)

SEARCH_SERVICE = "azure-native:search:Service"
BACKEND_SETTING = env_name("knowledge_backend")
ENDPOINT_SETTING = env_name("search_endpoint")
INGEST_QUEUE_SETTING = env_name("ingest_queue")
SOURCE_SETTING = env_name("knowledge_source")
BLOB_HOST_SUFFIX = ".blob.core.windows.net"

INDEX_WRITE_ROLES = {
    BUILTIN_ROLES[role].lower(): role
    for role in ("Search Index Data Contributor", "Search Service Contributor")
}
"""The built-in roles below Owner and Contributor (refused everywhere, AGS-AZ-010) that change an index:
its documents, or its definition."""


def _writes_index(assignment: Resource) -> bool:
    return role_guid(assignment.get("roleDefinitionId")) in INDEX_WRITE_ROLES


def _role_of(assignment: Resource) -> str:
    return INDEX_WRITE_ROLES[role_guid(assignment.get("roleDefinitionId")) or ""]


def _scope_of(graph: ResourceGraph, assignment: Resource) -> str:
    target = resolve(graph, assignment.get("scope"))
    return target.name if target is not None else shown(assignment.get("scope"))


def _runtimes(graph: ResourceGraph) -> list[Resource]:
    return [r for type_ in SETTING_HOLDERS for r in graph.of_type(type_)]


def _read_by_a_runtime(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    name = resource.get("searchServiceName")
    if not isinstance(name, str) or is_unknown(name):
        return failed(
            f"searchServiceName is {shown(name)}: which runtime reads the service cannot be reviewed"
        )
    endpoint = f"https://{name}.search.windows.net"
    readers = [
        runtime.name
        for runtime in _runtimes(graph)
        if (values := setting_values(runtime)).get(BACKEND_SETTING) == "aisearch"
        and str(values.get(ENDPOINT_SETTING, "")).rstrip("/") == endpoint
    ]
    if not readers:
        return failed(
            f"no runtime has {BACKEND_SETTING}=aisearch and {ENDPOINT_SETTING}={endpoint}: the service is "
            "billed by the hour and nothing searches it"
        )
    return passed(f"searched by {', '.join(readers)}")


def _written_by_the_ingestion_worker(
    assignment: Resource, graph: ResourceGraph, _ctx: StackContext
) -> Verdict:
    grant = f"{_role_of(assignment)} on {_scope_of(graph, assignment)}"
    identities = [r for r in graph.of_type(IDENTITY) if r.urn in assignment.dependencies]
    if not identities:
        return failed(f"grants {grant} to a principal that is no managed identity of this stack")
    problems = []
    for identity in identities:
        runtimes = [
            r for r in _runtimes(graph) if identity.urn in {i.urn for i in workload_identities(graph, r)}
        ]
        if not runtimes:
            problems.append(f"{identity.name} runs no runtime of this stack")
        problems += [
            f"{identity.name} runs {runtime.name}, which consumes no ingest queue "
            f"({INGEST_QUEUE_SETTING} unset)"
            for runtime in runtimes
            if not setting_values(runtime).get(INGEST_QUEUE_SETTING)
        ]
    if problems:
        return failed(f"grants {grant}, but " + "; ".join(problems))
    return passed(f"grants {grant} to the ingestion worker's identity")


def _agent_holds_no_index_write(runtime: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    identities = workload_identities(graph, runtime)
    writes = [
        f"{identity.name} holds {_role_of(assignment)} on {_scope_of(graph, assignment)}"
        for identity in identities
        for assignment in graph.of_type(ROLE_ASSIGNMENT)
        if identity.urn in assignment.dependencies and _writes_index(assignment)
    ]
    if writes:
        return failed("runs agents, and its identity " + "; ".join(writes))
    if not identities:
        return passed("runs agents as no managed identity of this stack, so it holds no role here")
    names = ", ".join(identity.name for identity in identities)
    return passed(f"runs agents as {names}, which may change no index")


def _has_blob_source(resource: Resource) -> bool:
    value = setting_values(resource).get(SOURCE_SETTING)
    return is_unknown(value) or (isinstance(value, str) and value.startswith("https://"))


def _source_locked_down(runtime: Resource, graph: ResourceGraph, ctx: StackContext) -> Verdict:
    source: Any = setting_values(runtime).get(SOURCE_SETTING)
    host = urlsplit(source).hostname if isinstance(source, str) and not is_unknown(source) else None
    if host is None or not host.endswith(BLOB_HOST_SUFFIX):
        return failed(
            f"{SOURCE_SETTING} is {shown(source)}: not a Blob container URL whose account can be reviewed"
        )
    account_name = host.removesuffix(BLOB_HOST_SUFFIX)
    accounts = [r for r in graph.of_type(STORAGE) if r.get("accountName") == account_name]
    if not accounts:
        return failed(
            f"{SOURCE_SETTING} reads account {account_name!r}, which is no storage account of this stack"
        )
    account = accounts[0]
    problems = []
    if account.get("allowSharedKeyAccess") is not False:
        problems.append(
            f"allowSharedKeyAccess is {shown(account.get('allowSharedKeyAccess'))} (Azure's default: True)"
        )
    if account.get("allowBlobPublicAccess") is True:
        problems.append("allowBlobPublicAccess is True")
    if ctx.isolated and str(account.get("publicNetworkAccess")).lower() != "disabled":
        problems.append(
            f"publicNetworkAccess is {shown(account.get('publicNetworkAccess'))} in an isolated stage"
        )
    if problems:
        return failed(f"documents account {account.name}: " + "; ".join(problems))
    network = ", private network only" if ctx.isolated else ""
    return passed(f"documents account {account.name} takes Entra ID only, no anonymous reads{network}")


RULES = (
    Rule(
        id="AGS-AZ-070",
        title="Every AI Search service is searched by a runtime of the stack",
        severity=Severity.MEDIUM,
        rationale=(
            "An AI Search service bills every hour it exists, per replica and partition. One that no runtime "
            "points at (AGENTSTAGE_SEARCH_ENDPOINT with the aisearch knowledge backend) is paid for and "
            "answers nobody - and usually means the agents search somewhere other than where the documents "
            "are."
        ),
        remediation=(
            f"Give the runtimes that should search it {BACKEND_SETTING}=aisearch and {ENDPOINT_SETTING}="
            "https://<service>.search.windows.net (the Azure blueprints do, from "
            "VectorSearch.runtime_settings), or remove the service "
            "(`agentstage:vectorSearch.enabled: false`)."
        ),
        types=(SEARCH_SERVICE,),
        check=_read_by_a_runtime,
        needs_graph=True,
        reference="https://learn.microsoft.com/azure/search/search-sku-manage-costs",
    ),
    Rule(
        id="AGS-AZ-071",
        title="Only the ingestion worker may write AI Search indexes",
        severity=Severity.HIGH,
        rationale=(
            "What is in the knowledge index is what every agent tells its callers. Any identity that may "
            "write it besides the worker that ingests the reviewed document source - an agent a prompt "
            "injection steers, an identity nothing in the stack uses - can plant or erase knowledge for all "
            "of them, unseen by anyone reviewing the documents."
        ),
        remediation=(
            "Grant Search Index Data Contributor and Search Service Contributor only to the identity of the "
            f"runtime that consumes the document events ({INGEST_QUEUE_SETTING} set; VectorSearch."
            "grant_index_write / grant_index_management in the ingestion worker's blueprint code)."
        ),
        types=(ROLE_ASSIGNMENT,),
        check=_written_by_the_ingestion_worker,
        applies=_writes_index,
        needs_graph=True,
        reference="https://learn.microsoft.com/azure/search/search-security-rbac",
    ),
    Rule(
        id="AGS-AZ-072",
        title="No agent's identity may write an AI Search index",
        severity=Severity.HIGH,
        rationale=(
            "Agents read untrusted text (user input, tool output, retrieved documents) and act on it with "
            "their identity's rights. With write access to the shared index, one injected instruction is "
            "enough to poison what every other agent retrieves; query rights are all an agent needs."
        ),
        remediation=(
            "Give agent identities Search Index Data Reader only (VectorSearch.grant_query); documents reach "
            "the index through the ingestion worker, or in the pilot through `agentstage ingest` run by an "
            "operator."
        ),
        types=(*AZURE_SETTING_HOLDERS, *K8S_WORKLOADS),
        check=_agent_holds_no_index_write,
        applies=runs_agents,
        needs_graph=True,
        reference="https://genai.owasp.org/llmrisk/llm082025-vector-and-embedding-weaknesses/",
    ),
    Rule(
        id="AGS-AZ-073",
        title="The knowledge source is a storage account of the stack that takes Entra ID only",
        severity=Severity.HIGH,
        rationale=(
            "Whoever can write the documents decides what the index - and so every agent - says. A shared "
            "key or anonymous access to the documents account bypasses every role assignment and leaves no "
            "identity in the logs; in isolated stages a public endpoint exposes the documents to the "
            "internet. An account outside the stack cannot be reviewed at all."
        ),
        remediation=(
            f"Point {SOURCE_SETTING} at the documents container of the stack's KnowledgeSource (shared keys "
            "and anonymous blob access off; public network access off in isolated stages), and grant "
            "uploaders Storage Blob Data Contributor on that container."
        ),
        types=SETTING_HOLDERS,
        check=_source_locked_down,
        applies=_has_blob_source,
        needs_graph=True,
        reference="https://learn.microsoft.com/azure/storage/common/shared-key-authorization-prevent",
    ),
)
