"""Azure resource names that satisfy each service's rules and stay globally unique.

Several Azure names are global DNS labels (Key Vault, storage, OpenAI subdomain, Search, Function App).
Like Azure Verified Modules' ``uniqueString(resourceGroup().id)``, a short suffix derived from the
subscription and resource group keeps them unique across tenants yet identical on every run, so a
second ``pulumi up`` changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pulumi

# kind -> (abbreviation, maximum length, whether hyphens are allowed). Abbreviations follow the Cloud
# Adoption Framework; limits are each service's documented maxima.
_RULES: dict[str, tuple[str, int, bool]] = {
    "resource_group": ("rg", 90, True),
    "log_workspace": ("log", 63, True),
    "app_insights": ("appi", 260, True),
    "key_vault": ("kv", 24, True),
    "openai": ("oai", 64, True),
    "search": ("srch", 60, True),
    "cosmos": ("cosmos", 44, True),
    "apim": ("apim", 50, True),
    "servicebus": ("sb", 50, True),
    "event_grid_system_topic": ("egst", 128, True),
    "storage": ("st", 24, False),
    "function_plan": ("asp", 40, True),
    "function_app": ("func", 60, True),
    "identity": ("id", 128, True),
    "kubernetes_cluster": ("aks", 63, True),
    "container_registry": ("cr", 50, False),
    "data_collection_rule": ("dcr", 64, True),
    "vnet": ("vnet", 64, True),
    "subnet": ("snet", 80, True),
    "nsg": ("nsg", 80, True),
    "private_endpoint": ("pep", 64, True),
    "dns_link": ("vnetlink", 80, True),
    "action_group": ("ag", 260, True),
    "budget": ("budget", 63, True),
    "alert": ("alert", 260, True),
    "policy_assignment": ("pa", 64, True),
}


SUFFIX_LENGTH = 5
"""The length of a stack's unique suffix (:func:`unique_suffix`)."""
SUFFIX_PLACEHOLDER = "*" * SUFFIX_LENGTH
"""What :func:`name_shape` puts where a name's unique suffix goes."""


def unique_suffix(*parts: str, length: int = SUFFIX_LENGTH) -> str:
    """A stable, lowercase alphanumeric digest of ``parts``."""
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return digest[:length]


@dataclass(frozen=True)
class Naming:
    """Builds names as ``<prefix>-<environment>-<abbreviation>[-<purpose>]-<suffix>``."""

    prefix: str
    environment: str
    suffix: pulumi.Input[str]

    def name(self, kind: str, purpose: str = "") -> pulumi.Output[str]:
        """The name of a resource of ``kind`` (a key of the rules table), with an optional purpose."""
        if kind not in _RULES:
            raise KeyError(f"no naming rule for '{kind}'; known kinds: {', '.join(sorted(_RULES))}")
        abbreviation, max_length, hyphens = _RULES[kind]
        return pulumi.Output.from_input(self.suffix).apply(
            lambda suffix: _compose(
                self.prefix, self.environment, abbreviation, purpose, suffix, max_length, hyphens
            )
        )

    def plain(self, kind: str, purpose: str = "") -> str:
        """A name without the unique suffix, for resources whose names are scoped to a parent."""
        abbreviation, max_length, hyphens = _RULES[kind]
        return _compose(self.prefix, self.environment, abbreviation, purpose, "", max_length, hyphens)


def name_shape(prefix: str, environment: str, kind: str, purpose: str = "") -> str:
    """The name :meth:`Naming.name` gives ``kind`` for ``purpose``, with :data:`SUFFIX_PLACEHOLDER` where the
    stack's unique suffix goes. Every name of a stack ends with the same suffix, so two names of a stack are
    equal exactly when their shapes are: what is known before the subscription is."""
    abbreviation, max_length, hyphens = _RULES[kind]
    return _compose(prefix, environment, abbreviation, purpose, SUFFIX_PLACEHOLDER, max_length, hyphens)


def name_limits(kind: str) -> tuple[int, bool]:
    """The longest name of ``kind`` Azure takes, and whether it may hold hyphens."""
    _, max_length, hyphens = _RULES[kind]
    return max_length, hyphens


def _compose(
    prefix: str,
    environment: str,
    abbreviation: str,
    purpose: str,
    suffix: str,
    max_length: int,
    hyphens: bool,
) -> str:
    parts = [p for p in (prefix, environment, abbreviation, purpose) if p]
    separator = "-" if hyphens else ""
    clean = [re.sub(r"[^a-z0-9-]" if hyphens else r"[^a-z0-9]", "", p.lower()) for p in parts]
    tail = f"{separator}{suffix}" if suffix else ""
    head = separator.join(clean)[: max_length - len(tail)].rstrip("-")
    return head + tail
