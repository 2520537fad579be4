"""Export pulumi-aws resources as a Terraform plan (``terraform show -json``), which checkov reads.

pulumi-aws is generated from the Terraform AWS provider, so each resource is a Terraform resource under
another name (:mod:`policies.export.terraform_types` maps the types and the attributes pulumi-aws renamed).
Terraform represents nested blocks as lists of objects where pulumi-aws uses a single object, so objects
become one-element lists - except the map attributes (``tags``, ``variables``), whose keys are data.

A value that is another resource's id, ARN or other naming attribute (a public access block's ``bucket``,
a logging configuration's ``resource_arn``, a Lambda function's ``vpc_config.security_group_ids``) is written
the way a real plan writes a not-yet-known reference: absent from ``planned_values`` (``null`` in a list,
which keeps the known elements in place) and listed as ``references`` in ``configuration ... expressions``,
at the same place in the block structure. That is the only place checkov's cross-resource (CKV2) checks
look for links. AWS ids are often physical names, and some resources share an id with another (a bucket
notification's is its bucket's name), so a value only counts as a reference when the resource was computed
from that other resource (its dependencies; any, in a graph that records none), is not the resource's own
name (``name``, a bucket's ``bucket``), and - when several resources it depends on carry that value - the
attribute's name picks one of them. KMS keys are the exception: they stay values, which checks compare.
The file must end in ``.json`` for checkov to read it as a plan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from core.graph import Resource
from policies.export.base import Export, dumps, plain
from policies.export.terraform_types import (
    MAP_ATTRIBUTES,
    NAMED_BY_VALUE,
    OWN_NAMES,
    REFERENCEABLE,
    RENAMED,
    SINGLE_ITEM_LISTS,
    TERRAFORM_TYPES,
)

__all__ = ["FRAMEWORK", "PLAN_FILE", "PREFIX", "TERRAFORM_TYPES", "export_terraform", "snake_case"]

FRAMEWORK = "terraform_plan"
PREFIX = "aws:"
PLAN_FILE = "plan.json"
PROVIDER = "registry.terraform.io/hashicorp/aws"


class _Target(NamedTuple):
    """A resource as another one names it: Terraform's ``<address>.<attribute>`` (``id``, ``arn``, ...)."""

    urn: str
    address: str
    attribute: str
    tf_type: str


class _AfterApply:
    """A planned value Terraform knows only after apply (a reference): left out of ``planned_values``."""


_AFTER_APPLY = _AfterApply()


def export_terraform(resources: Iterable[Resource]) -> Export:
    """One plan file holding every mapped pulumi-aws resource; unmapped types are listed, not dropped."""
    export = Export(FRAMEWORK)
    mapped: list[tuple[Resource, str, str]] = []
    for resource in resources:
        tf_type = TERRAFORM_TYPES.get(resource.type)
        if tf_type is None:
            export.unmapped.append(resource.type)
            continue
        mapped.append((resource, tf_type, _unique_label(resource.name, tf_type, {a for _, _, a in mapped})))
    if not mapped:
        return export
    targets = _targets(mapped)
    # Hand-built graphs record no dependencies at all; then any resource may reference any other.
    linked = any(resource.dependencies for resource, _, _ in mapped)
    planned, configured = [], []
    for resource, tf_type, address in mapped:
        shape = _Shape(
            renamed=RENAMED.get(tf_type, {}),
            single_item_lists=SINGLE_ITEM_LISTS.get(tf_type, frozenset()),
            own_name=OWN_NAMES.get(tf_type, "name"),
            resource=resource,
            targets=targets,
            linked=linked,
        )
        values, expressions = shape.block("", _terraform_inputs(tf_type, plain(resource.inputs)))
        label = address.split(".", 1)[1]
        common = {"address": address, "mode": "managed", "type": tf_type, "name": label}
        planned.append(
            {
                **common,
                "provider_name": PROVIDER,
                "schema_version": 0,
                "values": values,
                "sensitive_values": {},
            }
        )
        configured.append(
            {**common, "provider_config_key": "aws", "schema_version": 0, "expressions": expressions}
        )
        export.owners[address] = resource
    plan = {
        "format_version": "1.2",
        "terraform_version": "1.9.0",
        "planned_values": {"root_module": {"resources": planned}},
        # No provider_config: Pulumi's provider settings are not in the graph, and an empty provider block
        # would only be "checked" for hard-coded keys it cannot contain.
        "configuration": {"root_module": {"resources": configured}},
    }
    export.files[PLAN_FILE] = dumps(plan)
    export.expected = len(mapped)
    return export


def _unique_label(name: str, tf_type: str, taken: set[str]) -> str:
    """A Terraform address for a logical name: letters, digits, ``_`` and ``-``, not starting with a digit."""
    label = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if not label[:1].isalpha() and label[:1] != "_":
        label = f"_{label}"
    address, counter = f"{tf_type}.{label}", 2
    while address in taken:
        address, counter = f"{tf_type}.{label}_{counter}", counter + 1
    return address


