"""Checks whose passing setting cannot exist on a resource of a given shape, waived with the reason.

These are not exceptions a stack chooses (those belong in the stack file's ``waivers``): each entry is
a fact about the Azure resource shape agentstage deploys, true in every stack, and each is shown in every
report as a waived finding with its reason. Add an entry only with the documentation that proves the
passing setting is impossible; a setting that is merely inconvenient is a component fix, not an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agentstage.graph import Resource
from policies.export.base import Suppression


@dataclass(frozen=True)
class ByDesign:
    """``check_id`` cannot pass on resources of ``resource_type`` for which ``applies`` holds."""

    check_id: str
    resource_type: str
    reason: str
    applies: Callable[[Resource], bool] = lambda resource: True


def _flex_consumption_app(resource: Resource) -> bool:
    return resource.get("functionAppConfig") is not None


BY_DESIGN: tuple[ByDesign, ...] = (
    ByDesign(
        "CKV_AZURE_212",
        "azure-native:web:WebApp",
        "Flex Consumption apps have no fixed worker count (siteConfig.numberOfWorkers); the platform scales "
        "instances per function group up to functionAppConfig.scaleAndConcurrency.maximumInstanceCount",
        _flex_consumption_app,
    ),
    ByDesign(
        "CKV_AZURE_213",
        "azure-native:web:WebApp",
        "Flex Consumption does not support App Service health check (siteConfig.healthCheckPath); the platform "
        "manages and replaces its instances itself",
        _flex_consumption_app,
    ),
)


def by_design_waivers(resource: Resource) -> list[Suppression]:
    """The by-design waivers that apply to ``resource``."""
    return [
        Suppression(entry.check_id, entry.reason)
        for entry in BY_DESIGN
        if entry.resource_type == resource.type and entry.applies(resource)
    ]
