"""The plan engine records the graph faithfully: edges, parents, secrets redacted, unknowns kept."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi_azure_native import resources, storage

from core.engine import clean_value, record
from core.errors import AgentstageError
from core.graph import SECRET, UNKNOWN, ResourceGraph
from core.stacks import read_stack_config


class _Box(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("test:index:Box", name)
        group = resources.ResourceGroup(
            "group", resource_group_name="rg-test", location="swedencentral", opts=pulumi.ResourceOptions(parent=self)
        )
        storage.StorageAccount(
            "account",
            account_name="sttest",
            resource_group_name=group.name,
            kind="StorageV2",
            sku=storage.SkuArgs(name="Standard_LRS"),
            tags={"secret": pulumi.Output.secret("hunter2"), "endpoint": group.id.apply(lambda _: pulumi.UNKNOWN)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    return record(lambda: _Box("box"))


def test_components_and_children_keep_their_parent(graph: ResourceGraph) -> None:
    box = graph.of_type("test:index:Box")[0]
    assert box.custom is False and box.parent is None
    children = {r.name for r in graph.children(box.urn)}
    assert children == {"group", "account"}
    assert graph.of_type("azure-native:storage:StorageAccount")[0].urn == (
        "urn:pulumi:test::agentstage::test:index:Box$azure-native:storage:StorageAccount::account"
    )


def test_dependencies_from_outputs_are_recorded(graph: ResourceGraph) -> None:
    account = graph.of_type("azure-native:storage:StorageAccount")[0]
    group = graph.of_type("azure-native:resources:ResourceGroup")[0]
    assert group.urn in account.dependencies


def test_resource_names_flow_like_a_preview(graph: ResourceGraph) -> None:
    account = graph.of_type("azure-native:storage:StorageAccount")[0]
    assert account.inputs["resourceGroupName"] == "rg-test"


def test_secrets_never_reach_the_graph(graph: ResourceGraph) -> None:
    account = graph.of_type("azure-native:storage:StorageAccount")[0]
    # Pulumi lifts secretness to the top-level input: the whole tags map is redacted.
    assert account.inputs["tags"] == SECRET
    assert "hunter2" not in graph.to_json()


def test_round_trips_through_json(graph: ResourceGraph) -> None:
    again = ResourceGraph.from_json(graph.to_json())
    assert again.resources == graph.resources


def test_clean_value_normalises_numbers_and_unknowns() -> None:
    assert clean_value({"replicas": 2.0, "ratio": 0.5, "nested": [1.0]}) == {"replicas": 2, "ratio": 0.5, "nested": [1]}
    assert clean_value(pulumi.output.Unknown()) == UNKNOWN


def test_provider_calls_outside_the_offline_table_fail_loudly() -> None:
    def program() -> None:
        resources.get_resource_group_output(resource_group_name="anything").apply(lambda _: None)

    with pytest.raises(Exception, match="cannot be answered offline"):
        record(program)


def test_program_run_errors_become_one_clear_error() -> None:
    def program() -> None:
        raise pulumi.RunError("stacks/Pulumi.x.yaml: unknown key 'agentstage:oops'")

    with pytest.raises(AgentstageError, match="unknown key 'agentstage:oops'"):
        record(program)


def test_stack_files_are_read_like_the_engine_passes_them(tmp_path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(
        "config:\n  agentstage:name: plain\n  agentstage:count: 3\n  agentstage:list: [a, b]\n"
        "  agentstage:token:\n    secure: v1:abc\n"
    )
    config, secret_keys = read_stack_config(path)
    assert config == {
        "agentstage:name": "plain",
        "agentstage:count": "3",
        "agentstage:list": json.dumps(["a", "b"]),
        "agentstage:token": SECRET,
    }
    assert secret_keys == ["agentstage:token"]


def test_recording_skips_the_sdks_source_positions_and_restores_them() -> None:
    from pulumi.runtime import resource as pulumi_resource

    capture = pulumi_resource._get_stack_trace
    during: list[object] = []
    record(lambda: during.append(pulumi_resource._get_stack_trace))
    assert during and during[0] is not capture
    assert pulumi_resource._get_stack_trace is capture


def test_paths_inside_the_given_directories_are_recorded_relative_to_the_deepest() -> None:
    kit, project = "/src/kit/", "/src/kit/examples/shop/"
    directories = (kit, project)
    assert clean_value("/src/kit/examples/shop/build/app.zip", directories) == "build/app.zip"
    assert clean_value("/src/kit/runtime/app.py", directories) == "runtime/app.py"
    assert clean_value({"code": pulumi.FileArchive("/src/kit/build/lambda.zip")}, directories) == {
        "code": {"path": "build/lambda.zip"}
    }
    assert clean_value(["/src/kitchen/menu.txt", "/src/kit"], directories) == [
        "/src/kitchen/menu.txt",
        "/src/kit",
    ]
