"""Predicates several rules share, so that each question ("is this a secret?", "does this setting
point at that resource?") is answered once and the same way everywhere.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agent_runtime.settings_contract import env_name
from core.graph import SECRET, UNKNOWN, Resource, ResourceGraph
from core.workloads import settings


def is_unknown(value: Any) -> bool:
    """Only known after deployment: a rule cannot prove anything about it."""
    return value == UNKNOWN


def shown(value: Any) -> str:
    """A value as a message shows it: never the content of a secret, ``unset`` for missing."""
    if value is None:
        return "unset"
    if value == SECRET:
        return "a secret value"
    if is_unknown(value):
        return "unknown until deployment"
    return repr(value)


# --- references between resources -----------------------------------------------------------------


def refers_to(value: Any, target: Resource) -> bool:
    """Whether the id ``value`` (a ``resourceUri``, a ``scope``...) is ``target`` or one of its children.

    Children count (``<account id>/blobServices/default``): a setting on a sub-resource of
    ``target`` is a setting for ``target``.
    """
    if not isinstance(value, str) or target.mock_id is None:
        return False
    return value == target.mock_id or value.startswith(target.mock_id + "/")


def referencing(graph: ResourceGraph, type_: str, path: str, target: Resource) -> list[Resource]:
    """Resources of ``type_`` whose input at ``path`` refers to ``target``."""
    return [r for r in graph.of_type(type_) if refers_to(r.get(path), target)]


def resolve(graph: ResourceGraph, value: Any) -> Resource | None:
    """The resource of the graph an id refers to (itself or as the parent of a sub-resource)."""
    if not isinstance(value, str):
        return None
    return next((r for r in graph.cloud_resources() if refers_to(value, r)), None)


# --- workloads: who runs what, as whom ------------------------------------------------------------

IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
AGENTS_SETTING = env_name("agents")


def setting_values(resource: Resource) -> dict[str, Any]:
    """A workload's environment settings by name (``AGENTSTAGE_*`` and the platform's own)."""
    return {setting.name: setting.value for setting in settings(resource)}


def runs_agents(resource: Resource) -> bool:
    """Whether a workload runs agents: it sets AGENTSTAGE_AGENTS to anything but the empty list.

    Every cloud runtime must set it; the knowledge ingestion worker sets ``[]`` and runs none. A value
    that cannot be read (unknown, secret) counts as agents, so no rule about agents is skipped for it.
    """
    values = setting_values(resource)
    if AGENTS_SETTING not in values:
        return False
    try:
        return json.loads(values[AGENTS_SETTING]) != []
    except (TypeError, ValueError):
        return True


def workload_identities(graph: ResourceGraph, workload: Resource) -> list[Resource]:
    """The user-assigned identities ``workload`` runs as.

    Azure compute names them in ``identity.userAssignedIdentities``; a Kubernetes workload names its
    identity's client id in its environment (Workload ID), so it depends on that identity instead.
    """
    identity = workload.get("identity")
    named = identity.get("userAssignedIdentities") if isinstance(identity, dict) else None
    if named:
        return [r for r in graph.of_type(IDENTITY) if r.mock_id in named]
    return [r for r in graph.of_type(IDENTITY) if r.urn in workload.dependencies]


# --- setting values ----------------------------------------------------------------------------------


def tls_at_least_1_2(value: Any) -> bool:
    """``1.2``, ``1.3``, ``TLS1_2``, ``Tls12``, ``TLS1_3`` ...: every spelling Azure APIs use."""
    if not isinstance(value, str):
        return False
    digits = re.sub(r"[^0-9]", "", value)
    return digits in ("12", "13")


# --- secrets -----------------------------------------------------------------------------------------

KEY_VAULT_REFERENCE = re.compile(
    r"^@Microsoft\.KeyVault\((SecretUri=https://|VaultName=).+\)$", re.IGNORECASE
)

# A setting named like this holds a credential: it may only be a vault reference.
_SECRET_NAME_ANYWHERE = re.compile(r"PASSWORD|PASSWD|SECRET|PRIVATE_?KEY", re.IGNORECASE)
_SECRET_NAME_SUFFIX = re.compile(
    r"(^|[_.\-])(KEY|KEYS|APIKEY|TOKEN|PWD|SAS|SAS_?TOKEN|CONNECTION_?STRING|CONN_?STR|DSN)$", re.IGNORECASE
)

# Identity-based connections (``AzureWebJobsStorage__credential=managedidentity``) configure *how* to
# authenticate with an identity; they hold no credential whatever the connection's name says.
_IDENTITY_CONNECTION_SUFFIXES = (
    "__accountname",
    "__credential",
    "__clientid",
    "__serviceuri",
    "__blobserviceuri",
    "__queueserviceuri",
    "__tableserviceuri",
    "__fullyqualifiednamespace",
)

NOT_SECRET_NAMES = frozenset({"APPLICATIONINSIGHTS_CONNECTION_STRING"})
"""Names that match the secret patterns but hold no credential.

