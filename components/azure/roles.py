"""Role assignments: readable built-in role names, and the one function that creates an assignment.

Every ``grant_*`` method of every Azure component goes through :func:`assign_role`, which refuses the
broad roles (Owner, Contributor, User Access Administrator) outright, so least privilege is enforced in
one place rather than trusted to each call site.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import authorization

from components.azure.context import AzureContext
from components.azure.identity import Principal
from components.azure.role_ids import BUILTIN_ROLES, FORBIDDEN_ROLES


def role_definition_id(subscription_id: pulumi.Input[str], role: str) -> pulumi.Output[str]:
    """The subscription-scoped id of a built-in role, as ARM expects in a role assignment."""
    if role in FORBIDDEN_ROLES:
        raise ValueError(f"role '{role}' is too broad for an agentstage grant; use a data-plane role")
    if role not in BUILTIN_ROLES:
        raise KeyError(f"unknown role '{role}'; known roles: {', '.join(sorted(BUILTIN_ROLES))}")
    guid = BUILTIN_ROLES[role]
    return pulumi.Output.concat(
        "/subscriptions/", subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/", guid
    )


def assign_role(
    name: str,
    *,
    context: AzureContext,
    scope: pulumi.Input[str],
    role: str,
    identity: Principal,
    parent: pulumi.Resource,
) -> authorization.RoleAssignment:
    """Grant ``identity`` the built-in ``role`` on exactly ``scope``.

    ``principal_type`` is set so that ARM does not wait for directory replication of a new identity
    (without it, a role assignment to a just-created identity fails intermittently); managed identities,
    user- or system-assigned, are service principals.
    """
    return authorization.RoleAssignment(
        name,
        principal_id=identity.principal_id,
        principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
        role_definition_id=role_definition_id(context.subscription_id, role),
        scope=scope,
        description=f"agentstage: {role} for {identity.label}",
        opts=pulumi.ResourceOptions(parent=parent),
    )


def assign_role_to_principal(
    name: str,
    *,
    context: AzureContext,
    scope: pulumi.Input[str],
    role: str,
    principal_id: pulumi.Input[str],
    description: str,
    parent: pulumi.Resource,
    principal_type: str = authorization.PrincipalType.SERVICE_PRINCIPAL,
) -> authorization.RoleAssignment:
    """Grant ``role`` on exactly ``scope`` to a principal that is not an agentstage :class:`ManagedIdentity`.

    For identities Azure creates (an AKS kubelet identity) and for the deploying principal, whose type
    (``User`` after ``az login``, ``ServicePrincipal`` in CI) the caller states: ARM rejects a wrong one.
    """
    return authorization.RoleAssignment(
        name,
        principal_id=principal_id,
        principal_type=principal_type,
        role_definition_id=role_definition_id(context.subscription_id, role),
        scope=scope,
        description=f"agentstage: {description}",
        opts=pulumi.ResourceOptions(parent=parent),
    )
