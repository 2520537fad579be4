"""Identity: no keys where Entra ID works, managed identities for compute, least-privilege roles."""

from __future__ import annotations

import json
from typing import Any

from components.azure.role_ids import BUILTIN_ROLES, FORBIDDEN_ROLES
from core.graph import Resource, ResourceGraph
from core.workloads import CONTAINER_APP, CONTAINER_GROUP, WEB_APP
from policies.findings import Severity
from policies.rules.context import StackContext
from policies.rules.model import Rule, Verdict, failed, passed
from policies.rules.predicates import broad_actions, resolve, role_guid, shown

ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
ROLE_DEFINITION = "azure-native:authorization:RoleDefinition"
_ROLE_NAMES = {guid.lower(): name for name, guid in {**BUILTIN_ROLES, **FORBIDDEN_ROLES}.items()}
_FORBIDDEN_GUIDS = {guid.lower() for guid in FORBIDDEN_ROLES.values()}

_LOCAL_AUTH_RATIONALE = (
    "{service} keys are long-lived shared secrets: anyone who obtains one (from a log, a developer "
    "laptop, an app setting) has full data access, unattributed, until someone rotates it. With local "
    "auth off, every call needs an Entra ID token for an identity that holds an explicit RBAC role, so "
    "access is auditable, revocable per identity and subject to Conditional Access."
)


