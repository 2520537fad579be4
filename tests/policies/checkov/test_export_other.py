"""Terraform-plan, Kubernetes and Dockerfile exporters, and the routing of a graph to all of them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from checkov_graphs import aws_graph, azure_pilot, hand_built, kubernetes_graph

from core.graph import ResourceGraph
from policies.export import NOT_SCANNABLE, export_graph
from policies.export.base import Suppression
from policies.export.kubernetes import export_kubernetes
from policies.export.terraform import PLAN_FILE, TERRAFORM_TYPES, export_terraform, snake_case


def _plan(graph: ResourceGraph) -> dict:
    return json.loads(export_terraform(graph.resources).files[PLAN_FILE])


def test_terraform_plan_has_the_shape_checkov_reads() -> None:
    plan = _plan(aws_graph())
    assert plan["terraform_version"] and plan["format_version"]
    resources = {r["address"]: r for r in plan["planned_values"]["root_module"]["resources"]}
    assert set(resources) == {
        "aws_s3_bucket.documents",
        "aws_s3_bucket_public_access_block.documents-public-access",
        "aws_sqs_queue.tasks",
        "aws_iam_role.agent-role",
        "aws_lambda_function.agent",
    }
    queue = resources["aws_sqs_queue.tasks"]
    assert (queue["mode"], queue["type"], queue["name"]) == ("managed", "aws_sqs_queue", "tasks")
    assert queue["values"] == {
        "name": "ags-tasks",
        "sqs_managed_sse_enabled": True,
        "visibility_timeout_seconds": 60,
    }


def test_terraform_blocks_are_lists_and_maps_stay_maps() -> None:
    plan = _plan(aws_graph())
    function = next(
        r for r in plan["planned_values"]["root_module"]["resources"] if r["type"] == "aws_lambda_function"
    )
    assert function["values"]["tracing_config"] == [{"mode": "Active"}]
    assert function["values"]["environment"] == [{"variables": {"AGENTSTAGE_CLOUD": "aws"}}]
    bucket = next(
        r for r in plan["planned_values"]["root_module"]["resources"] if r["type"] == "aws_s3_bucket"
    )
    assert bucket["values"]["tags"] == {"owner": "platform-team"}


def test_terraform_links_are_configuration_references() -> None:
    """CKV2 checks see links only here; the referencing value is unknown in the plan, as in a real one."""
    plan = _plan(aws_graph())
    block = next(
        r
        for r in plan["configuration"]["root_module"]["resources"]
        if r["type"] == "aws_s3_bucket_public_access_block"
    )
    assert block["expressions"]["bucket"] == {
        "references": ["aws_s3_bucket.documents.id", "aws_s3_bucket.documents"]
    }
    planned = next(
        r
        for r in plan["planned_values"]["root_module"]["resources"]
        if r["type"] == "aws_s3_bucket_public_access_block"
    )
    assert "bucket" not in planned["values"]


def test_terraform_addresses_are_unique_and_valid() -> None:
    graph = hand_built(
        "dupes",
        ("aws:sqs/queue:Queue", "a.b", {}),
        ("aws:sqs/queue:Queue", "a:b", {}),
        ("aws:sqs/queue:Queue", "9q", {}),
    )
    assert list(export_terraform(graph.resources).owners) == [
        "aws_sqs_queue.a_b",
        "aws_sqs_queue.a_b_2",
        "aws_sqs_queue._9q",
    ]


def test_terraform_map_is_curated_and_unmapped_types_are_reported() -> None:
    assert TERRAFORM_TYPES["aws:s3/bucket:Bucket"] == "aws_s3_bucket"
    assert all(t.startswith("aws:") and v.startswith("aws_") for t, v in TERRAFORM_TYPES.items())
    export = export_terraform(hand_built("unmapped", ("aws:bedrock/agent:Agent", "agent", {})).resources)
    assert export.unmapped == ["aws:bedrock/agent:Agent"] and not export.files and export.expected == 0
    assert snake_case("visibilityTimeoutSeconds") == "visibility_timeout_seconds"
    assert snake_case("kmsKeyId") == "kms_key_id"


def test_kubernetes_manifests_get_api_version_kind_and_name() -> None:
    export = export_kubernetes(kubernetes_graph().resources, {})
    manifests = {owner.name: yaml.safe_load(export.files[f]) for f, owner in export.owners.items()}
    assert manifests["agent"]["apiVersion"] == "apps/v1" and manifests["agent"]["kind"] == "Deployment"
    assert manifests["agent"]["spec"]["replicas"] == 2
    service = manifests["agent-service"]
    assert (service["apiVersion"], service["kind"], service["metadata"]["name"]) == (
        "v1",
        "Service",
        "agent-service",
    )
    assert manifests["default-deny"]["apiVersion"] == "networking.k8s.io/v1"


def test_kubernetes_expected_count_includes_the_split_out_pod() -> None:
    export = export_kubernetes(kubernetes_graph().resources, {})
    assert len(export.files) == 3 and export.expected == 4


def test_kubernetes_waivers_annotate_workload_and_pod_template() -> None:
    deployment = kubernetes_graph().resources[0]
    export = export_kubernetes(
        [deployment], {deployment.urn: [Suppression("CKV_K8S_9", "probes are set by the mesh; a=b")]}
    )
    (content,) = export.files.values()
    manifest = yaml.safe_load(content)
    expected = {"checkov.io/skip1": "CKV_K8S_9=probes are set by the mesh; a:b"}
    assert manifest["metadata"]["annotations"] == expected
    assert manifest["spec"]["template"]["metadata"]["annotations"] == expected


def test_graph_export_routes_by_provider_and_explains_what_it_skips(tmp_path: Path) -> None:
    graph = azure_pilot()
    graph.resources += aws_graph().resources + kubernetes_graph().resources
    graph.resources += hand_built(
        "other", ("command:local:Command", "publish", {}), ("random:index:RandomPet", "pet", {})
    ).resources
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim\nUSER 10001\n")
    exported = export_graph(graph, dockerfiles=[dockerfile])
    assert {e.framework: e.expected for e in exported.exports} == {
        "arm": 15,
        "terraform_plan": 5,
        "kubernetes": 4,
        "dockerfile": 1,
    }
    assert exported.unmapped == ["random:index:RandomPet"]
    assert exported.not_scannable == {
        t: NOT_SCANNABLE[t] for t in ("azure-native:storage:Blob", "command:local:Command")
    }
    (docker,) = (e for e in exported.exports if e.framework == "dockerfile")
    (name,) = docker.files
    assert name.endswith(".Dockerfile") and docker.owners[name].name == str(dockerfile)
