"""A flat Pulumi program that registers exactly a graph's resources, for the plan benchmark.

It replays every cloud resource of a saved graph (``agentstage plan --out``) with the same SDK class,
the same inputs and the same dependency edges, but without agentstage's layers: no stack config, no
blueprint, no components, no naming or grant helpers. Run under the same mocks as ``agentstage plan``,
the time difference between the two is what agentstage's abstractions cost.

    python benchmarks/flat_program.py graph.json
"""

from __future__ import annotations

import gc

gc.disable()  # `agentstage plan`'s process policy (agentstage.cli.BATCH_VERBS), from the same point: before the SDKs

import importlib
import inspect
import keyword
import os
import re
import sys
from pathlib import Path
from typing import Any

import pulumi

from core.engine import record
from core.graph import SECRET, UNKNOWN, Resource, ResourceGraph


def sdk_class(type_: str) -> type[pulumi.CustomResource]:
    """``azure-native:keyvault:Vault`` -> ``pulumi_azure_native.keyvault.Vault``;
    ``aws:lambda/function:Function`` -> ``pulumi_aws.lambda_.Function`` (modules named like keywords get ``_``);
    ``kubernetes:networking.k8s.io/v1:NetworkPolicy`` -> ``pulumi_kubernetes.networking.v1.NetworkPolicy``;
    kinds the SDK has no class for (KEDA's) -> ``pulumi_kubernetes.apiextensions.CustomResource``."""
    package, module, name = type_.split(":")
    if package == "kubernetes":
        group, _, version = module.rpartition("/")
        try:
            sdk_module = importlib.import_module(
                f"pulumi_kubernetes.{group.split('.')[0] or 'core'}.{version}"
            )
            return getattr(sdk_module, name)
        except (ImportError, AttributeError):
            return importlib.import_module("pulumi_kubernetes.apiextensions").CustomResource
    if package == "aws":
        module = module.split("/")[0]
        module = f"{module}_" if keyword.iskeyword(module) else module
    return getattr(importlib.import_module(f"pulumi_{package.replace('-', '_')}.{module}"), name)


def snake(name: str) -> str:
    """``enableRBAC`` -> ``enable_rbac``, ``resourceUri`` -> ``resource_uri`` (acronyms stay one word)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def constructor_kwargs(cls: type[pulumi.CustomResource], inputs: dict[str, Any]) -> dict[str, Any]:
    """Top-level inputs as the constructor's snake_case parameters (``resource_name_`` and the like)."""
    if not hasattr(cls, "_internal_init"):  # a Kubernetes custom resource: the manifest's own fields
        return {snake(key): replay_value(value) for key, value in inputs.items()}
    parameters = inspect.signature(cls._internal_init).parameters  # type: ignore[attr-defined]
    kwargs = {}
    for key, value in inputs.items():
        name = snake(key)
        name = name if name in parameters and name != "resource_name" else f"{name}_"
        if name not in parameters:
            raise KeyError(f"{cls.__name__} has no parameter for input '{key}'")
        kwargs[name] = replay_value(value)
    return kwargs


def replay_value(value: Any) -> Any:
    """Recorded values back into program values: secrets stay secret, archives become archives."""
    if value == SECRET:
        return pulumi.Output.secret("redacted")
    if value == UNKNOWN:
        return pulumi.Output.from_input("unknown-until-deployed")
    if isinstance(value, dict):
        if set(value) == {"path"}:
            path = Path(value["path"])
            archive = path.is_dir() or path.suffix == ".zip"
            return pulumi.FileArchive(str(path)) if archive else pulumi.FileAsset(str(path))
        return {k: replay_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replay_value(v) for v in value]
    return value


def flat_program(graph: ResourceGraph) -> None:
    created: dict[str, pulumi.CustomResource] = {}
    names: set[str] = set()
    for resource in graph.cloud_resources():
        name = unique_name(resource, names)
        cls = sdk_class(resource.type)
        depends_on = [created[urn] for urn in resource.dependencies if urn in created]
        created[resource.urn] = cls(
            name,
            opts=pulumi.ResourceOptions(depends_on=depends_on),
            **constructor_kwargs(cls, resource.inputs),
        )


def unique_name(resource: Resource, taken: set[str]) -> str:
    name = resource.name
    while name in taken:
        name += "-"
    taken.add(name)
    return name


def main(path: str) -> int:
    graph = ResourceGraph.from_json(Path(path).read_text(encoding="utf-8"))
    replayed = record(lambda: flat_program(graph), stack=graph.stack)
    expected = len(graph.cloud_resources())
    if len(replayed.cloud_resources()) != expected:
        print(f"replayed {len(replayed.cloud_resources())} of {expected} resources", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # as `agentstage plan` exits: without tearing the heap down (agentstage.cli.entry)
