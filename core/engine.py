"""The offline plan engine: run the real Pulumi program under mocks and record the resource graph.

This is the same ``__main__.py`` that ``pulumi up`` runs, with ``pulumi.runtime.set_mocks`` standing in
for the engine and the providers. It runs in preview mode, so outputs only a cloud can know stay
unknown and every dependency edge is kept. Secrets never reach the graph.
"""

from __future__ import annotations

import asyncio
import os
import runpy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as pulumi_resource
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from core.collector import collector_paused
from core.errors import AgentstageError
from core.graph import SECRET, UNKNOWN, Resource, ResourceGraph
from core.mocks import offline_mocks
from core.stacks import PROJECT_DIR, project_settings, read_stack_config, stack_file


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that keeps every registration: the whole graph, with its edges."""

    def __init__(
        self, mocks: pulumi_mocks.Mocks, on_resource: OnResource | None, relative_to: tuple[str, ...]
    ) -> None:
        super().__init__(mocks)
        self.recorded: list[Resource] = []
        self.stack_urn = ""
        self.on_resource = on_resource
        self.relative_to = relative_to

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
        outputs = rpc.deserialize_properties(response.object, keep_unknowns=True) if response.object else {}
        arn = next((outputs[key] for key in ARN_OUTPUTS if isinstance(outputs.get(key), str)), None)
        self.recorded.append(
            Resource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent if request.parent and request.parent != self.stack_urn else None,
                provider=request.provider.rsplit("::", 1)[0] if request.provider else None,
                dependencies=tuple(sorted(set(request.dependencies))),
                inputs=clean_value(inputs, self.relative_to),
                mock_id=response.id or None,
                retain_on_delete=bool(request.retainOnDelete),
                arn=arn if arn != rpc.UNKNOWN else None,
            )
        )
        if self.on_resource is not None:
            self.on_resource(self.recorded[-1])
        return response


OnResource = Callable[[Resource], None]
"""Called with each resource as it is registered (progress on a terminal); it must return quickly."""

ARN_OUTPUTS = ("arn", "guardrailArn", "dashboardArn")
"""Outputs that carry an AWS resource's ARN, the name IAM documents use for it."""


def clean_value(value: Any, relative_to: tuple[str, ...] = ()) -> Any:
    """Plain JSON data: secrets redacted, unknowns marked, whole floats as ints, archives as paths, and
    mappings in key order (so two plans of one program are byte-identical).

    Paths under one of the ``relative_to`` directories (each ending in a separator) are written relative to
    the deepest of them (see :func:`build_graph`)."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return SECRET
        return {k: clean_value(v, relative_to) for k, v in sorted(value.items()) if not k.startswith("__")}
    if isinstance(value, list | tuple):
        return [clean_value(v, relative_to) for v in value]
    if isinstance(value, str):
        if value == rpc.UNKNOWN:
            return UNKNOWN
        return _relative(value, relative_to) if relative_to and value.startswith(relative_to) else value
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, pulumi.FileArchive | pulumi.FileAsset):
        return {"path": clean_value(value.path, relative_to)}
    if isinstance(value, pulumi.AssetArchive):
        return {"assets": sorted(value.assets)}
    if isinstance(value, pulumi.Resource):
        return UNKNOWN
    return value


def _relative(path: str, directories: tuple[str, ...]) -> str:
    return path.removeprefix(max((d for d in directories if path.startswith(d)), key=len))


def build_graph(
    stack: str, project_dir: Path = PROJECT_DIR, *, on_resource: OnResource | None = None
) -> ResourceGraph:
    """Run the project's program for ``stack`` offline and return its resource graph.

    ``on_resource`` hears of each resource as it is registered, in registration order (not the graph's).
    Paths inside the project or the kit are recorded relative to it (``build/app.zip``): the program passes
    absolute paths (the runtime package to publish), and shown relative, a plan of one commit is the same in
    every checkout, so a plan of the base in a temporary worktree differs from this checkout's only where
    the code or the stack does.
    """
    path = stack_file(stack, project_dir)
    config, secret_keys = read_stack_config(path)
    program = project_dir / "__main__.py"
    return record(
        lambda: runpy.run_path(str(program), run_name="__main__"),
        project=project_settings(project_dir)["name"],
        stack=stack,
        config=config,
        secret_keys=secret_keys,
        on_resource=on_resource,
        relative_to=(project_dir, PROJECT_DIR),
    )


def record(
    program: Callable[[], object],
    *,
    project: str = "agentstage",
    stack: str = "test",
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
    mocks: pulumi_mocks.Mocks | None = None,
    on_resource: OnResource | None = None,
    relative_to: Sequence[Path] = (),
) -> ResourceGraph:
    """Run any Pulumi program (a whole stack, or one component in a test) and record its graph.

    ``mocks`` answers registrations and invokes; by default every cloud's profile (:mod:`core.mocks`).
    ``on_resource`` is called with each resource as it is registered. Paths the program passes from inside
    one of the ``relative_to`` directories are recorded relative to it (to the deepest, if nested).
    """
    directories = tuple(sorted({f"{directory.resolve()}{os.sep}" for directory in relative_to}))
    # Each recording runs on a loop of its own: Pulumi's synchronous bridge uses the thread's current
    # loop, and code run earlier in the process (asyncio.run) may have left none or a closed one.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        with collector_paused():
            monitor = _RecordingMonitor(mocks or offline_mocks(config or {}), on_resource, directories)
            return _record_on_current_loop(program, project, stack, config or {}, secret_keys or [], monitor)
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
    program: Callable[[], object],
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    monitor: _RecordingMonitor,
) -> ResourceGraph:
    pulumi_settings.ROOT.set(None)
    set_all_config(config, secret_keys)
    pulumi_mocks.set_mocks(monitor.mocks, project=project, stack=stack, preview=True, monitor=monitor)
    # A failed earlier run leaves its pending work and error behind; start clean like pulumi's test helper.
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    capture_stack = getattr(pulumi_resource, "_get_stack_trace", None)
    if capture_stack is not None:
        pulumi_resource._get_stack_trace = _no_stack_trace
    try:
        _sync_await(run_pulumi_func(program))
    except pulumi.RunError as error:
        raise AgentstageError(str(error)) from None
    finally:
        if capture_stack is not None:
            pulumi_resource._get_stack_trace = capture_stack
    return ResourceGraph(stack=stack, project=project, resources=canonical_order(monitor.recorded))


def _no_stack_trace() -> Any:
    """No source positions: the SDK walks and serializes the whole Python stack of every registration for
    the engine, and the recording monitor discards them (0.3 s of a 184-resource plan, before the
    collector was paused). Should a Pulumi release rename the walk, recording works as before, slower."""
    return pulumi_resource.source_pb2.StackTrace()


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
