"""Who is calling: the identity every access decision and audit record is made for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: a stable id (API key owner or JWT subject) and the roles it holds."""

    id: str
    roles: frozenset[str] = frozenset()

    def has_any_role(self, roles: frozenset[str]) -> bool:
        return not self.roles.isdisjoint(roles)
