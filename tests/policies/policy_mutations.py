"""The mutation list: each entry weakens one secure setting of a shipped stack's graph.

``agentstage check`` must catch every one: a named rule fails on the named resource and blocks.
Entries select resources by type (every matching resource is mutated, one at a time), so a stack
that gains resources gains mutations.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from components.azure.role_ids import BUILTIN_ROLES, FORBIDDEN_ROLES
from core.graph import Resource, ResourceGraph
from core.workloads import LAMBDA_FUNCTION, WEB_APP
from policies.rules.predicates import (
    DIAGNOSTIC_SETTING,
    referencing,
    runs_agents,
    setting_values,
    workload_identities,
)

ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
ROLE_PREFIX = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/"
)


def with_input(resource: Resource, path: str, value: Any) -> Resource:
    """A copy of ``resource`` with the input at dotted ``path`` set (``None`` removes it)."""
    inputs = copy.deepcopy(resource.inputs)
    *parents, leaf = path.split(".")
    node = inputs
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return replace(resource, inputs=inputs)


def with_app_setting(resource: Resource, name: str, value: str) -> Resource:
    settings = [s for s in resource.get("siteConfig.appSettings") or [] if s.get("name") != name]
    return with_input(resource, "siteConfig.appSettings", [*settings, {"name": name, "value": value}])


def _edit_agents(resource: Resource, edit: Callable[[list[dict[str, Any]]], None]) -> Resource:
    setting = next(s for s in resource.get("siteConfig.appSettings") if s["name"] == "AGENTSTAGE_AGENTS")
    agents = json.loads(setting["value"])
    edit(agents)
    return with_app_setting(resource, "AGENTSTAGE_AGENTS", json.dumps(agents))


def _weaken_filter(resource: Resource) -> Resource:
    filters = copy.deepcopy(resource.get("properties.contentFilters"))
    for entry in filters:
        if entry["name"] == "Jailbreak":
            entry["blocking"] = False
    return with_input(resource, "properties.contentFilters", filters)


@dataclass(frozen=True)
class Mutation:
    """Weaken every resource of ``type_`` (one per mutated graph); ``rule`` must then fail on ``target``.

    ``stacks``: the stack-name prefixes where the change is a weakening (all stacks when empty): a Premium
    vault is wrong in a pilot and allowed in the enterprise stage. ``selects``: which resources of
    ``type_`` the change weakens (all of them by default): an agent's budget only where agents run.
    """

    name: str
    rule: str
    type_: str
    change: Callable[[Resource, ResourceGraph], tuple[ResourceGraph, str]]
    stacks: tuple[str, ...] = ()
    selects: Callable[[Resource], bool] = lambda resource: True

    def apply(self, graph: ResourceGraph) -> Iterator[tuple[ResourceGraph, str]]:
        """Each mutated copy of ``graph`` with the name of the resource the rule must fail on."""
        if self.stacks and not graph.stack.startswith(self.stacks):
            return
        for resource in graph.of_type(self.type_):
            if self.selects(resource):
                yield self.change(copy.deepcopy(resource), _copy(graph))


def _copy(graph: ResourceGraph) -> ResourceGraph:
    return ResourceGraph(stack=graph.stack, project=graph.project, resources=copy.deepcopy(graph.resources))


def _swap(graph: ResourceGraph, old: Resource, new: Resource) -> ResourceGraph:
    graph.resources = [new if r.urn == old.urn else r for r in graph.resources]
    return graph


def setting(name: str, rule: str, type_: str, path: str, value: Any) -> Mutation:
    return Mutation(name, rule, type_, lambda r, g: (_swap(g, r, with_input(r, path, value)), r.name))


def edit(name: str, rule: str, type_: str, change: Callable[[Resource], Resource]) -> Mutation:
    return Mutation(name, rule, type_, lambda r, g: (_swap(g, r, change(r)), r.name))


def _drop_diagnostics(resource: Resource, graph: ResourceGraph) -> tuple[ResourceGraph, str]:
    settings = {s.urn for s in referencing(graph, DIAGNOSTIC_SETTING, "resourceUri", resource)}
    graph.resources = [r for r in graph.resources if r.urn not in settings]
    return graph, resource.name


def _grant_owner(resource: Resource, graph: ResourceGraph) -> tuple[ResourceGraph, str]:
    """Add an Owner assignment on ``resource`` (a resource group) for the agent's identity."""
    owner = Resource(
        urn=resource.urn.rsplit("::", 2)[0] + f"::{ROLE_ASSIGNMENT}::agent-owner",
        type=ROLE_ASSIGNMENT,
        name="agent-owner",
        custom=True,
        inputs={
            "roleDefinitionId": ROLE_PREFIX + FORBIDDEN_ROLES["Owner"],
            "scope": resource.mock_id,
            "principalType": "ServicePrincipal",
            "principalId": "<unknown>",
        },
        mock_id=f"/agentstage-plan/{ROLE_ASSIGNMENT}/agent-owner",
    )
    graph.resources.append(owner)
    return graph, owner.name


