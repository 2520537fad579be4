"""An estimate for its readers: a table for people, JSON for machines, Markdown for the README and PRs."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from cost.model import CostLine, Estimate, FreeResource

CONTRIBUTORS = 4
"""Resources named beside a stack's total in the summary."""


def money(amount: float) -> str:
    return f"{amount:,.2f}"


def number(value: float) -> str:
    """``21,024,000``, ``182.5``, ``0.06083``: whole thousands with separators, small values to 4 digits."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def unit_price(value: float) -> str:
    """``0.000004`` rather than ``4e-06``: a price is read digit by digit against its source page."""
    return f"{value:.8f}".rstrip("0").rstrip(".")


def _quantity(line: CostLine) -> str:
    return f"{number(line.quantity)} {line.price.unit}"


def _shown(estimate: Estimate, kind: str) -> list[CostLine]:
    """The lines of ``kind`` worth a row: usage lines of zero quantity are named once, not listed."""
    return [line for line in estimate.lines if line.kind == kind and (kind == "fixed" or line.quantity)]


def _idle_meters(estimate: Estimate) -> list[str]:
    return sorted({line.resource for line in estimate.lines if line.kind == "usage" and not line.quantity})


def table_lines(estimate: Estimate) -> Iterator[str]:
    """Every line with its basis and unit price, then the totals, what is free and what is not priced."""
    yield (
        f"stack {estimate.stack}: {money(estimate.fixed)} {estimate.currency}/month fixed (idle)"
        + (f" + {money(estimate.usage)} usage = {money(estimate.total())}" if estimate.usage_profile else "")
    )
    yield "list prices, pay-as-you-go, before free grants: cost/prices/ (source and date per row: --format json)"
    for kind in ("fixed", "usage"):
        lines = _shown(estimate, kind)
        if kind == "usage" and not estimate.usage_profile:
            yield ""
            yield "usage: not estimated; pass --usage FILE (see cost/usage.example.yaml)"
            continue
        yield ""
        yield f"{kind}" + (f" ({estimate.usage_profile})" if kind == "usage" else "") + ":"
        width = max((len(line.resource) for line in lines), default=0)
        for line in lines:
            yield (
                f"  {line.resource:<{width}}  {money(line.monthly):>10}  {line.price.description}: "
                f"{_quantity(line)} x {unit_price(line.price.price)} ({line.basis})"
            )
        yield f"  {'total':<{width}}  {money(estimate.total(kind)):>10}"
        if kind == "usage" and _idle_meters(estimate):
            yield f"  no usage in this profile: {', '.join(_idle_meters(estimate))}"
    if estimate.unpriced:
        yield ""
        yield f"not priced ({len(estimate.unpriced)}; not counted - the totals are lower than the bill):"
        for item in estimate.unpriced:
            yield f"  {item.resource}  {item.type}: {item.reason}"
    yield ""
    yield f"free ({len(estimate.free)} resources):"
    for reason, types in _free_by_reason(estimate.free):
        yield f"  {', '.join(types)}: {reason}"
    for note in estimate.notes:
        yield f"kubernetes: {note}"


def _free_by_reason(free: tuple[FreeResource, ...]) -> list[tuple[str, list[str]]]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in free:
        counts[item.reason][item.type.split(":", 1)[-1]] += 1
    return [
        (reason, [f"{count} {type_}" for type_, count in types.items()]) for reason, types in counts.items()
    ]


def json_payload(estimate: Estimate) -> dict[str, Any]:
    return {
        "stack": estimate.stack,
        "currency": estimate.currency,
        "fixedMonthly": round(estimate.fixed, 2),
        "usageMonthly": round(estimate.usage, 2) if estimate.usage_profile else None,
        "usageProfile": estimate.usage_profile,
        "lines": [
            {
                "resource": line.resource,
                "type": line.type,
                "kind": line.kind,
                "meter": line.price.meter,
                "description": line.price.description,
                "sku": line.price.sku,
                "region": line.price.region,
                "quantity": line.quantity,
                "unit": line.price.unit,
                "unitPrice": line.price.price,
                "monthly": round(line.monthly, 2),
                "basis": line.basis,
                "source": line.price.source,
                "read": line.price.read,
            }
            for line in estimate.lines
        ],
        "free": [{"resource": f.resource, "type": f.type, "reason": f.reason} for f in estimate.free],
        "notPriced": [
            {"resource": u.resource, "type": u.type, "reason": u.reason} for u in estimate.unpriced
        ],
        "notes": list(estimate.notes),
    }


def json_text(estimates: list[Estimate]) -> str:
    payloads = [json_payload(e) for e in estimates]
    return json.dumps(payloads[0] if len(payloads) == 1 else payloads, indent=2)


def markdown_lines(estimate: Estimate) -> Iterator[str]:
    """One stack's lines as a Markdown table (the README's worked example)."""
    yield "| resource | kind | meter | quantity | unit price | USD / month |"
    yield "|---|---|---|---|---:|---:|"
    for line in _shown(estimate, "fixed") + _shown(estimate, "usage"):
        yield (
            f"| {line.resource} | {line.kind} | {line.price.description} | {_quantity(line)} | "
            f"{unit_price(line.price.price)} | {money(line.monthly)} |"
        )
    yield f"| **total** | | | | | **{money(estimate.total())}** |"
    for item in estimate.unpriced:
        yield f"| {item.resource} | not priced | {item.reason} | | | |"


def summary_lines(estimates: list[Estimate]) -> Iterator[str]:
    """Every stack's fixed monthly cost and what makes it up: the README's "what each stage costs idle"."""
    yield "| stack | USD / month, idle | biggest fixed costs | not priced |"
    yield "|---|---:|---|---:|"
    for estimate in estimates:
        contributors = ", ".join(
            f"{name} {money(amount)}" for name, amount in estimate.by_resource("fixed")[:CONTRIBUTORS]
        )
        yield (
            f"| {estimate.stack} | {money(estimate.fixed)} | {contributors or 'nothing billed while idle'} | "
            f"{len(estimate.unpriced)} |"
        )
