"""An estimate: priced lines, resources that cost nothing of their own, and resources nobody priced."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from cost.prices import Price

HOURS_PER_MONTH = 730
"""Azure's and AWS's billing month: 730 hours (365 days x 24 / 12)."""
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600

Kind = Literal["fixed", "usage"]


@dataclass(frozen=True)
class CostLine:
    """One meter of one resource: ``quantity`` units a month at the price's unit price.

    ``fixed`` lines are what the stack costs idle; ``usage`` lines come from the usage profile.
    ``basis`` says where the quantity comes from (``2 SU x 730 h``, ``500 requests/day x 30.4 days``).
    """

    resource: str
    type: str
    kind: Kind
    price: Price
    quantity: float
    basis: str

    @property
    def monthly(self) -> float:
        return self.quantity * self.price.price


@dataclass(frozen=True)
class FreeResource:
    """A resource that costs nothing of its own, and why (``billed on the Function App``)."""

    resource: str
    type: str
    reason: str


@dataclass(frozen=True)
class UnpricedResource:
    """A resource that costs something the table cannot say: listed, never counted as zero."""

    resource: str
    type: str
    reason: str


@dataclass(frozen=True)
class Estimate:
    stack: str
    currency: str
    lines: tuple[CostLine, ...]
    free: tuple[FreeResource, ...] = ()
    unpriced: tuple[UnpricedResource, ...] = ()
    usage_profile: str | None = None
    """Where the usage lines came from (the ``--usage`` file); ``None``: fixed cost only."""
    notes: tuple[str, ...] = field(default=())

    def total(self, kind: Kind | None = None) -> float:
        return sum(line.monthly for line in self.lines if kind is None or line.kind == kind)

    @property
    def fixed(self) -> float:
        """What the stack costs a month with no traffic at all."""
        return self.total("fixed")

    @property
    def usage(self) -> float:
        return self.total("usage")

    def by_resource(self, kind: Kind | None = None) -> list[tuple[str, float]]:
        """Monthly cost per resource, most expensive first (the contributors a budget rule names)."""
        totals: dict[str, float] = defaultdict(float)
        for line in self.lines:
            if kind is None or line.kind == kind:
                totals[line.resource] += line.monthly
        return sorted(totals.items(), key=lambda item: (-item[1], item[0]))
