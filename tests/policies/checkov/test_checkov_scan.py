"""One real checkov run over every framework: counts, custom checks failing and passing, waivers, verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest
from checkov_graphs import aws_graph, azure_pilot, hand_built, kubernetes_graph

from core.config import WaiverConfig
from core.graph import ResourceGraph
from policies.checkov import ScanResult, scan
from policies.checkov.runner import PROJECT_DIR
from policies.findings import Finding, Outcome, Severity

RUNTIME_DOCKERFILE = PROJECT_DIR / "runtime" / "Dockerfile"


WAIVERS = (
    WaiverConfig(check="CKV_AZURE_189", resource="vault", reason="public endpoint by design: serverless egress cannot be pinned"),
    WaiverConfig(check="CKV_AZURE_225", resource="*", reason="zone redundancy is a production decision, not for this fixture"),
    WaiverConfig(check="CKV_K8S_9", resource="agent", reason="readiness is probed by the mesh sidecar, not by the kubelet"),
    WaiverConfig(check="CKV_AWS_18", resource="documents", reason="access logs are collected by the organisation trail"),
    WaiverConfig(check="AGS-AZ-001", resource="*", reason="one of our own rules: not checkov's business"),
)


def _insecure_azure() -> ResourceGraph:
    """One resource per custom check with the setting flipped (and resources the checks must ignore)."""
    flex = {"functionAppConfig": {"deployment": {"storage": {"type": "blobContainer", "value": "https://x"}}}}
    return hand_built(
        "insecure",
        (
            "azure-native:servicebus:Namespace",
            "bus-secure",
            {"namespaceName": "sb1", "disableLocalAuth": True, "minimumTlsVersion": "1.2"},
        ),
        (
            "azure-native:servicebus:Namespace",
            "bus-insecure",
            {"namespaceName": "sb2", "disableLocalAuth": False, "minimumTlsVersion": "1.0"},
        ),
        (
            "azure-native:operationalinsights:Workspace",
            "workspace-insecure",
            {"workspaceName": "log2", "retentionInDays": 7, "features": {"disableLocalAuth": False}},
        ),
        (
            "azure-native:applicationinsights:Component",
            "insights-insecure",
            {"resourceName": "appi2", "disableLocalAuth": False},
        ),
        (
            "azure-native:cognitiveservices:Deployment",
            "unfiltered",
            {"accountName": "oai", "deploymentName": "raw", "properties": {"raiPolicyName": "Microsoft.Nil"}},
        ),
        (
            "azure-native:cognitiveservices:Deployment",
            "no-filter",
            {"accountName": "oai", "deploymentName": "none", "properties": {}},
        ),
        (
            "azure-native:cosmosdb:DatabaseAccount",
            "mongo-insecure",
            {"accountName": "mongo", "kind": "MongoDB", "disableLocalAuth": False},
        ),
        (
            "azure-native:cosmosdb:DatabaseAccount",
            "mongo-secure",
            {"accountName": "mongo2", "kind": "MongoDB", "disableLocalAuth": True},
        ),
        (
            "azure-native:web:WebApp",
            "flex-keys",
            {"name": "f2", **_with_auth(flex, "StorageAccountConnectionString")},
        ),
        ("azure-native:web:WebApp", "classic-app", {"name": "w1", "httpsOnly": True}),
        (
            "azure-native:storage:StorageAccount",
            "storage-insecure",
            {"accountName": "st2", "allowSharedKeyAccess": True, "allowBlobPublicAccess": True},
        ),
    )


def _with_auth(flex: dict, auth_type: str) -> dict:
    storage = {**flex["functionAppConfig"]["deployment"]["storage"], "authentication": {"type": auth_type}}
    return {"functionAppConfig": {"deployment": {"storage": storage}}}


@pytest.fixture(scope="module")
def fixture_dockerfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("image") / "Dockerfile"
    path.write_text('FROM python:latest\nCOPY . /app\nCMD ["python", "/app/main.py"]\n')
    return path


@pytest.fixture(scope="module")
def result(fixture_dockerfile: Path) -> ScanResult:
    graph = azure_pilot()
    for extra in (_insecure_azure(), aws_graph(), kubernetes_graph()):
        graph.resources += extra.resources
    return scan(graph, waivers=WAIVERS, dockerfiles=[fixture_dockerfile, RUNTIME_DOCKERFILE])


def _verdicts(result: ScanResult, resource_name: str) -> dict[str, Finding]:
    return {f.check_id: f for f in result.findings if f.resource_name == resource_name}


def test_checkov_scans_every_exported_resource_of_every_framework(result: ScanResult) -> None:
    assert result.exported == {"arm": 26, "terraform_plan": 5, "kubernetes": 4, "dockerfile": 2}
    assert result.scanned == result.exported
    assert result.not_scannable.keys() == {"azure-native:storage:Blob"} and result.unmapped == []


CUSTOM_EXPECTATIONS = [
    ("CKV_AGS_AZ_1", "bus-insecure", "bus-secure"),
    ("CKV_AGS_AZ_2", "bus-insecure", "bus-secure"),
    ("CKV_AGS_AZ_3", "workspace-insecure", "workspace"),
    ("CKV_AGS_AZ_4", "workspace-insecure", "workspace"),
    ("CKV_AGS_AZ_5", "insights-insecure", "app-insights"),
    ("CKV_AGS_AZ_6", "insights-insecure", "app-insights"),
    ("CKV_AGS_AZ_7", "unfiltered", "openai-chat"),
    ("CKV_AGS_AZ_7", "no-filter", "openai-chat"),
    ("CKV_AGS_AZ_8", "mongo-insecure", "mongo-secure"),
    ("CKV_AGS_AZ_9", "flex-keys", "app"),
    ("CKV_AGS_AZ_10", "storage-insecure", "storage"),
    ("CKV_AGS_AZ_11", "storage-insecure", "storage"),
]


@pytest.mark.parametrize(("check_id", "failing", "passing"), CUSTOM_EXPECTATIONS)
def test_custom_check_fails_the_insecure_and_passes_the_secure(
    result: ScanResult, check_id: str, failing: str, passing: str
) -> None:
    failed = _verdicts(result, failing).get(check_id)
    passed = _verdicts(result, passing).get(check_id)
    assert failed is not None and failed.outcome is Outcome.FAILED, f"{check_id} did not fail on {failing}"
    assert passed is not None and passed.outcome is Outcome.PASSED, f"{check_id} did not pass on {passing}"
    assert failed.mandatory and failed.blocks and failed.severity in (Severity.HIGH, Severity.MEDIUM)
    assert failed.remediation.startswith("Set "), failed.remediation


def test_custom_checks_stay_silent_where_they_do_not_apply(result: ScanResult) -> None:
    assert "CKV_AGS_AZ_8" not in _verdicts(result, "cosmos")  # NoSQL: checkov's own CKV_AZURE_140 covers it
    assert _verdicts(result, "cosmos")["CKV_AZURE_140"].outcome is Outcome.PASSED
    assert "CKV_AGS_AZ_9" not in _verdicts(result, "classic-app")  # not a Flex Consumption app


def test_findings_carry_the_graph_resource_and_checkov_title(result: ScanResult) -> None:
    finding = _verdicts(result, "openai")["CKV_AZURE_236"]
    assert finding.source == "checkov" and finding.outcome is Outcome.PASSED
    assert (
        finding.resource_urn.endswith("::openai")
        and finding.resource_type == "azure-native:cognitiveservices:Account"
    )
    assert finding.title == "Ensure that Cognitive Services accounts disable local authentication"


def test_stack_waivers_apply_inline_and_after_the_run(result: ScanResult) -> None:
    for check_id, resource in (
        ("CKV_AZURE_189", "vault"),
        ("CKV_K8S_9", "agent"),
        ("CKV_AWS_18", "documents"),
        ("CKV_AZURE_225", "plan"),
    ):
        finding = _verdicts(result, resource)[check_id]
        expected = next(w.reason for w in WAIVERS if w.check == check_id)
        assert finding.outcome is Outcome.WAIVED and finding.waiver_reason == expected, (check_id, resource)
        assert not finding.blocks
    assert result.skipped_checks["CKV_K8S_9"] == [
        "readiness is probed by the mesh sidecar, not by the kubelet"
    ]


def test_by_design_waiver_applies_to_flex_apps_only(result: ScanResult) -> None:
    flex = _verdicts(result, "app")["CKV_AZURE_212"]
    assert flex.outcome is Outcome.WAIVED and "Flex Consumption" in flex.waiver_reason
    assert _verdicts(result, "classic-app")["CKV_AZURE_212"].outcome is Outcome.FAILED


def test_cross_resource_checks_see_terraform_references(result: ScanResult) -> None:
    """CKV2_AWS_6 passes only if checkov links the bucket to its public access block."""
    assert _verdicts(result, "documents")["CKV2_AWS_6"].outcome is Outcome.PASSED


def test_kubernetes_and_dockerfile_checks_run(result: ScanResult, fixture_dockerfile: Path) -> None:
    assert (
        _verdicts(result, "agent")["CKV_K8S_20"].outcome is Outcome.PASSED
    )  # allowPrivilegeEscalation: false
    docker = _verdicts(result, str(fixture_dockerfile))
    assert docker["CKV_DOCKER_7"].outcome is Outcome.FAILED  # FROM ...:latest
    assert docker["CKV_DOCKER_3"].outcome is Outcome.FAILED  # no USER


def test_runtime_dockerfile_has_no_unwaived_failures(result: ScanResult) -> None:
    blocking = [
        f"{f.check_id} {f.title}" for f in result.blocking if f.resource_name == str(RUNTIME_DOCKERFILE)
    ]
    assert blocking == []
