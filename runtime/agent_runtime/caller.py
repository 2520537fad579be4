"""Who is calling: the identity every access decision and audit record is made for."""

from __future__ import annotations

from dataclasses import dataclass

from agent_runtime.memory.base import Owner

DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a stable id (API key owner or JWT subject), its roles and its tenant.

    The tenant is what tenant budgets count against; callers without one share ``DEFAULT_TENANT``.
    """

    id: str
    roles: frozenset[str] = frozenset()
    tenant: str = DEFAULT_TENANT

    def has_any_role(self, roles: frozenset[str]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def owner(self) -> Owner:
        """Whose conversations this caller reads and writes: its own, in its tenant."""
        return Owner(self.tenant, self.id)
