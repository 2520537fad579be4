"""What a stack costs, computed from its plan: fixed monthly cost (what it costs idle) and usage cost.

The resource graph already holds every resource with its SKU and sizing; :func:`estimate` prices each one
from a checked-in price table (``cost/prices/<cloud>.yaml``: prices are data), and a usage profile turns
requests and tokens into usage lines. A resource type without a price is reported as not priced - never
counted as zero - and a type that costs nothing of its own is marked free with the reason.
"""

from cost.estimate import estimate
from cost.model import CostLine, Estimate, FreeResource, UnpricedResource
from cost.prices import PriceTable, default_prices
from cost.usage import UsageProfile, load_usage

__all__ = [
    "CostLine",
    "Estimate",
    "FreeResource",
    "PriceTable",
    "UnpricedResource",
    "UsageProfile",
    "default_prices",
    "estimate",
    "load_usage",
]
