"""Every rule's passing and failing fixture, by rule id (tests fail for a rule without an entry here)."""

from rule_cases import (
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
from rule_cases.base import Case

CASES: dict[str, Case] = {}
for _module in (
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
):
    _overlap = CASES.keys() & _module.CASES.keys()
    assert not _overlap, f"fixtures defined twice: {_overlap}"
    CASES.update(_module.CASES)
