"""What every exporter hands the scanner: files in one checkov framework, and who owns each finding.

checkov reads files, not resource graphs, and names what it scanned in its own terms (a file, a
Terraform address). An :class:`Export` keeps the way back: ``owners`` maps each of those names to the
graph resource it came from, so every checkov finding lands on a Pulumi URN. ``expected`` is how many
resources checkov must report scanning; a shape checkov does not understand is scanned as nothing, and
only this count notices.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from core.graph import Resource


class Suppression(NamedTuple):
    """A check waived on one resource, written into the export where the format allows it inline."""

    check_id: str
    reason: str


@dataclass
class Export:
    """One checkov framework's files for one graph.

    ``files``: file name (relative to this framework's directory) -> content. ``owners``: the key
    checkov reports a result under (a file name, or a Terraform address) -> the graph resource.
    ``expected``: resources checkov must count. ``unmapped``: types this exporter is responsible for
    but has no mapping for (reported, never dropped silently).
    """

    framework: str
    files: dict[str, str] = field(default_factory=dict)
    owners: dict[str, Resource] = field(default_factory=dict)
    expected: int = 0
    unmapped: list[str] = field(default_factory=list)

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in self.files.items():
            (directory / name).write_text(content, encoding="utf-8")


def plain(value: Any) -> Any:
    """JSON-ready data as checkov compares it: whole floats as ints (``2.0`` makes some checks UNKNOWN)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def file_stem(index: int, resource: Resource) -> str:
    """A stable, unique, filesystem-safe file stem: registration order plus the logical name."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in resource.name)
    return f"{index:03d}-{safe}"


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