Application Insights' connection string only names the ingestion endpoint and the resource;
Microsoft documents that it is not a security token, and with local auth disabled on the component
(AGS-AZ-006) ingestion needs an Entra ID token anyway.
"""

# Values that are credentials whatever the setting is called.
_SECRET_VALUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "a storage/Service Bus/Event Hubs key",
        re.compile(r"(AccountKey|SharedAccessKey)=[^;]{8,}", re.IGNORECASE),
    ),
    ("a SAS token", re.compile(r"(^|[?&;])sig=[A-Za-z0-9%+/=]{16,}", re.IGNORECASE)),
    ("a SAS connection string", re.compile(r"SharedAccessSignature=", re.IGNORECASE)),
    ("a password in a connection string", re.compile(r"(^|;)\s*(Password|Pwd)\s*=\s*[^;\s]+", re.IGNORECASE)),
    ("credentials in a URL", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.IGNORECASE)),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("an OpenAI-style API key", re.compile(r"\bsk-(proj-)?[A-Za-z0-9_-]{20,}")),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")),
    ("an Azure access key", re.compile(r"^[A-Za-z0-9+/]{43}=$|^[A-Za-z0-9+/]{86}==$")),
)


def secret_name(name: str) -> bool:
    """Whether a setting's name says it carries a credential (``*_KEY``, ``*PASSWORD*``, ``*SECRET*``...)."""
    if name.upper() in NOT_SECRET_NAMES or name.lower().endswith(_IDENTITY_CONNECTION_SUFFIXES):
        return False
    return bool(_SECRET_NAME_ANYWHERE.search(name) or _SECRET_NAME_SUFFIX.search(name))


_DSN_NAME = re.compile(r"(^|[_.\-])(DSN|CONNECTION_?STRING|CONN_?STR)$", re.IGNORECASE)
_DSN_PASSWORD = re.compile(
    r"(^|\s)password\s*=|[a-z][a-z0-9+.-]*://[^/\s@]*:[^/\s@]*@|[?&]password=", re.IGNORECASE
)
_DSN_SHAPE = re.compile(r"^(\s*[a-z_]+\s*=\s*\S+)+\s*$|^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE)


def credential_free_connection(name: str, value: Any) -> bool:
    """Whether a connection-string setting demonstrably holds no credential: a libpq ``key=value`` DSN or a
    URL that names no password (the client then signs in with a token it mints, such as RDS IAM
    authentication, or a certificate). Anything else named like a connection string may hold one."""
    if not _DSN_NAME.search(name) or not isinstance(value, str) or value in (SECRET, UNKNOWN):
        return False
    return bool(_DSN_SHAPE.match(value)) and not _DSN_PASSWORD.search(value)


def secret_value_kind(value: Any) -> str | None:
    """What kind of credential a literal value is (``"a SAS token"``), or ``None`` if it looks like none."""
    if not isinstance(value, str) or value in (SECRET, UNKNOWN) or KEY_VAULT_REFERENCE.match(value):
        return None
    for kind, pattern in _SECRET_VALUES:
        if pattern.search(value):
            return kind
    return None


def is_key_vault_reference(value: Any) -> bool:
    return isinstance(value, str) and bool(KEY_VAULT_REFERENCE.match(value))


# --- role assignments --------------------------------------------------------------------------------


def role_guid(role_definition_id: Any) -> str | None:
    """The role definition's GUID: the last segment of ``.../roleDefinitions/<guid>``."""
    if not isinstance(role_definition_id, str) or is_unknown(role_definition_id):
        return None
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def broad_actions(actions: Any) -> list[str]:
    """The wildcard actions of a role's permission list, except read-only ``.../read`` wildcards.

    ``*`` or ``Microsoft.Storage/*`` grant every present and future operation, including writing
    role assignments; ``*/read`` (as in the built-in Reader role) grants reads only.
    """
    if not isinstance(actions, list):
        return []
    return [a for a in actions if isinstance(a, str) and "*" in a and not a.lower().endswith("/read")]


# --- diagnostics -------------------------------------------------------------------------------------

WORKSPACE = "azure-native:operationalinsights:Workspace"
DIAGNOSTIC_SETTING = "azure-native:monitor:DiagnosticSetting"

DIAGNOSTICS_TYPES = (
    "azure-native:cognitiveservices:Account",
    "azure-native:search:Service",
    "azure-native:keyvault:Vault",
    "azure-native:cosmosdb:DatabaseAccount",
    "azure-native:servicebus:Namespace",
    "azure-native:eventhub:Namespace",
    "azure-native:web:WebApp",
    "azure-native:storage:StorageAccount",
    "azure-native:eventgrid:SystemTopic",
    "azure-native:apimanagement:ApiManagementService",
    "azure-native:containerservice:ManagedCluster",
    "azure-native:containerregistry:Registry",
    "azure-native:cache:Redis",
    "azure-native:dbforpostgresql:FlexibleServer",
    "azure-native:network:ApplicationGateway",
    "azure-native:network:AzureFirewall",
    WORKSPACE,
)
"""Resource types that emit resource logs through diagnostic settings, curated from Azure Monitor's
supported-categories list. Application Insights is deliberately absent: its telemetry is stored in the
workspace it is based on (AGS-AZ-042), so a diagnostic setting would only duplicate it.
"""


def supports_diagnostics(resource: Resource) -> bool:
    return resource.type in DIAGNOSTICS_TYPES


def is_workspace(graph: ResourceGraph, value: Any) -> bool:
    """Whether an id names a Log Analytics workspace: one of this stack's, or an existing one by ARM id."""
    target = resolve(graph, value)
    if target is not None:
        return target.type == WORKSPACE
    return isinstance(value, str) and "/providers/microsoft.operationalinsights/workspaces/" in value.lower()
