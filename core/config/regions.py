"""The region names each cloud accepts as ``agentstage:location``, from the checked-in lists beside this module
(``azure-regions.txt``, ``aws-regions.txt``: each says where its names come from and when)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from core.config.base import NAMESPACE, YAML_BOOLEAN_HINT, closest

_HERE = Path(__file__).resolve().parent
_LISTS = {"azure": "azure-regions.txt", "aws": "aws-regions.txt"}
_CLOUD_WORDS = {"azure": "Azure", "aws": "AWS"}
EXAMPLES = {
    "azure": ("swedencentral", "westeurope", "eastus2"),
    "aws": ("eu-west-1", "eu-central-1", "us-east-1"),
}


@cache
def regions(cloud: str) -> frozenset[str]:
    """The names of ``cloud``'s regions (``azure`` or ``aws``)."""
    lines = (_HERE / _LISTS[cloud]).read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def check_location(location: str, clouds: tuple[str, ...], key: str = f"{NAMESPACE}:location") -> None:
    """``location`` (the stack file's ``key``) must be a region of one of ``clouds``; else name a few close
    ones (never the whole list).

    Close names are looked for as written and as Azure writes names (``West Europe`` -> ``westeurope``).
    """
    if any(location in regions(cloud) for cloud in clouds):
        return
    known = sorted(name for cloud in clouds for name in regions(cloud))
    squeezed = "".join(location.lower().split()).replace("-", "").replace("_", "")
    matches = [name for name in known if name.replace("-", "") == squeezed]
    matches += [m for m in closest(location.lower(), known, count=3) if m not in matches]
    matches += [m for m in closest(squeezed, known, count=3) if m not in matches]
    what = " or ".join(_CLOUD_WORDS[cloud] for cloud in clouds)
    boolean = f"; {YAML_BOOLEAN_HINT}" if location in ("true", "false") else ""
    lists = ", ".join(f"core/config/{_LISTS[cloud]}" for cloud in clouds)
    hint = (
        f"did you mean {', '.join(matches[:3])}?"
        if matches
        else "e.g. " + ", ".join(name for cloud in clouds for name in EXAMPLES[cloud])
    )
    raise ValueError(
        f"{key}: {location!r} is not an {what} region name; {hint} (every name: {lists})" + boolean
    )
