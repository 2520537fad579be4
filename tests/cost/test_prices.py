"""The price table is data a reviewer edits: every row complete and sourced, and every mistake named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cost.prices import PRICES_DIR, REQUIRED, PriceTable, PriceTableError, default_prices

ROW = {
    "meter": "search.unit",
    "service": "Azure AI Search",
    "description": "Basic search unit",
    "sku": "basic",
    "region": "swedencentral",
    "unit": "SU-hour",
    "price": 0.101,
    "source": "https://azure.microsoft.com/pricing/details/search/",
    "read": "2025-06",
}


def table(tmp_path: Path, *rows: dict) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump({"prices": list(rows)}), encoding="utf-8")
    return path


def test_every_checked_in_row_is_complete_sourced_and_unique() -> None:
    prices = default_prices()
    assert len(prices.prices) >= 30
    for price in prices.prices:
        assert price.source.startswith("https://") and price.read and price.currency == "USD", price
    keys = [(p.meter, p.sku.lower(), p.region.lower()) for p in prices.prices]
    assert len(keys) == len(set(keys))
    assert {path.name for path in PRICES_DIR.glob("*.yaml")} == {"aws.yaml", "azure.yaml"}


def test_lookup_ignores_the_case_of_sku_and_region(tmp_path: Path) -> None:
    prices = PriceTable.load(table(tmp_path, ROW))
    assert prices.find("search.unit", "Basic", "SwedenCentral") is not None
    assert prices.find("search.unit", "basic", "eastus") is None
    assert prices.skus("search.unit", "swedencentral") == ["basic"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({k: v for k, v in ROW.items() if k != "source"}, "row 1 (search.unit): missing source"),
        ({**ROW, "cost": 1}, "row 1 (search.unit): unknown key cost"),
        ({**ROW, "price": -1}, "price must be a number >= 0, not -1"),
        ({**ROW, "price": "cheap"}, "price must be a number >= 0, not 'cheap'"),
        ({**ROW, "source": "azure.microsoft.com"}, "source must be the https:// page the price is from"),
        ({**ROW, "read": "June"}, "read must be the date it was read, YYYY-MM[-DD]"),
        ("just a string", f"row 1: expected a mapping with {', '.join(REQUIRED)}"),
    ],
)
def test_a_bad_row_is_named_with_what_to_fix(tmp_path: Path, row: object, message: str) -> None:
    with pytest.raises(PriceTableError) as raised:
        PriceTable.load(table(tmp_path, row))  # type: ignore[arg-type]
    assert message in str(raised.value) and "prices.yaml" in str(raised.value)


def test_the_same_price_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        PriceTableError, match="row 2 prices meter search.unit, sku BASIC, region swedencentral again"
    ):
        PriceTable.load(table(tmp_path, ROW, {**ROW, "sku": "BASIC", "price": 0.2}))


def test_a_file_without_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("rows: []\n", encoding="utf-8")
    with pytest.raises(PriceTableError, match="expected a top-level `prices:` list"):
        PriceTable.load(path)
