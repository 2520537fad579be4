"""Which stack-file key controls a check, and on which line of the stack file a key is.

A finding is fixed, or waived, in the stack file when a key there decides it: checkov's remediation names
that key and SARIF points at its line (a waived finding at its waiver's). Checks no key controls are
fixed in the component that creates the resource, and are not listed here. Add an entry only where
changing the key makes the check pass on the shipped blueprints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class StackKey:
    """``path`` as written in the stack file (``agentstage:functions.zoneRedundant``) and what passes."""

    path: str
    passes: str


_PRIVATE = "the enterprise blueprint reaches it through a private endpoint, with public network access off"

STACK_KEYS: dict[str, StackKey] = {
    # checkov: Azure
    "CKV_AZURE_225": StackKey(
        "agentstage:functions.zoneRedundant", "true spreads the plan over availability zones"
    ),
    "CKV_AZURE_208": StackKey(
        "agentstage:vectorSearch.replicas", "3 or more replicas carry the index-update SLA"
    ),
    "CKV_AZURE_209": StackKey("agentstage:vectorSearch.replicas", "2 or more replicas carry the query SLA"),
    "CKV_AZURE_107": StackKey(
        "agentstage:gateway.sku", "StandardV2 joins a virtual network; Consumption and BasicV2 cannot"
    ),
    "CKV_AZURE_227": StackKey(
        "agentstage:kubernetes.encryptionAtHost", "true encrypts node disks and caches"
    ),
    "CKV_AZURE_233": StackKey("agentstage:kubernetes.zoneRedundantRegistry", "true replicates across zones"),
    **{
        check: StackKey("agentstage:blueprint", _PRIVATE)
        for check in (
            "CKV_AZURE_35",  # storage: default network rule deny
            "CKV_AZURE_59",  # storage: public access off
            "CKV_AZURE_101",  # Cosmos DB
            "CKV_AZURE_109",  # Key Vault firewall
            "CKV_AZURE_134",  # Azure OpenAI
            "CKV_AZURE_189",  # Key Vault
            "CKV_AZURE_222",  # Function Apps
        )
    },
    # checkov: AWS
    "CKV_AWS_338": StackKey("agentstage:logRetentionDays", "365 or more keeps logs a year"),
    "CKV_AWS_139": StackKey(
        "agentstage:environment", "prod or production protects the knowledge database from deletion"
    ),
    # agentstage's rules
    "AGS-AZ-041": StackKey("agentstage:logRetentionDays", "the workspace keeps logs at least this long"),
    "AGS-AWS-016": StackKey("agentstage:logRetentionDays", "log groups keep logs at least this long"),
    "AGS-AZ-052": StackKey("agentstage:models", "each model's capacity within the stage's limit"),
    "AGS-AZ-054": StackKey("agentstage:tags", "owner and costCenter"),
    "AGS-AZ-055": StackKey("agentstage:budget.amount", "at least the stack's fixed monthly cost"),
    "AGS-AZ-061": StackKey("agentstage:contentFilter", "blockPromptAttacks: true"),
    "AGS-AWS-006": StackKey("agentstage:contentFilter", "blockPromptAttacks: true"),
    "AGS-AI-001": StackKey("agentstage:agents", "a tokenBudget on every agent"),
    "AGS-AI-003": StackKey("agentstage:runtimeBudgets", "limits that admit at least one call"),
}
"""Check or rule id -> the stack key that controls it."""


def stack_key(check_id: str) -> StackKey | None:
    return STACK_KEYS.get(check_id)


_STEP = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


class StackFileLines:
    """Lines of keys in one stack file (``agentstage:waivers[2]``, ``agentstage:functions.zoneRedundant``).

    A key the file does not set is found at its nearest parent that it does set (where it would be
    added); a key none of whose parents is set, or a file that cannot be read, has no line.
    """

    def __init__(self, path: Path | None) -> None:
        self._config: yaml.Node | None = None
        if path is None:
            return
        try:
            root = yaml.compose(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return
        self._config = _step(root, "", "config")[1]

    def line(self, key: str) -> int | None:
        node, line = self._config, None
        for index, name in _STEP.findall(key):
            found, node = _step(node, index, name)
            if node is None:
                break
            line = found
        return line


def _step(node: yaml.Node | None, index: str, name: str) -> tuple[int, yaml.Node | None]:
    """The line and node of item ``index`` of a sequence, or of key ``name`` of a mapping (the key's line)."""
    if index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
        item = node.value[int(index)]
        return item.start_mark.line + 1, item
    if not index and isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == name:
                return key.start_mark.line + 1, value
    return 0, None