def _targets(mapped: Iterable[tuple[Resource, str, str]]) -> dict[str, list[_Target]]:
    """Every value that names a mapped resource -> the resources it names: its ARN, its id and its
    :data:`REFERENCEABLE` attributes (the ARN first: a mock id is sometimes the ARN too)."""
    index: dict[str, list[_Target]] = {}
    for resource, tf_type, address in mapped:
        if tf_type in NAMED_BY_VALUE:
            continue
        names = [(resource.arn, "arn"), (resource.mock_id, "id")]
        names += [(_input(resource, tf_type, name), name) for name in REFERENCEABLE.get(tf_type, ())]
        for value, attribute in names:
            if isinstance(value, str) and value:
                index.setdefault(value, []).append(_Target(resource.urn, address, attribute, tf_type))
    return index


def _input(resource: Resource, tf_type: str, attribute: str) -> Any:
    """The top-level input that is Terraform's ``attribute`` (a Lambda function's ``name`` is its
    ``function_name``)."""
    renamed = RENAMED.get(tf_type, {})
    return next(
        (
            value
            for key, value in resource.inputs.items()
            if renamed.get(snake_case(key), snake_case(key)) == attribute
        ),
        None,
    )


def _terraform_inputs(tf_type: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs whose Terraform form differs in more than a name: a Lambda function's code archive is
    Terraform's ``filename`` (a path)."""
    if tf_type == "aws_lambda_function" and isinstance(inputs.get("code"), dict):
        archive = inputs.pop("code")
        if isinstance(archive.get("path"), str):
            inputs["filename"] = archive["path"]
    return inputs


@dataclass(frozen=True)
class _Shape:
    """How one resource's inputs become Terraform planned values and configuration expressions."""

    renamed: Mapping[str, str]
    single_item_lists: frozenset[str]
    own_name: str
    resource: Resource
    targets: Mapping[str, list[_Target]]
    linked: bool
    """The graph records dependencies: a resource references only those it depends on."""

    def block(self, path: str, value: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A block's planned values (without the unknown ones) and its expressions, by Terraform name;
        ``path`` is the block's snake-cased pulumi path (``""`` for the resource itself)."""
        values: dict[str, Any] = {}
        expressions: dict[str, Any] = {}
        for key, item in value.items():
            child = f"{path}.{snake_case(key)}" if path else snake_case(key)
            name = self.renamed.get(child, snake_case(key))
            planned, expressions[name] = self.attribute(child, name, item)
            if planned is not _AFTER_APPLY:
                values[name] = planned
        return values, expressions

    def attribute(self, path: str, name: str, value: Any) -> tuple[Any, Any]:
        """The planned value (:data:`_AFTER_APPLY` for a reference) and the expression of the attribute at
        pulumi ``path``, whose Terraform name is ``name``."""
        if name in MAP_ATTRIBUTES:
            return value, {"constant_value": value}
        if path in self.single_item_lists and not isinstance(value, list):
            value = [value]
        if isinstance(value, dict):
            values, expressions = self.block(path, value)
            return [values], [expressions]
        if isinstance(value, list) and any(isinstance(item, dict) for item in value):
            blocks = [
                self.block(path, item) if isinstance(item, dict) else (item, {"constant_value": item})
                for item in value
            ]
            return [values for values, _ in blocks], [expressions for _, expressions in blocks]
        if isinstance(value, list):
            references = [self.reference(path, name, item) for item in value]
            if not any(references):
                return value, {"constant_value": value}
            # Terraform keeps a list's known elements in place and writes the unknown ones as null.
            planned = [None if reference else item for item, reference in zip(value, references, strict=True)]
            return planned, {"references": [address for reference in references for address in reference]}
        reference = self.reference(path, name, value)
        if reference:
            return _AFTER_APPLY, {"references": reference}
        return value, {"constant_value": value}

    def reference(self, path: str, name: str, value: Any) -> list[str]:
        """Terraform's references for ``value`` in attribute ``name`` (at pulumi ``path``) if it names a
        resource this one depends on (any, when the graph records no dependencies at all), else ``[]``.
        The resource's own name is no reference, even where another resource's id is the same string."""
        is_own_name = "." not in path and name == self.own_name
        if is_own_name or not isinstance(value, str):
            return []
        candidates: dict[str, _Target] = {}
        for target in self.targets.get(value, ()):
            if target.urn != self.resource.urn and (
                not self.linked or target.urn in self.resource.dependencies
            ):
                candidates.setdefault(target.urn, target)
        target = _closest(name, list(candidates.values()))
        return [f"{target.address}.{target.attribute}", target.address] if target else []


def _closest(attribute: str, candidates: list[_Target]) -> _Target | None:
    """The one candidate ``attribute`` names: the only one, else the one whose Terraform type shares the
    most words with the attribute and adds the fewest others (``cluster_identifier`` names an
    ``aws_rds_cluster``, ``bucket`` an ``aws_s3_bucket`` rather than its notification). None when no
    candidate shares a word or two score the same: a wrong link would pass or fail a check on another
    resource's behalf."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    words = set(attribute.split("_"))

    def score(target: _Target) -> tuple[int, int]:
        type_words = set(target.tf_type.split("_")[1:])
        return len(words & type_words), -len(type_words - words)

    best, runner_up = sorted(candidates, key=score, reverse=True)[:2]
    return best if score(best)[0] > 0 and score(best) > score(runner_up) else None


def snake_case(name: str) -> str:
    """``visibilityTimeoutSeconds`` -> ``visibility_timeout_seconds`` (how pulumi-aws derived it)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
