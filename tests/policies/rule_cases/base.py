"""Building blocks for rule fixtures: resources shaped as the SDKs serialize them, referenced by mock id."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.graph import Resource, ResourceGraph
from policies.rules import StackContext, Stage

STACK = "test"


def res(
    type_: str,
    name: str,
    inputs: dict[str, Any] | None = None,
    *,
    dependencies: tuple[str, ...] = (),
    arn: str | None = None,
) -> Resource:
    """A cloud resource as the plan engine records it (mock id ``/agentstage-plan/<type>/<name>``; an AWS
    resource with the ``arn`` the AWS mocks give it)."""
    return Resource(
        urn=f"urn:pulumi:{STACK}::agentstage::{type_}::{name}",
        type=type_,
        name=name,
        custom=True,
        inputs=copy.deepcopy(inputs or {}),
        mock_id=f"/agentstage-plan/{type_}/{name}",
        dependencies=dependencies,
        arn=arn,
    )


def ref(resource: Resource) -> str:
    assert resource.mock_id is not None
    return resource.mock_id


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``change`` applied deeply (a ``None`` value removes the key)."""
    result = copy.deepcopy(base)
    for key, value in change.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


Build = Callable[[], list[Resource]]


@dataclass(frozen=True)
class Case:
    """A rule's two fixtures: a graph where ``target`` passes and one where it fails.

    ``target`` names the resource the rule judges (the stack's name for stack-scoped rules).
    """

    target: str
    passing: Build
    failing: Build
    stage: Stage = Stage.PILOT
    log_retention_days: int = 30

    def graph(self, build: Build) -> ResourceGraph:
        return ResourceGraph(stack=STACK, project="agentstage", resources=build())

    def context(self) -> StackContext:
        return StackContext(
            stage=self.stage, log_retention_days=self.log_retention_days, waivers=(), source="fixture"
        )


def flip(
    type_: str,
    name: str,
    secure: dict[str, Any],
    insecure: dict[str, Any],
    *,
    base: dict[str, Any] | None = None,
    stage: Stage = Stage.PILOT,
    extra: Build | None = None,
) -> Case:
    """The common case: one resource, secure in one fixture and changed by ``insecure`` in the other."""
    good = merged(base or {}, secure)
    bad = merged(good, insecure)
    others = extra or (list)
    return Case(
        target=name,
        passing=lambda: [res(type_, name, good), *others()],
        failing=lambda: [res(type_, name, bad), *others()],
        stage=stage,
    )
