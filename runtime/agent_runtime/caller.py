"""Who is calling: the identity every access decision and audit record is made for."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from agent_runtime.memory.base import Owner, identity_problem

DEFAULT_TENANT = "default"
SYSTEM_TENANT = "agentstage-system"
"""The tenant of the runtime's own work (knowledge ingestion's embeddings). No credential may name it
(:func:`tenant_problem`), so the work is never counted as a customer's: budgets count it against agent
rules only."""
UNKNOWN_APPLICATION = "unknown"
"""The application of callers whose credentials name none: they share its quotas, as on the Azure gateway,
whose token limit counts tokens without ``azp``/``appid`` under the same key."""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a stable id (API key owner or JWT subject), its roles, its tenant and the
    application it calls through.

    The tenant is what tenant budgets count against; callers without one share ``DEFAULT_TENANT``. The
    application is the client that obtained the caller's credentials (a JWT's ``azp``, ``client_id`` or
    ``appid``; an API key's configured application), what application budgets count against: many users of
    one front end share its quota, however many subjects they are.
    """

    id: str
    roles: frozenset[str] = frozenset()
    tenant: str = DEFAULT_TENANT
    application: str = UNKNOWN_APPLICATION

    def has_any_role(self, roles: frozenset[str]) -> bool:
        return not self.roles.isdisjoint(roles)

    def acts_as(self, role: str, tenant: str, platform_tenant: str | None) -> bool:
        """Whether this caller holds ``role`` for ``tenant``'s data: within its own tenant, or for every
        tenant when it belongs to the platform's (``platform_tenant``). A tenant's administrators may grant
        roles in their own tenant (Entra app roles of a multi-tenant app), so a role never reaches past the
        tenant it was granted in."""
        return role in self.roles and (tenant == self.tenant or self.tenant == platform_tenant)

    @cached_property
    def owner(self) -> Owner:
        """Whose conversations this caller reads and writes: its own, in its tenant (checked once: a run
        reads and writes history under it)."""
        return Owner(self.tenant, self.id)


def tenant_problem(value: object) -> str | None:
    """Why ``value`` cannot be the tenant a credential names, or ``None``: an identity
    (:func:`~agent_runtime.memory.base.identity_problem`) other than the runtime's own tenant."""
    if value == SYSTEM_TENANT:
        return f"must not be '{SYSTEM_TENANT}', the tenant of the runtime's own work"
    return identity_problem(value)
