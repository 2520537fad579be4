"""checkov on the exported plan of a foundation-shaped AWS graph: its cross-resource checks see the links.

Each CKV2 check below passes only if checkov follows a reference the exporter resolved (by id, by ARN or
by a stage's name) to a resource of the Terraform type the check names. The same graph without the
linked resource proves each one can fail: a check checkov cannot evaluate reports nothing, so both
verdicts are asserted. Two checkov runs in all.
"""

from __future__ import annotations

import pytest
from aws_linked_graph import linked_graph

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
