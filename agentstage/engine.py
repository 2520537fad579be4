"""The offline plan engine: run the real Pulumi program under mocks and record the resource graph.

This is the same ``__main__.py`` that ``pulumi up`` runs, with ``pulumi.runtime.set_mocks`` standing in
for the engine and the providers. It runs in preview mode, so outputs only a cloud can know stay
unknown and every dependency edge is kept. Secrets never reach the graph.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
import yaml
from pulumi.output import Unknown
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from agentstage.errors import AgentstageError
from agentstage.graph import SECRET, UNKNOWN, Resource, ResourceGraph

if TYPE_CHECKING:
    from blueprints.config import StackConfig

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Answers to the provider functions the program calls; any other call fails loudly rather than
# inventing data. The ids are obviously fake so they can never be mistaken for a real tenant.
OFFLINE_INVOKES: dict[str, dict[str, Any]] = {
    "azure-native:authorization:getClientConfig": {
        "clientId": "00000000-0000-0000-0000-00000000c11e",
        "objectId": "00000000-0000-0000-0000-0000000000b1",
        "subscriptionId": "00000000-0000-0000-0000-000000000000",
        "tenantId": "00000000-0000-0000-0000-0000000000aa",
    },
    # A cluster's kubeconfig exists only once the cluster does: a first real preview answers "unknown".
    "azure-native:containerservice:listManagedClusterUserCredentials": {
        "kubeconfigs": [{"name": "clusterUser", "value": rpc.UNKNOWN}]
    },
}


class StackNotFoundError(AgentstageError):
    """The stack has no stack file."""


class OfflineInvokeError(AgentstageError):
    """The program asked a provider something only a live cloud can answer."""


class _OfflineMocks(pulumi_mocks.Mocks):
    """Resources echo their inputs; everything else stays unknown, as in a real preview.

    Like the azure-native provider's preview, a resource's ``name`` output is known when its own name
    input is: the single ``...Name`` input other than the resource group's (or, for a resource group,
    ``resourceGroupName`` itself).
    """

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        _output_shapes(state)
        _computed_outputs(args.typ, state)
        own_name = _own_name(args.typ, state)
        if own_name is not None:
            state.setdefault("name", own_name)
        return f"/agentstage-plan/{args.typ}/{args.name}", state

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict[str, Any]:
        if args.token in OFFLINE_INVOKES:
            return OFFLINE_INVOKES[args.token]
        raise OfflineInvokeError(f"the program calls '{args.token}', which cannot be answered offline")


# Outputs the provider computes on creation that the program reads back: unknown in a first preview.
# A mock that echoed the input would hand the program a known ``None`` (the issuer URL inside
# ``oidcIssuerProfile``) and drop the input built from it. The SDK only keeps unknowns at the top level
# of an output, so the whole property is unknown.
COMPUTED_OUTPUTS: dict[str, tuple[str, ...]] = {
    "azure-native:containerservice:ManagedCluster": ("oidcIssuerProfile",),
}


def _computed_outputs(type_: str, state: dict[str, Any]) -> None:
    for name in COMPUTED_OUTPUTS.get(type_, ()):
        state[name] = rpc.UNKNOWN


def _output_shapes(state: dict[str, Any]) -> None:
    """Where an output's shape differs from its input's, echo the output shape.

    ARM takes user-assigned identities as a list of ids but returns them as a map of id -> details.
    """
    identity = state.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        state["identity"] = {
            **identity,
            "userAssignedIdentities": {i: {} for i in identity["userAssignedIdentities"]},
        }


def _own_name(type_: str, inputs: dict[str, Any]) -> Any:
    if type_ == "azure-native:resources:ResourceGroup":
        return inputs.get("resourceGroupName")
    candidates = [k for k in inputs if k.endswith("Name") and k != "resourceGroupName"]
    return inputs[candidates[0]] if len(candidates) == 1 else None


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that keeps every registration: the whole graph, with its edges."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Resource] = []
        self.stack_urn = ""

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """URNs as the engine forms them: the parent's type chain, without the root stack's type."""
        if parent and parent != self.stack_urn:
            type_ = parent.split("::")[2] + "$" + type_
        return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{type_}::{name}"

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            self.stack_urn = response.urn
            return response
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        self.recorded.append(
            Resource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent if request.parent and request.parent != self.stack_urn else None,
                provider=request.provider.rsplit("::", 1)[0] if request.provider else None,
                dependencies=tuple(sorted(set(request.dependencies))),
                inputs=clean_value(inputs),
                mock_id=response.id or None,
                retain_on_delete=bool(request.retainOnDelete),
            )
        )
        return response


def clean_value(value: Any) -> Any:
    """Plain JSON data: secrets redacted, unknowns marked, whole floats as ints, archives as paths, and
    mappings in key order (so two plans of one program are byte-identical)."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return SECRET
        return {k: clean_value(v) for k, v in sorted(value.items()) if not k.startswith("__")}
    if isinstance(value, list | tuple):
        return [clean_value(v) for v in value]
    if isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN):
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, pulumi.FileArchive | pulumi.FileAsset):
        return {"path": value.path}
    if isinstance(value, pulumi.AssetArchive):
        return {"assets": sorted(value.assets)}
    if isinstance(value, pulumi.Resource):
        return UNKNOWN
    return value


def project_dir(given: Path | None = None) -> Path:
    """The project to plan: the one given, else the working directory's, else agentstage's own."""
    if given is not None:
        if not (given / "Pulumi.yaml").is_file():
            raise AgentstageError(f"--project-dir {given}: no Pulumi.yaml there")
        return given.resolve()
    cwd = Path.cwd()
    return cwd if (cwd / "Pulumi.yaml").is_file() else PROJECT_DIR


