"""The price table: rows of ``cost/prices/<cloud>.yaml``, validated on load, looked up by meter, SKU, region."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from core.errors import AgentstageError

PRICES_DIR = Path(__file__).resolve().parent / "prices"
REQUIRED = ("meter", "service", "description", "sku", "region", "unit", "price", "source", "read")
_READ = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")


class PriceTableError(AgentstageError):
    """A price file that cannot be used: names the file, the row and the field."""


@dataclass(frozen=True)
class Price:
    """One published price: what it is for, how much per unit, and where and when it was read."""

    meter: str
    service: str
    description: str
    sku: str
    region: str
    unit: str
    price: float
    currency: str
    source: str
    read: str


class PriceTable:
    """Prices by (meter, SKU, region); SKU and region compare case-insensitively, as Azure treats them."""

    def __init__(self, prices: list[Price]) -> None:
        self.prices = prices
        self._index = {(p.meter, p.sku.lower(), p.region.lower()): p for p in prices}

    def find(self, meter: str, sku: str, region: str) -> Price | None:
        return self._index.get((meter, sku.lower(), region.lower()))

    def skus(self, meter: str, region: str) -> list[str]:
        """The SKUs priced for ``meter`` in ``region``: what a "not priced" message offers instead."""
        return sorted(p.sku for p in self.prices if p.meter == meter and p.region.lower() == region.lower())

    @classmethod
    def load(cls, *paths: Path) -> PriceTable:
        prices: list[Price] = []
        seen: dict[tuple[str, str, str], str] = {}
        for path in paths:
            for number, price in enumerate(_rows(path), start=1):
                key = (price.meter, price.sku.lower(), price.region.lower())
                if key in seen:
                    raise PriceTableError(
                        f"{path.name}: row {number} prices meter {price.meter}, sku {price.sku}, region "
                        f"{price.region} again (first in {seen[key]}): keep one row per meter, sku and region"
                    )
                seen[key] = f"{path.name} row {number}"
                prices.append(price)
        return cls(prices)


def _rows(path: Path) -> list[Price]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PriceTableError(f"{path}: cannot read the price table: {error}") from None
    rows = document.get("prices") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise PriceTableError(f"{path.name}: expected a top-level `prices:` list of rows")
    currency = document.get("currency", "USD")
    return [_price(path, number, row, currency) for number, row in enumerate(rows, start=1)]


def _price(path: Path, number: int, row: object, currency: str) -> Price:
    where = f"{path.name}: row {number}"
    if not isinstance(row, dict):
        raise PriceTableError(f"{where}: expected a mapping with {', '.join(REQUIRED)}")
    missing = [key for key in REQUIRED if key not in row]
    unknown = sorted(set(row) - set(REQUIRED))
    if missing or unknown:
        problem = f"missing {', '.join(missing)}" if missing else f"unknown key {', '.join(unknown)}"
        raise PriceTableError(
            f"{where} ({row.get('meter', '?')}): {problem}; a row has {', '.join(REQUIRED)}"
        )
    price = row["price"]
    if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
        raise PriceTableError(f"{where} ({row['meter']}): price must be a number >= 0, not {price!r}")
    if not str(row["source"]).startswith("https://"):
        raise PriceTableError(f"{where} ({row['meter']}): source must be the https:// page the price is from")
    if not _READ.match(str(row["read"])):
        raise PriceTableError(f"{where} ({row['meter']}): read must be the date it was read, YYYY-MM[-DD]")
    return Price(
        meter=str(row["meter"]),
        service=str(row["service"]),
        description=str(row["description"]),
        sku=str(row["sku"]),
        region=str(row["region"]),
        unit=str(row["unit"]),
        price=float(price),
        currency=currency,
        source=str(row["source"]),
        read=str(row["read"]),
    )


@cache
def default_prices() -> PriceTable:
    """Every checked-in price file, loaded once per process."""
    return PriceTable.load(*sorted(PRICES_DIR.glob("*.yaml")))
