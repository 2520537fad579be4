"""Every rule agentstage ships, in one ordered registry (ids are unique and never reused)."""

from __future__ import annotations

from functools import cache

from policies.rules import (
    ai,
    aws,
    aws_enterprise,
    aws_foundation,
    cost,
    identity,
    knowledge,
    kubernetes,
    ledger,
    network,
    observability,
    secrets,
)
from policies.rules.model import Rule

AREAS = (
    identity,
    secrets,
    network,
    observability,
    cost,
    ai,
    ledger,
    knowledge,
    kubernetes,
    aws,
    aws_foundation,
    aws_enterprise,
)


@cache
def all_rules() -> tuple[Rule, ...]:
    """All rules, grouped by area; raises if two rules share an id."""
    rules = tuple(rule for area in AREAS for rule in area.RULES)
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ValueError(f"duplicate rule id {rule.id}")
        seen.add(rule.id)
    return rules


def rule_by_id(rule_id: str) -> Rule:
    for rule in all_rules():
        if rule.id == rule_id:
            return rule
    raise KeyError(f"no rule {rule_id}")
