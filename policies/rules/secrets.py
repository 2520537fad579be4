"""Secrets: credentials live in the vault, never in app settings or container environments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.graph import SECRET, UNKNOWN, Resource, ResourceGraph
from core.workloads import AZURE_SETTING_HOLDERS, K8S_WORKLOADS, LAMBDA_FUNCTION, settings
from policies.findings import Severity
from policies.rules.context import StackContext
from policies.rules.model import Check, Rule, Verdict, failed, passed
from policies.rules.predicates import (
    credential_free_connection,
    is_key_vault_reference,
    secret_name,
    secret_value_kind,
    shown,
)

VAULT = "azure-native:keyvault:Vault"

_PLAINTEXT_RATIONALE = (
    "App settings and environment variables are readable by anyone who can read the resource's "
    "configuration (portal, ARM API, deployment history, Pulumi state) and they leak into crash dumps "
    "and diagnostics. A secret there cannot be rotated without a redeployment and is never audited when read. "
    "A Pulumi secret is only encrypted in Pulumi's state: the deployed configuration still holds it in plaintext."
)


def _no_plaintext_secrets(accepted: Callable[[Any], bool], accepted_text: str) -> Check:
    """Settings named like credentials must be ``accepted`` references; no value may look like a credential."""

    def check(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
        problems = []
        found = settings(resource)
        for setting in found:
            if setting.indirect is not None or setting.value is None:
                continue
            kind = secret_value_kind(setting.value)
            if kind is not None:
                problems.append(f"{setting.where}: {setting.name} holds {kind}")
            elif (
                secret_name(setting.name)
                and not accepted(setting.value)
                and not credential_free_connection(setting.name, setting.value)
            ):
                problems.append(
                    f"{setting.where}: {setting.name} is {_described(setting.value)}, not {accepted_text}"
                )
        if problems:
            return failed("; ".join(problems))
        return passed(f"none of its {len(found)} settings holds a credential in plaintext")

    return check


def _described(value: Any) -> str:
    """What a secret-named setting holds, without ever echoing a literal (it may be the credential)."""
    if isinstance(value, str) and value not in (SECRET, UNKNOWN):
        return f"a literal value ({len(value)} characters)"
    return shown(value)


def _aws_secret_pointer(value: Any) -> bool:
    """An ARN the function resolves at run time from Secrets Manager or SSM Parameter Store."""
    return isinstance(value, str) and value.startswith(("arn:aws:secretsmanager:", "arn:aws:ssm:"))


def _vault_recoverable(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    soft_delete = resource.get("properties.enableSoftDelete")
    purge_protection = resource.get("properties.enablePurgeProtection")
    problems = []
    if soft_delete is False:
        problems.append("properties.enableSoftDelete is False")
    if purge_protection is not True:
        problems.append(f"properties.enablePurgeProtection is {shown(purge_protection)}")
    if problems:
        return failed("; ".join(problems) + ": a deleted vault or secret could be purged at once")
    return passed("soft delete and purge protection are on")


def _vault_rbac(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    rbac = resource.get("properties.enableRbacAuthorization")
    policies = resource.get("properties.accessPolicies")
    if rbac is not True:
        return failed(
            f"properties.enableRbacAuthorization is {shown(rbac)}: access is governed by vault access policies"
        )
    if policies:
        return failed(
            f"properties.accessPolicies has {len(policies)} entries, which RBAC mode ignores and reviewers misread"
        )
    return passed("access is granted by Azure RBAC only")


RULES = (
    Rule(
        id="AGS-AZ-020",
        title="No plaintext secrets in app settings or container environment",
        severity=Severity.CRITICAL,
        rationale=_PLAINTEXT_RATIONALE,
        remediation=(
            "Store the secret in the stack's Key Vault and set the setting to a Key Vault reference "
            "(`@Microsoft.KeyVault(SecretUri=https://<vault>.vault.azure.net/secrets/<name>)`; Container "
            "Apps: a `secretRef` to a secret with `keyVaultUrl`; container instances: `secureValue`). Better "
            "still, drop the credential and grant the app's managed identity a role on the target service."
        ),
        types=AZURE_SETTING_HOLDERS,
        check=_no_plaintext_secrets(is_key_vault_reference, "a Key Vault reference"),
        reference="https://learn.microsoft.com/azure/app-service/app-service-key-vault-references",
    ),
    Rule(
        id="AGS-AZ-021",
        title="Key Vault has soft delete and purge protection",
        severity=Severity.HIGH,
        rationale=(
            "Without purge protection anyone with delete rights (or an attacker holding them) can destroy "
            "the vault and every secret and key in it permanently, including keys that encrypt data; "
            "purge protection keeps deleted items recoverable for the whole retention period."
        ),
        remediation="Set `properties.enablePurgeProtection: true` and leave `properties.enableSoftDelete` on.",
        types=(VAULT,),
        check=_vault_recoverable,
        reference="https://learn.microsoft.com/azure/key-vault/general/soft-delete-overview",
    ),
    Rule(
        id="AGS-AZ-022",
        title="Key Vault authorizes with Azure RBAC, not access policies",
        severity=Severity.HIGH,
        rationale=(
            "Vault access policies are granted per vault outside Azure RBAC: they are invisible to access "
            "reviews and PIM, cannot be scoped to a single secret, and anyone with Contributor on the vault "
            "can grant themselves one."
        ),
        remediation=(
            "Set `properties.enableRbacAuthorization: true`, remove `accessPolicies`, and grant "
            "Key Vault Secrets User to the identities that read secrets."
        ),
        types=(VAULT,),
        check=_vault_rbac,
        reference="https://learn.microsoft.com/azure/key-vault/general/rbac-migration",
    ),
    Rule(
        id="AGS-AWS-002",
        title="No plaintext secrets in Lambda environment variables",
        severity=Severity.CRITICAL,
        rationale=_PLAINTEXT_RATIONALE.replace("App settings and environment", "Lambda environment"),
        remediation=(
            "Store the secret in Secrets Manager, pass its ARN in the environment, and grant the function's "
            "role `secretsmanager:GetSecretValue` on that one secret."
        ),
        types=(LAMBDA_FUNCTION,),
        check=_no_plaintext_secrets(_aws_secret_pointer, "a Secrets Manager or SSM parameter ARN"),
        reference="https://docs.aws.amazon.com/secretsmanager/latest/userguide/retrieving-secrets_lambda.html",
    ),
    Rule(
        id="AGS-K8S-001",
        title="No plaintext secrets in Kubernetes container environment",
        severity=Severity.CRITICAL,
        rationale=_PLAINTEXT_RATIONALE.replace("App settings and environment variables", "Pod specs"),
        remediation=(
            "Reference a Kubernetes Secret (`valueFrom.secretKeyRef`) synced from Key Vault / Secrets Manager "
            "by the Secrets Store CSI driver, pass the ARN of a Secrets Manager secret the pod reads with its "
            "own identity (EKS Pod Identity or IRSA), or use workload identity and no credential at all."
        ),
        types=K8S_WORKLOADS,
        check=_no_plaintext_secrets(
            _aws_secret_pointer, "a secretKeyRef or a Secrets Manager / SSM ARN the pod resolves itself"
        ),
        reference="https://kubernetes.io/docs/concepts/security/secrets-good-practices/",
    ),
)