def project_settings(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    with open(project_dir / "Pulumi.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def stack_file(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    """The stack's file, or a clear error listing the stacks that exist."""
    config_dir = project_dir / project_settings(project_dir).get("stackConfigDir", ".")
    path = config_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(available_stacks(project_dir)) or "none"
        raise StackNotFoundError(
            f"unknown stack '{stack}': {path.relative_to(project_dir)} does not exist (stacks: {known})"
        )
    return path


def available_stacks(project_dir: Path = PROJECT_DIR) -> list[str]:
    config_dir = project_dir / project_settings(project_dir).get("stackConfigDir", ".")
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in config_dir.glob("Pulumi.*.yaml"))


def read_stack_config(path: Path) -> tuple[dict[str, str], list[str]]:
    """Config as the Pulumi engine hands it to a program: strings, structured values as JSON.

    Secure (encrypted) values cannot be decrypted offline; they are passed as a redacted marker and
    flagged secret, exactly where a real run would see a secret.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise AgentstageError(
            f"{path.name} is not valid YAML{where}: {getattr(error, 'problem', error)}"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise AgentstageError(f"{path.name}: expected a mapping with a 'config' mapping at the top level")
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = SECRET
            secret_keys.append(key)
        elif isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    return config, secret_keys


def load_stack_config(stack: str, project_dir: Path = PROJECT_DIR) -> tuple[StackConfig, Path]:
    """The stack file, validated, and where it is (relative to the project when inside it, for messages)."""
    from blueprints.config import StackConfigError, parse_stack_config

    path = stack_file(stack, project_dir)
    raw, _secret_keys = read_stack_config(path)
    try:
        config = parse_stack_config(raw, path.name)
    except StackConfigError as error:
        raise AgentstageError(str(error)) from None
    return config, path.relative_to(project_dir) if path.is_relative_to(project_dir) else path


def build_graph(stack: str, project_dir: Path = PROJECT_DIR) -> ResourceGraph:
    """Run the project's program for ``stack`` offline and return its resource graph."""
    path = stack_file(stack, project_dir)
    config, secret_keys = read_stack_config(path)
    program = project_dir / "__main__.py"
    graph = record(
        lambda: runpy.run_path(str(program), run_name="__main__"),
        project=project_settings(project_dir)["name"],
        stack=stack,
        config=config,
        secret_keys=secret_keys,
    )
    return relative_paths(graph, (project_dir, PROJECT_DIR))


def relative_paths(graph: ResourceGraph, roots: tuple[Path, ...]) -> ResourceGraph:
    """The graph with paths inside the project or the kit written relative to it (``build/app.zip``).

    The program passes absolute paths (the runtime package to publish); shown relative, a plan of one
    commit is the same in every checkout, so a plan of the base in a temporary worktree differs from this
    checkout's only where the code or the stack does.
    """
    prefixes = sorted({f"{root.resolve()}{os.sep}" for root in roots}, key=len, reverse=True)

    def relative(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: relative(item) for key, item in value.items()}
        if isinstance(value, list):
            return [relative(item) for item in value]
        if isinstance(value, str):
            prefix = next((p for p in prefixes if value.startswith(p)), "")
            return value.removeprefix(prefix)
        return value

    resources = [dataclasses.replace(r, inputs=relative(r.inputs)) for r in graph.resources]
    return dataclasses.replace(graph, resources=resources)


def record(
    program: Callable[[], object],
    *,
    project: str = "agentstage",
    stack: str = "test",
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
) -> ResourceGraph:
    """Run any Pulumi program (a whole stack, or one component in a test) and record its graph."""
    # Each recording runs on a loop of its own: Pulumi's synchronous bridge uses the thread's current
    # loop, and code run earlier in the process (asyncio.run) may have left none or a closed one.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return _record_on_current_loop(program, project, stack, config or {}, secret_keys or [])
    finally:
        # A program that failed leaves Pulumi's registrations pending: cancel and drain them, so closing
        # the loop destroys no live task.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()


def _record_on_current_loop(
    program: Callable[[], object], project: str, stack: str, config: dict[str, str], secret_keys: list[str]
) -> ResourceGraph:
    monitor = _RecordingMonitor(_OfflineMocks())
    pulumi_settings.ROOT.set(None)
    set_all_config(config, secret_keys)
    pulumi_mocks.set_mocks(monitor.mocks, project=project, stack=stack, preview=True, monitor=monitor)
    # A failed earlier run leaves its pending work and error behind; start clean like pulumi's test helper.
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    try:
        _sync_await(run_pulumi_func(program))
    except pulumi.RunError as error:
        raise AgentstageError(str(error)) from None
    return ResourceGraph(stack=stack, project=project, resources=canonical_order(monitor.recorded))


def canonical_order(resources: list[Resource]) -> list[Resource]:
    """The resources as the tree reads: each parent before its children, siblings by name then type.

    Pulumi registers resources as its asyncio tasks happen to run, which varies from run to run; plans
    that are compared (``plan --diff``, a reviewer's eyes) need one order for one program.
    """
    children: dict[str | None, list[Resource]] = {}
    for resource in resources:
        children.setdefault(resource.parent, []).append(resource)
    known = {resource.urn for resource in resources}
    ordered: list[Resource] = []

    def visit(parent: str | None) -> None:
        for child in sorted(children.get(parent, ()), key=lambda r: (r.name, r.type, r.urn)):
            ordered.append(child)
            visit(child.urn)

    visit(None)
    for parent in sorted(p for p in children if p is not None and p not in known):  # parents not recorded
        visit(parent)
    return ordered
