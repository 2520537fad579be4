"""A stage whose agents would share an Azure name is refused before anything is created.

Azure names are shortened to each service's limit, and storage account names lose their hyphens
(:mod:`components.azure.naming`), so two agents whose names differ late or only by hyphens
(``research-team-eu`` and ``research-team-us``, ``re-search`` and ``research``) would get one storage
account: two Pulumi resources managing one Azure resource, each undoing the other's changes. The names are
computed with the components' own naming, for every resource a stage names after an agent and for the
stage's own blocks of the same kinds; each blueprint lists what it names (:class:`Named`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from components.azure.naming import SUFFIX_PLACEHOLDER, name_limits, name_shape
from components.azure.serverless_agent import named_resources
from core.config import NAMESPACE, StackConfig, StackConfigError

_WHAT = {
    "identity": "managed identity",
    "storage": "storage account",
    "function_plan": "App Service plan",
    "function_app": "Function App",
    "private_endpoint": "private endpoint",
}


@dataclass(frozen=True)
class Named:
    """A resource of ``kind`` (a rule of :mod:`components.azure.naming`) named after ``purpose``, and whose it
    is in words: the stack file's key (``agentstage:agents[1].name 'research'``) or the stage's block."""

    owner: str
    kind: str
    purpose: str


def agent_keys(config: StackConfig) -> dict[str, str]:
    """Each agent's (and the orchestrator's) name -> the key of the stack file that gives it."""
    keys = {
        agent.name: f"{NAMESPACE}:agents[{i}].name '{agent.name}'" for i, agent in enumerate(config.agents)
    }
    if config.orchestrator is not None:
        keys[config.orchestrator.name] = f"{NAMESPACE}:orchestrator.name '{config.orchestrator.name}'"
    return keys


def serverless_runtime(owner: str, name: str, *, private: bool) -> list[Named]:
    """The identity and the Function App (with its storage, plan and private endpoints) of runtime ``name``."""
    return [
        Named(owner, "identity", name),
        *(Named(owner, kind, purpose) for kind, purpose in named_resources(name, private=private)),
    ]


def refuse_shared_names(config: StackConfig, named: Iterable[Named]) -> None:
    """Raise a StackConfigError naming the first two of ``named`` that Azure would give one name."""
    seen: dict[tuple[str, str], Named] = {}
    for item in named:
        shape = name_shape(config.name_prefix, config.environment, item.kind, item.purpose)
        first = seen.setdefault((item.kind, shape), item)
        if first != item:
            raise StackConfigError(_shared(config, first, item, shape))


def _shared(config: StackConfig, first: Named, second: Named, shape: str) -> str:
    what = _WHAT[first.kind]
    shown = shape.removesuffix(SUFFIX_PLACEHOLDER) + "<suffix>"
    agents = [owner for owner in (first.owner, second.owner) if owner.startswith(f"{NAMESPACE}:")]
    rename = "one of them" if len(agents) == 2 else agents[0] if agents else ""
    if first.purpose == second.purpose:  # the very same name, not a shortened one
        return f"{first.owner} and {second.owner} would be the same {what}, {shown}; rename {rename}"
    max_length, hyphens = name_limits(first.kind)
    allowed = "characters" if hyphens else "lowercase letters and digits"
    # What the prefix, environment, abbreviation, suffix and (with hyphens) the separator leave of a purpose.
    room = (
        max_length
        - len(name_shape(config.name_prefix, config.environment, first.kind))
        - (1 if hyphens else 0)
    )
    if room < 1 or not rename:
        return (
            f"{first.owner} and {second.owner} would get the same {what} name, {shown}: Azure takes at most "
            f"{max_length} {allowed} there, and {NAMESPACE}:namePrefix and {NAMESPACE}:environment leave "
            f"{max(room, 0)} for what it is named after; shorten them"
        )
    kept = f"the first {room} {allowed}" + ("" if hyphens else ", without hyphens,")
    why = f"Azure takes at most {max_length} {allowed} there, so agentstage keeps {kept} of '{first.purpose}'"
    if first.owner == second.owner:
        return (
            f"{first.owner} is too long: its {what}s for {first.purpose} and {second.purpose} would both be named "
            f"{shown} ({why}); shorten it"
        )
    return (
        f"{first.owner} and {second.owner} would get the same {what} name, {shown} ({why}): two resources "
        f"would manage one {what}; rename {rename}"
    )
