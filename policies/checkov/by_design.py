"""Checks whose passing setting cannot exist on a resource of a given shape, waived with the reason.

These are not exceptions a stack chooses (those belong in the stack file's ``waivers``): each entry is
a fact about the Azure resource shape agentstage deploys, true in every stack, and each is shown in every
report as a waived finding with its reason. Add an entry only with the documentation that proves the
passing setting is impossible; a setting that is merely inconvenient is a component fix, not an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.graph import Resource
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


_APIM_LEGACY_PROTOCOLS = tuple(
    f"Microsoft.WindowsAzure.ApiManagement.Gateway.Security.{side}Protocols.{protocol}"
    for side in ("", "Backend.")
    for protocol in ("Ssl30", "Tls10", "Tls11")
)


def _apim_legacy_protocols_off(resource: Resource) -> bool:
    """Every legacy protocol is switched off with the string "False" ARM expects (checkov reads any
    non-empty string as "on", so it fails the very setting that turns them off)."""
    properties = resource.get("customProperties") or {}
    return all(str(properties.get(key, "")).lower() == "false" for key in _APIM_LEGACY_PROTOCOLS)


def _apim_tier_without_vnet(resource: Resource) -> bool:
    """Consumption and Basic v2 have no virtual network option at all (Standard v2 integrates outbound,
    Premium injects); the gateway is public by the tier, and reachable only with Entra ID tokens."""
    return resource.get("sku.name") in ("Consumption", "BasicV2")


BY_DESIGN: tuple[ByDesign, ...] = (
    ByDesign(
        "CKV_AZURE_173",
        "azure-native:apimanagement:ApiManagementService",
        "TLS 1.0, TLS 1.1 and SSL 3.0 are off on client and backend side (customProperties = \"False\", as ARM "
        "takes them); checkov treats the string \"False\" as enabled",
        _apim_legacy_protocols_off,
    ),
    ByDesign(
        "CKV_AZURE_107",
        "azure-native:apimanagement:ApiManagementService",
        "the Consumption and Basic v2 tiers have no virtual network option; Standard v2 or Premium is needed",
        _apim_tier_without_vnet,
    ),
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
