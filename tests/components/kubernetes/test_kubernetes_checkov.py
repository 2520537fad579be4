"""checkov's Kubernetes framework on the manifests the agent blocks render: everything scanned, nothing failing."""

from __future__ import annotations

import pytest

from core.graph import ResourceGraph
from policies.checkov import ScanResult, scan
from policies.findings import Outcome

pytestmark = pytest.mark.slow  # one checkov run: a few seconds of imports

# 2 namespaces-level policies + namespace, per workload: service account, deployment (+ its pod template,
# which checkov counts as a Pod of its own), PDB, network policy; the API adds a Service, the worker
# KEDA's TriggerAuthentication and ScaledObject.
EXPECTED_SCANNED = 3 + (4 + 1 + 1) + (4 + 1 + 2)

# Checks the hardening must keep passing on both Deployments (each maps to a guarantee of the blocks).
KEY_CHECKS = {
    "CKV_K8S_8": "liveness probe",
    "CKV_K8S_9": "readiness probe",
    "CKV_K8S_11": "CPU limits",
    "CKV_K8S_13": "memory limits",
    "CKV_K8S_15": "image pull policy Always",
    "CKV_K8S_20": "no privilege escalation",
    "CKV_K8S_22": "read-only root filesystem",
    "CKV_K8S_23": "no root containers",
    "CKV_K8S_28": "NET_RAW dropped",
    "CKV_K8S_31": "seccomp RuntimeDefault",
    "CKV_K8S_37": "all capabilities dropped",
    "CKV_K8S_38": "service account token not mounted",
    "CKV_K8S_40": "high UID",
    "CKV_K8S_43": "image by digest",
    "CKV2_K8S_6": "selected by a NetworkPolicy",
}


@pytest.fixture(scope="module")
def result(agent_graph: ResourceGraph) -> ScanResult:
    return scan(agent_graph)


def test_every_manifest_is_scanned(result: ScanResult) -> None:
    assert result.exported == {"kubernetes": EXPECTED_SCANNED}
    assert result.scanned == {"kubernetes": EXPECTED_SCANNED}
    assert result.unmapped == []


def test_no_kubernetes_check_fails_and_none_is_waived(result: ScanResult) -> None:
    failing = [
        f"{f.check_id} {f.resource_name}: {f.title}"
        for f in result.findings
        if f.outcome is not Outcome.PASSED
    ]
    assert failing == []


@pytest.mark.parametrize("workload", ["research-api-deployment", "research-worker-deployment"])
def test_the_hardening_checks_ran_and_passed(result: ScanResult, workload: str) -> None:
    passed = {
        f.check_id for f in result.findings if f.resource_name == workload and f.outcome is Outcome.PASSED
    }
    missing = {check: what for check, what in KEY_CHECKS.items() if check not in passed}
    assert not missing, f"{workload}: not passed: {missing}"