def _index_write_for_an_agent(service: Resource, graph: ResourceGraph) -> tuple[Resource, Resource]:
    """A Search Index Data Contributor assignment on ``service`` for the identity of the first runtime that
    runs agents, added to ``graph``; returns that runtime and the assignment."""
    agent = next(r for r in graph.resources if r.type == WEB_APP and runs_agents(r))
    (identity,) = workload_identities(graph, agent)
    name = f"{agent.name}-index-write"
    assignment = Resource(
        urn=service.urn.rsplit("::", 2)[0] + f"::{ROLE_ASSIGNMENT}::{name}",
        type=ROLE_ASSIGNMENT,
        name=name,
        custom=True,
        inputs={
            "roleDefinitionId": ROLE_PREFIX + BUILTIN_ROLES["Search Index Data Contributor"],
            "scope": service.mock_id,
            "principalType": "ServicePrincipal",
            "principalId": "<unknown>",
        },
        dependencies=(identity.urn,),
        mock_id=f"/agentstage-plan/{ROLE_ASSIGNMENT}/{name}",
    )
    graph.resources.append(assignment)
    return agent, assignment


def _agent_may_write_the_index(
    target: Callable[[Resource, Resource], Resource],
) -> Callable[[Resource, ResourceGraph], tuple[ResourceGraph, str]]:
    """Grant an agent index write on a search service; the rule must fail on ``target(agent, assignment)``."""

    def change(service: Resource, graph: ResourceGraph) -> tuple[ResourceGraph, str]:
        agent, assignment = _index_write_for_an_agent(service, graph)
        return graph, target(agent, assignment).name

    return change


def _documents_take_shared_keys(worker: Resource, graph: ResourceGraph) -> tuple[ResourceGraph, str]:
    """Turn shared keys on for the account ``worker`` ingests from."""
    source = str(setting_values(worker)[KNOWLEDGE_SOURCE])
    account_name = source.removeprefix("https://").split(".", 1)[0]
    account = next(r for r in graph.of_type(STORAGE) if r.get("accountName") == account_name)
    return _swap(graph, account, with_input(account, "allowSharedKeyAccess", True)), worker.name


def _ingests_from_blobs(resource: Resource) -> bool:
    return KNOWLEDGE_SOURCE in setting_values(resource)


# --- AWS ---------------------------------------------------------------------------------------------


AWS_QUEUE = "aws:sqs/queue:Queue"


def _calls_a_model(resource: Resource) -> bool:
    """A function that calls a model (not the gateway's authorizer, not the database bootstrap)."""
    return "AGENTSTAGE_LLM_PROVIDER" in (resource.get("environment.variables") or {})


