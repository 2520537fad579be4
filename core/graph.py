"""The resource graph: the one artifact every offline tool reads.

``agentstage plan`` records it by running the real Pulumi program under mocks; policies, exporters,
the diagram, the cost estimate and the tests all read it. It is plain data (JSON round-trips exactly),
so a saved plan can be audited or edited later.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

UNKNOWN = "<unknown>"
"""An input whose value is only known after deployment (preview semantics)."""

SECRET = "<secret>"
"""An input Pulumi marks secret; its value is never written to the graph."""

GRAPH_FORMAT = 1

T = TypeVar("T")


@dataclass(frozen=True)
class Resource:
    """One registered resource: a component (``custom=False``) or a cloud resource."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None = None
    provider: str | None = None
    dependencies: tuple[str, ...] = ()
    inputs: dict[str, Any] = field(default_factory=dict)
    mock_id: str | None = None
    retain_on_delete: bool = False
    """Pulumi leaves the cloud resource in place when the program deletes or replaces it (data stores)."""
    arn: str | None = None
    """AWS: the resource's ARN, as IAM documents name it (``None`` elsewhere)."""

    def get(self, path: str, default: Any = None) -> Any:
        """The input at a dotted path (``"properties.disableLocalAuth"``), or ``default``."""
        value: Any = self.inputs
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                return default
            value = value[key]
        return value


@dataclass
class ResourceGraph:
    """All resources of one stack, in registration order."""

    stack: str
    project: str
    resources: list[Resource]

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def by_urn(self, urn: str) -> Resource:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise KeyError(urn)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def children(self, urn: str | None) -> list[Resource]:
        return [r for r in self.resources if r.parent == urn]

    def by_arn(self, arn: str) -> Resource | None:
        """The AWS resource an ARN names (an IAM statement's resource), or ``None``."""
        return next((r for r in self.resources if r.arn == arn), None)

    def by_mock_id(self, resource_id: str) -> Resource | None:
        """The resource whose (mock) id another resource's input references, if any."""
        for resource in self.resources:
            if resource.mock_id == resource_id:
                return resource
        return None

    def cloud_resources(self) -> list[Resource]:
        """Resources a deployment creates (components and providers excluded)."""
        return [r for r in self.resources if r.custom and not r.type.startswith("pulumi:providers:")]

    def indexed(self) -> ResourceGraph:
        """This graph as it is now, answering lookups by type and URN from indexes built once.

        For work that asks many questions of a graph nothing changes meanwhile (the policy rules): each
        would otherwise scan every resource. The copy holds its own list of the same resources, so changing
        this graph later does not make its answers stale."""
        return _IndexedGraph(self.stack, self.project, list(self.resources))

    def derived(self, compute: Callable[[ResourceGraph], T]) -> T:
        """``compute(self)``: a value derived from the whole graph. An :meth:`indexed` copy computes each
        once, for rules that judge one resource against all the others."""
        return compute(self)

    def type_counts(self) -> Counter[str]:
        return Counter(r.type for r in self.cloud_resources())

    def to_json(self) -> str:
        payload = {
            "format": GRAPH_FORMAT,
            "stack": self.stack,
            "project": self.project,
            "resources": [_record(r) for r in self.resources],
        }
        return json.dumps(payload, indent=2, sort_keys=False)

    def write(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, text: str) -> ResourceGraph:
        payload = json.loads(text)
        if payload.get("format") != GRAPH_FORMAT:
            raise ValueError(f"unsupported graph format {payload.get('format')!r}; expected {GRAPH_FORMAT}")
        resources = [
            Resource(**{**r, "dependencies": tuple(r.get("dependencies", ()))}) for r in payload["resources"]
        ]
        return cls(stack=payload["stack"], project=payload["project"], resources=resources)


@dataclass
class _IndexedGraph(ResourceGraph):
    """A :meth:`ResourceGraph.indexed` copy; see there."""

    _by_type: dict[str, list[Resource]] = field(init=False, repr=False, compare=False)
    _by_urn: dict[str, Resource] = field(init=False, repr=False, compare=False)
    _derived: dict[Callable[[ResourceGraph], Any], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_type = {}
        self._by_urn = {}
        self._derived = {}
        for resource in self.resources:
            self._by_type.setdefault(resource.type, []).append(resource)
            self._by_urn.setdefault(resource.urn, resource)

    def by_urn(self, urn: str) -> Resource:
        return self._by_urn[urn]

    def of_type(self, type_: str) -> list[Resource]:
        return list(self._by_type.get(type_, ()))

    def derived(self, compute: Callable[[ResourceGraph], T]) -> T:
        if compute not in self._derived:
            self._derived[compute] = compute(self)
        return self._derived[compute]

    def indexed(self) -> ResourceGraph:
        return self


_RESOURCE_FIELDS = tuple(item.name for item in fields(Resource))


def _record(resource: Resource) -> dict[str, Any]:
    """A resource as saved; ``arn`` only where there is one (plans of other clouds stay as they were).

    The fields as they are, not ``asdict``'s deep copy: the record is serialized at once, never changed."""
    record = {name: getattr(resource, name) for name in _RESOURCE_FIELDS}
    if record["arn"] is None:
        del record["arn"]
    return record


def short_type(type_: str) -> str:
    """``azure-native:keyvault:Vault`` -> ``keyvault:Vault``; components keep their full type."""
    return type_ if type_.startswith("agentstage:") else type_.split(":", 1)[-1]