def _secure_setting(path: str, secure: Any, default: Any) -> Any:
    """A check that ``path`` holds ``secure``; ``default`` is what Azure applies when it is unset."""

    def check(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
        value = resource.get(path)
        effective = default if value is None else value
        if effective == secure:
            return passed(f"{path} is {shown(secure)}")
        suffix = f" (Azure's default when unset is {default!r})" if value is None else ""
        return failed(f"{path} is {shown(value)}{suffix}; it must be {secure!r}")

    return check


def local_auth_rule(
    rule_id: str,
    service: str,
    types: str | tuple[str, ...],
    path: str,
    secure: Any,
    *,
    default: Any,
    reference: str,
) -> Rule:
    """A rule that ``service`` refuses keys: ``path`` must be ``secure``."""
    return Rule(
        id=rule_id,
        title=f"{service} accepts Entra ID only (local/key auth disabled)",
        severity=Severity.HIGH,
        rationale=_LOCAL_AUTH_RATIONALE.format(service=service),
        remediation=(
            f"Set `{path}` to `{json.dumps(secure)}` on the {service} resource and grant the calling managed "
            "identity the narrow data-plane role it needs (the component's grant_* method) instead of "
            "distributing keys."
        ),
        types=(types,) if isinstance(types, str) else types,
        check=_secure_setting(path, secure, default),
        reference=reference,
    )


def _identity_attached(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    identity = resource.get("identity") or {}
    kind = str(identity.get("type") or "None")
    if kind.replace(" ", "").lower() in ("none", ""):
        return failed(f"identity.type is {shown(identity.get('type'))}: the workload has no managed identity")
    if "userassigned" in kind.lower() and not identity.get("userAssignedIdentities"):
        return failed("identity.type is UserAssigned but identity.userAssignedIdentities is empty")
    return passed(f"runs as a managed identity ({kind})")


def _role_is_narrow(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    role_id = resource.get("roleDefinitionId")
    guid = role_guid(role_id)
    target = resolve(graph, resource.get("scope"))
    scope = f"{target.name} ({target.type})" if target else shown(resource.get("scope"))
    if guid is None:
        return failed(
            f"roleDefinitionId is {shown(role_id)}: the granted role cannot be reviewed before deployment"
        )
    if guid in _FORBIDDEN_GUIDS:
        return failed(f"grants {_ROLE_NAMES[guid]} on {scope}")
    custom = resolve(graph, role_id)
    if custom is not None and custom.type == ROLE_DEFINITION:
        wildcards = _custom_role_wildcards(custom)
        if wildcards:
            return failed(f"grants custom role {custom.name} with wildcard actions {wildcards} on {scope}")
        return passed(f"grants custom role {custom.name} without wildcard actions")
    return passed(f"grants {_ROLE_NAMES.get(guid, guid)} on {scope}")


def _custom_role_wildcards(role: Resource) -> list[str]:
    permissions = role.get("permissions") or []
    return [
        action
        for permission in permissions
        if isinstance(permission, dict)
        for key in ("actions", "dataActions")
        for action in broad_actions(permission.get(key))
    ]


def _custom_role_narrow(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    wildcards = _custom_role_wildcards(resource)
    if wildcards:
        return failed(f"permissions grant wildcard actions {wildcards}")
    return passed("permissions list explicit actions only")


# --- AWS ---------------------------------------------------------------------------------------------

AWS_ADMIN_POLICIES = frozenset(
    {
        "arn:aws:iam::aws:policy/AdministratorAccess",
        "arn:aws:iam::aws:policy/PowerUserAccess",
        "arn:aws:iam::aws:policy/IAMFullAccess",
    }
)
IAM_ATTACHMENTS = (
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
)
IAM_DOCUMENTS = ("aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy")


def _aws_iam_narrow(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    if resource.type in IAM_ATTACHMENTS:
        arn = resource.get("policyArn")
        if arn in AWS_ADMIN_POLICIES:
            return failed(f"attaches {arn}")
        return passed(f"attaches {shown(arn)}")
    document = resource.get("policy")
    try:
        statements = _statements(json.loads(document) if isinstance(document, str) else document)
    except (ValueError, TypeError):
        return failed(f"policy is {shown(document)}: not a JSON policy document that can be reviewed")
    broad = [
        action
        for statement in statements
        if statement.get("Effect") == "Allow"
        for action in _as_list(statement.get("Action"))
        if action == "*"
        or action.lower() == "iam:*"
        or (action.endswith(":*") and "*" in _as_list(statement.get("Resource")))
    ]
    if broad:
        return failed(f"policy allows {sorted(set(broad))}")
    return passed("policy allows explicit actions only")


def _statements(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        raise TypeError("policy document is not an object")
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, dict)]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value is not None else []


RULES = (
    local_auth_rule(
        "AGS-AZ-001",
        "Azure OpenAI / AI Services",
        "azure-native:cognitiveservices:Account",
        "properties.disableLocalAuth",
        True,
        default=False,
        reference="https://learn.microsoft.com/azure/ai-services/disable-local-auth",
    ),
    local_auth_rule(
        "AGS-AZ-002",
        "Azure AI Search",
        "azure-native:search:Service",
        "disableLocalAuth",
        True,
        default=False,
        reference="https://learn.microsoft.com/azure/search/search-security-enable-roles",
    ),
    local_auth_rule(
        "AGS-AZ-003",
        "Service Bus",
        "azure-native:servicebus:Namespace",
        "disableLocalAuth",
        True,
        default=False,
        reference="https://learn.microsoft.com/azure/service-bus-messaging/disable-local-authentication",
    ),
    local_auth_rule(
        "AGS-AZ-004",
        "Cosmos DB",
        "azure-native:cosmosdb:DatabaseAccount",
        "disableLocalAuth",
        True,
        default=False,
        reference="https://learn.microsoft.com/azure/cosmos-db/how-to-setup-rbac#disable-local-auth",
    ),
    local_auth_rule(
        "AGS-AZ-005",
        "Storage",
        "azure-native:storage:StorageAccount",
        "allowSharedKeyAccess",
        False,
        default=True,
        reference="https://learn.microsoft.com/azure/storage/common/shared-key-authorization-prevent",
    ),
    local_auth_rule(
        "AGS-AZ-006",
        "Application Insights",
        "azure-native:applicationinsights:Component",
        "disableLocalAuth",
        True,
        default=False,
        reference="https://learn.microsoft.com/azure/azure-monitor/app/azure-ad-authentication",
    ),
    local_auth_rule(
        "AGS-AZ-007",
        "Log Analytics",
        "azure-native:operationalinsights:Workspace",
        "features.disableLocalAuth",
        True,
        default=False,
        reference="https://learn.microsoft.com/azure/azure-monitor/logs/azure-ad-authentication-logs",
    ),
    local_auth_rule(
        "AGS-AZ-008",
        "Container Registry",
        "azure-native:containerregistry:Registry",
        "adminUserEnabled",
        False,
        default=False,
        reference="https://learn.microsoft.com/azure/container-registry/container-registry-authentication#admin-account",
    ),
    Rule(
        id="AGS-AZ-009",
        title="Compute runs as a managed identity",
        severity=Severity.HIGH,
        rationale=(
            "Without a managed identity, code can only reach models, vaults and data with keys or client "
            "secrets stored somewhere it can read. A managed identity's credentials are issued and rotated "
            "by the platform and never leave it."
        ),
        remediation=(
            "Attach the agent's user-assigned identity (`identity: {type: UserAssigned, "
            "userAssignedIdentities: [<id>]}`) and grant it roles with the components' grant_* methods."
        ),
        types=(WEB_APP, CONTAINER_APP, CONTAINER_GROUP, "azure-native:containerservice:ManagedCluster"),
        check=_identity_attached,
        reference="https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/overview",
    ),
    Rule(
        id="AGS-AZ-010",
        title="Role assignments grant no Owner, Contributor, User Access Administrator or wildcard role",
        severity=Severity.CRITICAL,
        rationale=(
            "Owner and User Access Administrator can grant themselves or others any access; Contributor "
            "can read keys, change network rules and delete data. An agent compromised through prompt "
            "injection acts with its identity's roles, so it must hold only data-plane roles on the exact "
            "resources it uses."
        ),
        remediation=(
            "Replace the assignment with the narrow built-in data-plane role on the single resource "
            "(e.g. Cognitive Services OpenAI User on the account, Key Vault Secrets User on the vault); "
            "use the component's grant_* method, which refuses broad roles."
        ),
        types=(ROLE_ASSIGNMENT,),
        check=_role_is_narrow,
        needs_graph=True,
        reference="https://learn.microsoft.com/azure/role-based-access-control/best-practices",
    ),
    Rule(
        id="AGS-AZ-011",
        title="Custom roles list explicit actions (no wildcards)",
        severity=Severity.HIGH,
        rationale=(
            "A wildcard action (`*`, `Microsoft.Storage/*`) grants every present and future operation of "
            "the provider, including ones added after the role was reviewed; only `*/read` wildcards are "
            "read-only."
        ),
        remediation="List the exact actions and dataActions the role needs; keep wildcards to `.../read`.",
        types=(ROLE_DEFINITION,),
        check=_custom_role_narrow,
        reference="https://learn.microsoft.com/azure/role-based-access-control/custom-roles",
    ),
    local_auth_rule(
        "AGS-AZ-012",
        "App Service publishing (FTP and SCM basic auth)",
        ("azure-native:web:WebAppFtpAllowed", "azure-native:web:WebAppScmAllowed"),
        "allow",
        False,
        default=True,
        reference="https://learn.microsoft.com/azure/app-service/configure-basic-auth-disable",
    ),
    Rule(
        id="AGS-AWS-001",
        title="IAM grants no administrator or wildcard permissions",
        severity=Severity.CRITICAL,
        rationale=(
            "AdministratorAccess, PowerUserAccess, IAMFullAccess, `*` or `iam:*` let a compromised agent "
            "escalate to full account control; service-wide wildcards on every resource are nearly as broad."
        ),
        remediation=(
            "Attach a policy listing the exact actions on the exact resource ARNs the agent uses "
            "(e.g. `bedrock:InvokeModel` on the model ARN, `sqs:SendMessage` on the queue)."
        ),
        types=(*IAM_ATTACHMENTS, *IAM_DOCUMENTS),
        check=_aws_iam_narrow,
        reference="https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#grant-least-privilege",
    ),
)