def with_env(resource: Resource, name: str, value: str | None) -> Resource:
    """A Lambda function with one environment variable set (``None`` removes it)."""
    variables = dict(resource.get("environment.variables") or {})
    if value is None:
        variables.pop(name, None)
    else:
        variables[name] = value
    return with_input(resource, "environment.variables", variables)


def with_statement(resource: Resource, statement: dict[str, Any]) -> Resource:
    """A role policy with one more statement in its JSON document."""
    document = json.loads(resource.get("policy"))
    document["Statement"] = [*document["Statement"], {"Effect": "Allow", **statement}]
    return with_input(resource, "policy", json.dumps(document))


def _without_trust_condition(resource: Resource) -> Resource:
    document = json.loads(resource.get("assumeRolePolicy"))
    for statement in document["Statement"]:
        statement.pop("Condition", None)
    return with_input(resource, "assumeRolePolicy", json.dumps(document))


def _trusts_a_service(resource: Resource) -> bool:
    """A role an AWS service assumes (the confused-deputy case), not one another role assumes (KEDA's scalers)."""
    statements = json.loads(resource.get("assumeRolePolicy"))["Statement"]
    return any("Service" in statement.get("Principal", {}) for statement in statements)


def _weaken_guardrail(kind: str, **change: Any) -> Callable[[Resource], Resource]:
    def weaken(resource: Resource) -> Resource:
        filters = copy.deepcopy(resource.get("contentPolicyConfig.filtersConfigs"))
        for entry in filters:
            if entry["type"] == kind:
                entry.update(change)
        return with_input(resource, "contentPolicyConfig.filtersConfigs", filters)

    return weaken


def _beside(resource: Resource, type_: str, name: str, inputs: dict[str, Any]) -> Resource:
    """A new resource of ``type_`` registered next to ``resource`` (same stack and project)."""
    return Resource(
        urn=resource.urn.rsplit("::", 2)[0] + f"::{type_}::{name}",
        type=type_,
        name=name,
        custom=True,
        inputs=inputs,
        mock_id=name,
    )


def _add(type_: str, name: str, inputs: Callable[[Resource], dict[str, Any]]) -> Callable[..., Any]:
    def change(resource: Resource, graph: ResourceGraph) -> tuple[ResourceGraph, str]:
        graph.resources.append(_beside(resource, type_, name, inputs(resource)))
        return graph, name

    return change


AWS_ROLE = "aws:iam/role:Role"
AWS_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
AWS_GUARDRAIL = "aws:bedrock/guardrail:Guardrail"
AWS_TABLE = "aws:dynamodb/table:Table"
AWS_LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ADMINISTRATOR = "arn:aws:iam::aws:policy/AdministratorAccess"

