"""checkov on the exported plan of a foundation-shaped AWS graph - its cross-resource checks see the links - and on
the enterprise stage's components, whose every resource it scans and whose settings its checks read.

Each CKV2 check below passes only if checkov follows a reference the exporter resolved (by id, by ARN or
by a stage's name) to a resource of the Terraform type the check names. The same graph without the
linked resource proves each one can fail: a check checkov cannot evaluate reports nothing, so both
verdicts are asserted. The enterprise stage is scanned as planned and with each checked setting flipped. Four
checkov runs in all.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from aws_enterprise_stage import ENTERPRISE_TYPES, enterprise_graph
from aws_linked_graph import linked_graph

from core.graph import ResourceGraph
from policies.checkov import ScanResult, scan
from policies.findings import Outcome

# (check, resource it reports on, the resource whose link makes it pass)
LINKED_CHECKS = [
    ("CKV2_AWS_31", "firewall-acl", "firewall-logging"),  # web ACL <- logging configuration, by ARN
    ("CKV2_AWS_29", "gateway-stage", "firewall-stage"),  # stage <- web ACL association, by ARN
    ("CKV2_AWS_4", "gateway-stage", "gateway-settings"),  # stage <- method settings, by stage name
    ("CKV2_AWS_5", "network-functions", "ingest-function"),  # security group <- Lambda vpc_config
    ("CKV2_AWS_5", "network-endpoints", "network-sqs"),  # security group <- VPC endpoint
    ("CKV2_AWS_5", "network-database", "knowledge-cluster"),  # security group <- vpc_security_group_ids
    ("CKV2_AWS_12", "network-vpc", "network-default-sg"),  # VPC <- its default security group
    ("CKV2_AWS_61", "documents-bucket", "documents-lifecycle"),  # bucket <- lifecycle configuration
    ("CKV2_AWS_62", "documents-bucket", "documents-events"),  # bucket <- notification (same id as bucket)
]


@pytest.fixture(scope="module")
def linked() -> ScanResult:
    return scan(linked_graph())


@pytest.fixture(scope="module")
def unlinked() -> ScanResult:
    return scan(linked_graph(without={link for _, _, link in LINKED_CHECKS}))


def _verdict(result: ScanResult, check_id: str, resource: str) -> Outcome | None:
    return next(
        (f.outcome for f in result.findings if f.check_id == check_id and f.resource_name == resource), None
    )


def test_checkov_scans_every_exported_resource(linked: ScanResult, unlinked: ScanResult) -> None:
    assert linked.unmapped == [] and linked.scanned == linked.exported == {"terraform_plan": 37}
    assert unlinked.scanned == unlinked.exported


@pytest.mark.parametrize(("check_id", "resource", "link"), LINKED_CHECKS)
def test_cross_resource_check_passes_with_the_link_and_fails_without(
    linked: ScanResult, unlinked: ScanResult, check_id: str, resource: str, link: str
) -> None:
    assert _verdict(linked, check_id, resource) is Outcome.PASSED, f"{check_id} did not see {link}"
    assert _verdict(unlinked, check_id, resource) is Outcome.FAILED


@pytest.mark.parametrize(
    ("check_id", "resource"),
    [
        ("CKV2_AWS_77", "gateway-stage"),  # rule.*.statement.managed_rule_group_statement.name (renamed)
        ("CKV_AWS_192", "firewall-acl"),  # rule / override_action (renamed)
        ("CKV_AWS_300", "documents-lifecycle"),  # rule.abort_incomplete_multipart_upload (renamed)
        ("CKV2_AWS_65", "documents-owner"),  # rule.object_ownership
        ("CKV2_AWS_53", "gateway-proxy-any"),  # request_validator_id
        ("CKV_AWS_59", "gateway-proxy-any"),  # authorization
        ("CKV_AWS_76", "gateway-stage"),  # access_log_settings.destination_arn (a reference)
        ("CKV_AWS_324", "knowledge-cluster"),  # enabled_cloudwatch_logs_exports
        ("CKV2_AWS_73", "ingest-queue"),  # kms_master_key_id kept as a value checkov can compare
        ("CKV2_AWS_27", "knowledge-cluster"),  # -> parameter group by name; parameter.*.name (renamed)
    ],
)
def test_checks_read_the_terraform_attributes(linked: ScanResult, check_id: str, resource: str) -> None:
    assert _verdict(linked, check_id, resource) is Outcome.PASSED


# --- the AWS enterprise stage ---------------------------------------------------------------------------

CLUSTER, NODES, TEMPLATE = (
    "aws:eks/cluster:Cluster",
    "aws:eks/nodeGroup:NodeGroup",
    "aws:ec2/launchTemplate:LaunchTemplate",
)
REPOSITORY, REPOSITORY_POLICY = "aws:ecr/repository:Repository", "aws:ecr/repositoryPolicy:RepositoryPolicy"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ANYONE_MAY = {"Effect": "Allow", "Principal": "*", "Action": ["ecr:BatchGetImage", "SNS:Publish"]}

# (check, type, resource, what breaks it in the broken copy)
ENTERPRISE_CHECKS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("CKV_AWS_37", CLUSTER, "agents-cluster", {"enabledClusterLogTypes": ["api"]}),
    ("CKV_AWS_38", CLUSTER, "agents-cluster", {"vpcConfig.publicAccessCidrs": ["0.0.0.0/0"]}),
    ("CKV_AWS_39", CLUSTER, "agents-cluster", {"vpcConfig.endpointPublicAccess": True}),
    ("CKV_AWS_58", CLUSTER, "agents-cluster", {"encryptionConfig.resources": []}),
    ("CKV_AWS_339", CLUSTER, "agents-cluster", {"version": "1.27"}),
    ("CKV2_AWS_5", SECURITY_GROUP, "agents-cluster", {}),  # attached only through the cluster's vpc_config
    ("CKV_AWS_79", TEMPLATE, "agents-nodes", {"metadataOptions.httpTokens": "optional"}),
    ("CKV_AWS_341", TEMPLATE, "agents-nodes", {"metadataOptions.httpPutResponseHopLimit": 2}),
    ("CKV_AWS_100", NODES, "agents-nodes", {"remoteAccess": {"ec2SshKey": "admin"}}),
    ("CKV_AWS_51", REPOSITORY, "registry-repository", {"imageTagMutability": "MUTABLE"}),
    ("CKV_AWS_163", REPOSITORY, "registry-repository", {"imageScanningConfiguration.scanOnPush": False}),
    (
        "CKV_AWS_136",
        REPOSITORY,
        "registry-repository",
        {"encryptionConfigurations": [{"encryptionType": "AES256"}]},
    ),
    ("CKV_AWS_32", REPOSITORY_POLICY, "registry-policy", {"policy": json.dumps({"Statement": [ANYONE_MAY]})}),
]


def _broken(graph: ResourceGraph) -> ResourceGraph:
    """The stage with every setting of :data:`ENTERPRISE_CHECKS` flipped, and the cluster's own security group
    left out of its vpc_config."""
    changes: dict[tuple[str, str], dict[str, Any]] = {}
    for _, type_, name, change in ENTERPRISE_CHECKS:
        changes.setdefault((type_, name), {}).update(change)
    changes[(CLUSTER, "agents-cluster")]["vpcConfig.securityGroupIds"] = []
    resources = []
    for resource in graph.resources:
        inputs = json.loads(json.dumps(resource.inputs))
        for path, value in changes.get((resource.type, resource.name), {}).items():
            *parents, leaf = path.split(".")
            target = inputs
            for key in parents:
                target = target[key]
            target[leaf] = value
        resources.append(dataclasses.replace(resource, inputs=inputs))
    return dataclasses.replace(graph, resources=resources)


@pytest.fixture(scope="module")
def stage() -> ResourceGraph:
    graph = enterprise_graph()
    return dataclasses.replace(
        graph, resources=[r for r in graph.cloud_resources() if r.type.startswith("aws:")]
    )


@pytest.fixture(scope="module")
def stage_scan(stage: ResourceGraph) -> ScanResult:
    return scan(stage)


@pytest.fixture(scope="module")
def broken_scan(stage: ResourceGraph) -> ScanResult:
    return scan(_broken(stage))


def _outcome(result: ScanResult, check_id: str, type_: str, name: str) -> Outcome | None:
    return next(
        (
            f.outcome
            for f in result.findings
            if (f.check_id, f.resource_type, f.resource_name) == (check_id, type_, name)
        ),
        None,
    )


def test_checkov_scans_every_resource_of_the_enterprise_stage(
    stage: ResourceGraph, stage_scan: ScanResult, broken_scan: ScanResult
) -> None:
    assert stage_scan.unmapped == [] and stage_scan.not_scannable == {}
    assert stage_scan.scanned == stage_scan.exported == {"terraform_plan": len(stage.resources)}
    assert broken_scan.scanned == broken_scan.exported == {"terraform_plan": len(stage.resources)}
    exported = {r.type for r in stage.resources}
    assert set(ENTERPRISE_TYPES) <= exported, set(ENTERPRISE_TYPES) - exported


@pytest.mark.parametrize(
    ("check_id", "type_", "name"),
    [c[:3] for c in ENTERPRISE_CHECKS],
    ids=[f"{c[0]}-{c[2]}" for c in ENTERPRISE_CHECKS],
)
def test_checkov_reads_the_enterprise_settings(
    stage_scan: ScanResult, broken_scan: ScanResult, check_id: str, type_: str, name: str
) -> None:
    assert _outcome(stage_scan, check_id, type_, name) is Outcome.PASSED
    assert _outcome(broken_scan, check_id, type_, name) is Outcome.FAILED
