"""The stack's tags (``agentstage:tags``), checked against the rules of the cloud that puts them on every
resource it creates: a tag the cloud refuses fails every resource at deployment, not one."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping

from core.config.base import NAMESPACE

KIT_TAGS = ("agentstage-blueprint", "agentstage-environment", "managed-by")
"""The tags agentstage puts on every resource itself (blueprints.topology.stack_tags); a stack's own tag of
one of these names would be overridden."""
MAX_TAGS = 50
"""The tags one resource may carry, on AWS and on Azure alike, agentstage's own included."""
_KEY = f"{NAMESPACE}:tags"
_AWS_SYMBOLS = frozenset("_.:/=+-@")
_AWS_CHARACTERS = "letters, digits, spaces and _ . : / = + - @"
_AZURE_FORBIDDEN = frozenset("<>%&\\?/")
AZURE_TAG_NAME_LENGTH = 128
"""Azure allows 512 characters in a tag name, storage accounts only 128, and every Azure stage has some."""


def check_tags(cloud: str, tags: Mapping[str, str]) -> None:
    """``tags`` must not name agentstage's own tags, and must fit ``cloud``'s rules for tags."""
    kit = [name for name in tags if name.lower() in KIT_TAGS]
    if kit:
        raise ValueError(
            f"{_KEY}: '{kit[0]}' is a tag agentstage sets itself on every resource ({', '.join(KIT_TAGS)}); "
            "remove it"
        )
    if len(tags) > MAX_TAGS - len(KIT_TAGS):
        raise ValueError(
            f"{_KEY}: {len(tags)} tags; a resource carries at most {MAX_TAGS}, {len(KIT_TAGS)} of them "
            f"agentstage's own, so give at most {MAX_TAGS - len(KIT_TAGS)}"
        )
    problem = _CLOUD_RULES.get(cloud)
    if problem is None:
        return
    for name, value in tags.items():
        if found := problem(name, value):
            raise ValueError(found)
    if cloud == "azure":
        seen: dict[str, str] = {}
        for name in tags:
            if name.lower() in seen:
                raise ValueError(
                    f"{_KEY}: '{seen[name.lower()]}' and '{name}' are one tag on Azure, whose tag names ignore "
                    "case; keep one"
                )
            seen[name.lower()] = name


def _aws_problem(name: str, value: str) -> str | None:
    """AWS's rules for tags (the ones every service shares): what is wrong with this one, if anything."""
    if not 1 <= len(name) <= 128 or not _aws_text(name):
        return f"{_KEY}: {name!r} is not an AWS tag key: 1-128 {_AWS_CHARACTERS}"
    if name.lower().startswith("aws:"):
        return f"{_KEY}: {name!r} starts with aws:, which AWS reserves for its own tags; rename it"
    if len(value) > 256:
        return f"{_KEY}.{name}: the value has {len(value)} characters; AWS allows at most 256"
    if not _aws_text(value):
        return f"{_KEY}.{name}: {value!r} is not an AWS tag value: {_AWS_CHARACTERS} only"
    return None


def _aws_text(text: str) -> bool:
    """Letters, digits and spaces of any script, and AWS's few symbols."""
    return all(c.isalnum() or unicodedata.category(c) == "Zs" or c in _AWS_SYMBOLS for c in text)


def _azure_problem(name: str, value: str) -> str | None:
    """Azure Resource Manager's rules for tags: what is wrong with this one, if anything."""
    if not 1 <= len(name) <= AZURE_TAG_NAME_LENGTH or any(c in _AZURE_FORBIDDEN or _control(c) for c in name):
        return (
            f"{_KEY}: {name!r} is not an Azure tag name: 1-{AZURE_TAG_NAME_LENGTH} characters (the limit of "
            "storage accounts, which every Azure stage has), none of them < > % & \\ ? / or a control character"
        )
    if len(value) > 256:
        return f"{_KEY}.{name}: the value has {len(value)} characters; Azure allows at most 256"
    if any(_control(c) for c in value):
        return (
            f"{_KEY}.{name}: {value!r} holds control or formatting characters (line breaks, direction marks)"
        )
    return None


def _control(character: str) -> bool:
    """A control, formatting (a right-to-left override, a zero-width space) or unassigned character."""
    return unicodedata.category(character).startswith("C")


_CLOUD_RULES: dict[str, Callable[[str, str], str | None]] = {"aws": _aws_problem, "azure": _azure_problem}
"""Each cloud's rules; the kubernetes cloud creates nothing to tag (StackConfig refuses tags there)."""