AWS_MUTATIONS: tuple[Mutation, ...] = (
    edit(
        "plaintext password in the Lambda environment",
        "AGS-AWS-002",
        LAMBDA_FUNCTION,
        lambda r: with_env(r, "DB_PASSWORD", "hunter2-but-longer"),
    ),
    replace(
        edit(
            "a ledger per Lambda instance",
            "AGS-AI-002",
            LAMBDA_FUNCTION,
            lambda r: with_env(r, "AGENTSTAGE_BUDGET_BACKEND", "sqlite"),
        ),
        selects=runs_agents,
    ),
    edit(
        "Bedrock invocation on every model",
        "AGS-AWS-004",
        AWS_ROLE_POLICY,
        lambda r: with_statement(
            r, {"Action": "bedrock:InvokeModel", "Resource": "arn:aws:bedrock:eu-west-1::foundation-model/*"}
        ),
    ),
    replace(
        edit(
            "guardrail dropped from the function",
            "AGS-AWS-005",
            LAMBDA_FUNCTION,
            lambda r: with_env(r, "AGENTSTAGE_BEDROCK_GUARDRAIL_ID", None),
        ),
        selects=_calls_a_model,
    ),
    replace(
        edit(
            "function names a guardrail the stack does not define",
            "AGS-AWS-005",
            LAMBDA_FUNCTION,
            lambda r: with_env(r, "AGENTSTAGE_BEDROCK_GUARDRAIL_ID", "lenient00000"),
        ),
        selects=_calls_a_model,
    ),
    edit(
        "prompt attacks not filtered",
        "AGS-AWS-006",
        AWS_GUARDRAIL,
        _weaken_guardrail("PROMPT_ATTACK", inputStrength="NONE"),
    ),
    edit("hate only detected", "AGS-AWS-006", AWS_GUARDRAIL, _weaken_guardrail("HATE", outputAction="NONE")),
    setting("log group on an AWS key", "AGS-AWS-007", AWS_LOG_GROUP, "kmsKeyId", None),
    setting("table on an AWS key", "AGS-AWS-007", AWS_TABLE, "serverSideEncryption.kmsKeyArn", None),
    setting("secret on an AWS key", "AGS-AWS-007", "aws:secretsmanager/secret:Secret", "kmsKeyId", None),
    setting(
        "topic on the AWS managed key",
        "AGS-AWS-007",
        "aws:sns/topic:Topic",
        "kmsMasterKeyId",
        "alias/aws/sns",
    ),
    replace(
        setting("function environment on an AWS key", "AGS-AWS-007", LAMBDA_FUNCTION, "kmsKeyArn", None),
        selects=lambda r: bool(r.get("environment.variables")),
    ),
    setting(
        "route without authorization",
        "AGS-AWS-008",
        "aws:apigatewayv2/route:Route",
        "authorizationType",
        "NONE",
    ),
    Mutation(
        "public function URL",
        "AGS-AWS-009",
        LAMBDA_FUNCTION,
        _add(
            "aws:lambda/functionUrl:FunctionUrl",
            "agent-url",
            lambda r: {"functionName": r.get("name"), "authorizationType": "NONE"},
        ),
    ),
    setting(
        "any API may invoke the function",
        "AGS-AWS-010",
        "aws:lambda/permission:Permission",
        "sourceArn",
        None,
    ),
    edit(
        "service-wide action",
        "AGS-AWS-011",
        AWS_ROLE_POLICY,
        lambda r: with_statement(
            r, {"Action": "dynamodb:*", "Resource": "arn:aws:dynamodb:eu-west-1:1:table/x"}
        ),
    ),
    edit(
        "scoped action on every resource",
        "AGS-AWS-011",
        AWS_ROLE_POLICY,
        lambda r: with_statement(r, {"Action": "secretsmanager:GetSecretValue", "Resource": "*"}),
    ),
    setting(
        "full access managed policy on the role",
        "AGS-AWS-012",
        AWS_ROLE,
        "managedPolicyArns",
        ["arn:aws:iam::aws:policy/AmazonBedrockFullAccess"],
    ),
    Mutation(
        "AdministratorAccess attached",
        "AGS-AWS-012",
        AWS_ROLE,
        _add(
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            "agent-admin",
            lambda r: {"role": r.get("name"), "policyArn": ADMINISTRATOR},
        ),
    ),
    replace(
        edit("trust without aws:SourceAccount", "AGS-AWS-013", AWS_ROLE, _without_trust_condition),
        selects=_trusts_a_service,
    ),
    setting("point-in-time recovery off", "AGS-AWS-014", AWS_TABLE, "pointInTimeRecovery.enabled", False),
    replace(
        setting("deletion protection off", "AGS-AWS-015", AWS_TABLE, "deletionProtectionEnabled", False),
        stacks=("pilot-aws-prod",),
    ),
    setting("log group never expires", "AGS-AWS-016", AWS_LOG_GROUP, "retentionInDays", None),
    setting("log retention below the stack minimum", "AGS-AWS-016", AWS_LOG_GROUP, "retentionInDays", 7),
    setting("queue on the AWS managed key", "AGS-AWS-007", AWS_QUEUE, "kmsMasterKeyId", "alias/aws/sqs"),
    setting(
        "a method anyone may call", "AGS-AWS-019", "aws:apigateway/method:Method", "authorization", "NONE"
    ),
    replace(
        setting("a queue without its dead-letter queue", "AGS-AWS-020", AWS_QUEUE, "redrivePolicy", None),
        selects=lambda r: bool(r.get("redrivePolicy")),
    ),
    setting(
        "vector database with passwords",
        "AGS-AWS-021",
        "aws:rds/cluster:Cluster",
        "iamDatabaseAuthenticationEnabled",
        False,
    ),
    setting(
        "vector database on a public address",
        "AGS-AWS-022",
        "aws:rds/clusterInstance:ClusterInstance",
        "publiclyAccessible",
        True,
    ),
    replace(
        edit(
            "a role that receives from every queue",
            "AGS-AWS-023",
            AWS_ROLE_POLICY,
            lambda r: with_statement(
                r, {"Action": "sqs:ReceiveMessage", "Resource": "arn:aws:sqs:eu-west-1:123456789012:*"}
            ),
        ),
        stacks=("foundation-aws",),
    ),
)

