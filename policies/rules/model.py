"""What a rule is: metadata a reviewer reads, and one check function over a resource of the graph.

Rules are plain Python objects so that ``agentstage check`` (offline, over the recorded graph) and the
CrossGuard pack (``pulumi preview --policy-pack policies/``) run the very same code. A check receives
the resource, the whole graph (for rules that follow references) and the stack's context, and returns
a :class:`Verdict` whose message names the offending setting and its value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from core.graph import Resource, ResourceGraph
from policies.findings import Severity

if TYPE_CHECKING:
    from policies.rules.context import StackContext

STACK_TYPE = "pulumi:pulumi:Stack"
"""The type of the synthetic resource stack-scoped rules are evaluated on (the stack itself)."""


class Stage(IntEnum):
    """The roadmap stages, ordered: a rule that applies from a stage applies to every later one."""

    PILOT = 1
    FOUNDATION = 2
    ENTERPRISE = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_blueprint(cls, blueprint: str) -> Stage:
        return cls[blueprint.upper()]


@dataclass(frozen=True)
class Verdict:
    """A check's answer for one resource: passed or not, and a message that says why."""

    passed: bool
    message: str


def passed(message: str) -> Verdict:
    return Verdict(True, message)


def failed(message: str) -> Verdict:
    return Verdict(False, message)


Check = Callable[[Resource, ResourceGraph, "StackContext"], Verdict]
Applies = Callable[[Resource], bool]

_RULE_ID = re.compile(r"^AGS-[A-Z0-9]+-\d{3}$")


@dataclass(frozen=True)
class Rule:
    """One policy rule.

    ``types`` are the Pulumi type tokens the rule inspects, or patterns such as ``azure-native:*``
    (``STACK_TYPE`` for rules about the stack as a whole); ``applies`` narrows that further (e.g. only ``kind: OpenAI`` accounts).
    ``from_stage`` is the first roadmap stage the rule is enforced in. ``mandatory`` rules block a
    deployment (exit 1, CrossGuard ``mandatory``); advisory ones are reported only.
    ``needs_graph`` marks checks that read other resources: the CrossGuard pack runs those as stack
    policies, where every resource is visible. ``reference`` is the vendor documentation of the setting.
    """

    id: str
    title: str
    severity: Severity
    rationale: str
    remediation: str
    types: tuple[str, ...]
    check: Check
    reference: str
    from_stage: Stage = Stage.PILOT
    mandatory: bool = True
    needs_graph: bool = False
    applies: Applies | None = None

    def __post_init__(self) -> None:
        if not _RULE_ID.match(self.id):
            raise ValueError(f"rule id '{self.id}' must look like AGS-AZ-001")
        if not self.types:
            raise ValueError(f"rule {self.id} applies to no resource type")

    @property
    def stack_scoped(self) -> bool:
        return self.types == (STACK_TYPE,)

    @property
    def policy_name(self) -> str:
        """The kebab-case name CrossGuard shows: the id plus the title, e.g. ``ags-az-001-openai-...``."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")
        if len(slug) > 60:
            slug = slug[:60].rsplit("-", 1)[0]
        return f"{self.id.lower()}-{slug}"

    def matches_type(self, type_: str) -> bool:
        return _matches_any(type_, self.types)

    def applies_to(self, resource: Resource, stage: Stage) -> bool:
        """Whether this rule judges ``resource`` in a stack of ``stage``."""
        return self.covers(resource.type, stage) and self.selects(resource)

    def covers(self, type_: str, stage: Stage) -> bool:
        """Whether resources of ``type_`` are this rule's subjects in a stack of ``stage`` (before
        :meth:`selects` narrows them: the same answer for every resource of the type)."""
        return stage >= self.from_stage and self.matches_type(type_)

    def selects(self, resource: Resource) -> bool:
        """Whether ``applies`` keeps ``resource`` among the subjects of its type."""
        return self.applies is None or self.applies(resource)


_GLOB = re.compile(r"[*?\[]")


def is_pattern(value: str) -> bool:
    """Whether ``value`` holds a glob character (``*``, ``?``, ``[``) rather than being a plain string."""
    return _GLOB.search(value) is not None


def glob_matches(value: str, pattern: str) -> bool:
    """Whether ``value`` matches ``pattern`` as ``fnmatchcase`` reads it (``*``, ``?``, ``[...]``).

    A pattern without those characters is compared as a string: ``fnmatchcase`` compiles every distinct
    pattern to a regular expression first, and most patterns the rules meet (resource types, IAM actions
    and ARNs) are plain."""
    return fnmatchcase(value, pattern) if is_pattern(pattern) else value == pattern


@functools.cache
def _matches_any(type_: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``type_`` is one of ``patterns`` (globs allowed); asked once per type and rule, not per
    resource."""
    return any(glob_matches(type_, pattern) for pattern in patterns)
