"""agentstage's custom checkov checks for ARM resources that checkov itself has no checks for.

checkov ships no ARM checks for Service Bus, Log Analytics, Application Insights or model deployments,
none for storage shared-key access or account-level blob public access, and its Cosmos DB local-auth
check (CKV_AZURE_140) only looks at the NoSQL kind. These fill the gaps agentstage's secure defaults
rely on, so flipping one of those defaults is caught by a scanner security teams already run.

This module runs inside checkov's own environment (``--external-checks-dir``), so it imports only
checkov. Ids follow checkov's ``CKV_<PROVIDER>_<N>`` form under an ``AGS_AZ`` prefix of our own, so they
never collide with checkov's and waivers can name them like any other check. Each check states its
severity (checkov offline has none) and its remediation (shown as the finding's guideline).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checkov.arm.base_resource_check import BaseResourceCheck
from checkov.common.bridgecrew.severities import BcSeverities, Severities
from checkov.common.models.enums import CheckCategories, CheckResult

MISSING = object()


def value_at(conf: dict[str, Any], path: str) -> Any:
    """The value at a ``/``-separated path of an ARM resource, or ``MISSING``."""
    value: Any = conf
    for key in path.split("/"):
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value


class ArmValueCheck(BaseResourceCheck):
    """Passes when the value at ``path`` satisfies ``passes``; a missing value fails (no implicit defaults)."""

    def __init__(
        self,
        *,
        id: str,
        name: str,
        resource: str,
        path: str,
        passes: Callable[[Any], bool],
        severity: str,
        remediation: str,
        category: CheckCategories,
        applies: Callable[[dict[str, Any]], bool] = lambda conf: True,
    ) -> None:
        super().__init__(
            name=name, id=id, categories=(category,), supported_resources=(resource,), guideline=remediation
        )
        self.severity = Severities[severity]
        self.path = path
        self.passes = passes
        self.applies = applies

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        if not self.applies(conf):
            return CheckResult.UNKNOWN
        self.evaluated_keys = [self.path]
        value = value_at(conf, self.path)
        return CheckResult.PASSED if value is not MISSING and self.passes(value) else CheckResult.FAILED


def is_true(value: Any) -> bool:
    return value is True


def is_false(value: Any) -> bool:
    return value is False


def _is_flex_app(conf: dict[str, Any]) -> bool:
    return value_at(conf, "properties/functionAppConfig/deployment/storage") is not MISSING


def _is_non_nosql_cosmos(conf: dict[str, Any]) -> bool:
    # CKV_AZURE_140 covers GlobalDocumentDB, ARM's default kind; this covers MongoDB and Parse.
    return conf.get("kind", "GlobalDocumentDB") != "GlobalDocumentDB"


HIGH, MEDIUM = BcSeverities.HIGH, BcSeverities.MEDIUM
IAM, LOGGING, NETWORK = CheckCategories.IAM, CheckCategories.LOGGING, CheckCategories.NETWORKING

CHECKS = [
    ArmValueCheck(
        id="CKV_AGS_AZ_1",
        name="Ensure Service Bus namespaces disable local (SAS key) authentication",
        resource="Microsoft.ServiceBus/namespaces",
        path="properties/disableLocalAuth",
        passes=is_true,
        severity=HIGH,
        remediation="Set properties.disableLocalAuth to true and grant senders/receivers Azure Service Bus Data roles.",
        category=IAM,
    ),
    ArmValueCheck(
        id="CKV_AGS_AZ_2",
        name="Ensure Service Bus namespaces require TLS 1.2 or newer",
        resource="Microsoft.ServiceBus/namespaces",
        path="properties/minimumTlsVersion",
        passes=lambda v: v in ("1.2", "1.3"),
        severity=HIGH,
        remediation="Set properties.minimumTlsVersion to '1.2'.",
        category=NETWORK,
    ),
    ArmValueCheck(
        id="CKV_AGS_AZ_3",
        name="Ensure Log Analytics workspaces retain data for at least 30 days",
        resource="Microsoft.OperationalInsights/workspaces",
        path="properties/retentionInDays",
        passes=lambda v: isinstance(v, int) and v >= 30,
        severity=MEDIUM,
        remediation="Set properties.retentionInDays to 30 or more (the stack's logRetentionDays).",
        category=LOGGING,
    ),
    ArmValueCheck(
        id="CKV_AGS_AZ_4",
        name="Ensure Log Analytics workspaces disable local (shared key) authentication",
        resource="Microsoft.OperationalInsights/workspaces",
        path="properties/features/disableLocalAuth",
        passes=is_true,
        severity=HIGH,
        remediation="Set properties.features.disableLocalAuth to true; ingest and query with Entra ID.",
        category=IAM,
    ),
    ArmValueCheck(
        id="CKV_AGS_AZ_5",
        name="Ensure Application Insights disables local (instrumentation key) authentication",
        resource="Microsoft.Insights/components",
        path="properties/DisableLocalAuth",
        passes=is_true,
        severity=HIGH,
        remediation="Set properties.DisableLocalAuth to true and grant publishers Monitoring Metrics Publisher.",
        category=IAM,
    ),
    ArmValueCheck(
        id="CKV_AGS_AZ_6",
        name="Ensure Application Insights is workspace-based",
        resource="Microsoft.Insights/components",
        path="properties/WorkspaceResourceId",
        passes=lambda v: isinstance(v, str) and bool(v.strip()),
        severity=MEDIUM,
        remediation="Set properties.WorkspaceResourceId to the stack's Log Analytics workspace.",
        category=LOGGING,
    ),
    ArmValueCheck(
        id="CKV_AGS_AZ_7",
        name="Ensure Azure OpenAI model deployments run behind a content filter",
        resource="Microsoft.CognitiveServices/accounts/deployments",
        path="properties/raiPolicyName",
        # Microsoft.Nil is the built-in "no filtering" policy.
        passes=lambda v: isinstance(v, str) and bool(v.strip()) and v != "Microsoft.Nil",
        severity=HIGH,
        remediation="Set properties.raiPolicyName to a content filter (RAI policy) of the account.",
        category=CheckCategories.GENERAL_SECURITY,
    ),
    ArmValueCheck(
        id="CKV_AGS_AZ_8",
        name="Ensure Cosmos DB accounts of every API kind disable local (key) authentication",
        resource="Microsoft.DocumentDB/databaseAccounts",
        path="properties/disableLocalAuth",
        passes=is_true,
        severity=HIGH,
        remediation="Set properties.disableLocalAuth to true and use Cosmos DB data-plane role assignments.",
        category=IAM,
        applies=_is_non_nosql_cosmos,
    ),
    ArmValueCheck(
        id="CKV_AGS_AZ_9",
        name="Ensure Flex Consumption function apps load their package with a managed identity",
        resource="Microsoft.Web/sites",
        path="properties/functionAppConfig/deployment/storage/authentication/type",
        passes=lambda v: v in ("UserAssignedIdentity", "SystemAssignedIdentity"),
        severity=HIGH,
        remediation="Set functionAppConfig.deployment.storage.authentication.type to UserAssignedIdentity.",
        category=IAM,
        applies=_is_flex_app,
    ),
    ArmValueCheck(
        id="CKV_AGS_AZ_10",
        name="Ensure storage accounts disallow shared key authorization",
        resource="Microsoft.Storage/storageAccounts",
        path="properties/allowSharedKeyAccess",
        passes=is_false,
        severity=HIGH,
        remediation="Set properties.allowSharedKeyAccess to false; use Entra ID and Storage data roles.",
        category=IAM,
    ),
    ArmValueCheck(
        id="CKV_AGS_AZ_11",
        name="Ensure storage accounts disallow anonymous blob public access",
        resource="Microsoft.Storage/storageAccounts",
        path="properties/allowBlobPublicAccess",
        passes=is_false,
        severity=HIGH,
        remediation="Set properties.allowBlobPublicAccess to false.",
        category=CheckCategories.GENERAL_SECURITY,
    ),
]