ACCOUNT = "azure-native:cognitiveservices:Account"
SEARCH = "azure-native:search:Service"
COSMOS = "azure-native:cosmosdb:DatabaseAccount"
STORAGE = "azure-native:storage:StorageAccount"
VAULT = "azure-native:keyvault:Vault"
WORKSPACE = "azure-native:operationalinsights:Workspace"
APP_INSIGHTS = "azure-native:applicationinsights:Component"
DEPLOYMENT = "azure-native:cognitiveservices:Deployment"
KNOWLEDGE_SOURCE = "AGENTSTAGE_KNOWLEDGE_SOURCE"

MUTATIONS: tuple[Mutation, ...] = (
    setting("openai local auth on", "AGS-AZ-001", ACCOUNT, "properties.disableLocalAuth", False),
    setting("search api keys on", "AGS-AZ-002", SEARCH, "disableLocalAuth", False),
    setting("cosmos keys on", "AGS-AZ-004", COSMOS, "disableLocalAuth", False),
    setting("storage shared key on", "AGS-AZ-005", STORAGE, "allowSharedKeyAccess", True),
    setting("app insights ikey auth on", "AGS-AZ-006", APP_INSIGHTS, "disableLocalAuth", False),
    setting("log analytics shared key on", "AGS-AZ-007", WORKSPACE, "features.disableLocalAuth", False),
    setting("scm basic auth on", "AGS-AZ-012", "azure-native:web:WebAppScmAllowed", "allow", True),
    setting("ftp basic auth on", "AGS-AZ-012", "azure-native:web:WebAppFtpAllowed", "allow", True),
    setting("app identity removed", "AGS-AZ-009", WEB_APP, "identity", None),
    setting(
        "role widened to Contributor",
        "AGS-AZ-010",
        ROLE_ASSIGNMENT,
        "roleDefinitionId",
        ROLE_PREFIX + FORBIDDEN_ROLES["Contributor"],
    ),
    Mutation(
        "Owner granted on the resource group",
        "AGS-AZ-010",
        "azure-native:resources:ResourceGroup",
        _grant_owner,
    ),
    edit(
        "plaintext API key in app settings",
        "AGS-AZ-020",
        WEB_APP,
        lambda r: with_app_setting(r, "SEARCH_API_KEY", "2a4c6e8f0b1d3f5a7c9e1b3d5f7a9c0e"),
    ),
    edit(
        "storage connection string with key",
        "AGS-AZ-020",
        WEB_APP,
        lambda r: with_app_setting(
            r,
            "AzureWebJobsStorage",
            "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abcdefghijklmnop==",
        ),
    ),
    setting("vault purge protection off", "AGS-AZ-021", VAULT, "properties.enablePurgeProtection", False),
    setting("vault access policies", "AGS-AZ-022", VAULT, "properties.enableRbacAuthorization", False),
    setting("app TLS 1.0", "AGS-AZ-032", WEB_APP, "siteConfig.minTlsVersion", "1.0"),
    setting("storage TLS 1.0", "AGS-AZ-032", STORAGE, "minimumTlsVersion", "TLS1_0"),
    setting("cosmos TLS 1.0", "AGS-AZ-032", COSMOS, "minimalTlsVersion", "Tls"),
    setting("app accepts HTTP", "AGS-AZ-033", WEB_APP, "httpsOnly", False),
    setting("storage accepts HTTP", "AGS-AZ-033", STORAGE, "enableHttpsTrafficOnly", False),
    setting("plain FTP allowed", "AGS-AZ-034", WEB_APP, "siteConfig.ftpsState", "AllAllowed"),
    setting("anonymous blobs allowed", "AGS-AZ-035", STORAGE, "allowBlobPublicAccess", True),
    *(
        Mutation(f"diagnostic setting of {t.rsplit(':', 1)[-1]} dropped", "AGS-AZ-040", t, _drop_diagnostics)
        for t in (ACCOUNT, SEARCH, VAULT, COSMOS, STORAGE, WEB_APP, WORKSPACE)
    ),
    setting("retention below the stack minimum", "AGS-AZ-041", WORKSPACE, "retentionInDays", 7),
    setting("classic app insights", "AGS-AZ-042", APP_INSIGHTS, "workspaceResourceId", None),
    setting("capacity above the stage limit", "AGS-AZ-052", DEPLOYMENT, "sku.capacity", 5000),
    setting("free search tier", "AGS-AZ-053", SEARCH, "sku.name", "free"),
    replace(
        setting(
            "premium vault before the enterprise stage", "AGS-AZ-053", VAULT, "properties.sku.name", "premium"
        ),
        stacks=("pilot", "foundation"),
    ),
    setting("content filter removed", "AGS-AZ-060", DEPLOYMENT, "properties.raiPolicyName", None),
    setting(
        "content filter swapped for an undefined one",
        "AGS-AZ-060",
        DEPLOYMENT,
        "properties.raiPolicyName",
        "lenient",
    ),
    edit("jailbreaks not blocked", "AGS-AZ-061", "azure-native:cognitiveservices:RaiPolicy", _weaken_filter),
    replace(
        edit(
            "agent token budget removed",
            "AGS-AI-001",
            WEB_APP,
            lambda r: _edit_agents(r, lambda agents: agents[0].pop("token_budget")),
        ),
        selects=runs_agents,
    ),
    replace(
        edit(
            "a ledger per instance",
            "AGS-AI-002",
            WEB_APP,
            lambda r: with_app_setting(r, "AGENTSTAGE_BUDGET_BACKEND", "sqlite"),
        ),
        selects=runs_agents,
    ),
    replace(
        edit(
            "a runtime budget below one call's hold",
            "AGS-AI-003",
            WEB_APP,
            lambda r: with_app_setting(
                r,
                "AGENTSTAGE_BUDGETS",
                '[{"name": "tiny", "scope": "tenant", "window_seconds": 60, "tokens": 1000}]',
            ),
        ),
        selects=runs_agents,
    ),
    setting("a search service nothing searches", "AGS-AZ-070", SEARCH, "searchServiceName", "ags-orphan"),
    Mutation(
        "an agent's identity may write the index (the grant)",
        "AGS-AZ-071",
        SEARCH,
        _agent_may_write_the_index(lambda agent, assignment: assignment),
    ),
    Mutation(
        "an agent's identity may write the index (the agent)",
        "AGS-AZ-072",
        SEARCH,
        _agent_may_write_the_index(lambda agent, assignment: agent),
    ),
    Mutation(
        "documents account takes shared keys",
        "AGS-AZ-073",
        WEB_APP,
        _documents_take_shared_keys,
        selects=_ingests_from_blobs,
    ),
    *AWS_MUTATIONS,
)
