"""KEDA on EKS as planned: an operator role that can only assume the per-queue scaler roles, each scaler role
trusted by the operator alone and reading one queue's depth, the TriggerAuthentication that
``components.kubernetes.scaling.sqs_queue`` writes for it, and the Helm release pulling through the cache."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from eks_stage import (
    ACCOUNT,
    ASSOCIATION,
    REGION,
    REGISTRY,
    RELEASE,
    Stage,
    build,
    only,
    pod_trust,
    policies,
    trust,
)

from components.aws.keda import Keda
from components.kubernetes.scaling import QueueScaling, keda_scaling, sqs_queue
from core.graph import ResourceGraph
from policies.rules.aws import RULES

QUEUES = {
    "worker": f"arn:aws:sqs:{REGION}:{ACCOUNT}:ags-dev-tasks-worker",
    "planner": f"arn:aws:sqs:{REGION}:{ACCOUNT}:ags-dev-tasks-planner",
}
OPERATOR = f"arn:aws:iam::{ACCOUNT}:role/ags-dev-keda-operator"


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    """KEDA, a scaler role per queue, and the worker's KEDA objects as the enterprise stage writes them."""

    def factory(stage: Stage) -> dict[str, Any]:
        keda = Keda("keda", stage.context, stage.cluster, stage.cache)
        roles = {queue: keda.scaler_role(f"scaler-{queue}", arn) for queue, arn in QUEUES.items()}
        trigger = sqs_queue(
            queue_url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/ags-dev-tasks-worker",
            queue="ags-dev-tasks-worker",
            region=REGION,
            role_arn=roles["worker"].arn,
        )
        keda_scaling(
            "worker",
            namespace="agents",
            deployment_name="worker",
            scaling=QueueScaling(trigger=trigger),
            opts=pulumi.ResourceOptions(provider=stage.cluster.provider, depends_on=[keda.release]),
        )
        return {"operator_role_arn": keda.operator_role_arn, "seeds": stage.cache.seeds}

    return build(factory)


def test_the_operator_service_account_gets_the_operator_role(graph: ResourceGraph) -> None:
    assert trust(graph, "keda-operator") == pod_trust("keda", "keda-operator")
    association = only(graph, ASSOCIATION)
    assert (association.get("namespace"), association.get("serviceAccount"), association.get("roleArn")) == (
        "keda",
        "keda-operator",
        OPERATOR,
    )
    assert only(graph, "agentstage:test:Outputs").inputs["operator_role_arn"] == OPERATOR


def test_the_operator_can_only_assume_the_scaler_roles(graph: ResourceGraph) -> None:
    assert policies(graph, "ags-dev-keda-operator") == {
        f"assume-scaler-{queue}": [
            {
                "Sid": "AssumeScalerRole",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Resource": f"arn:aws:iam::{ACCOUNT}:role/ags-dev-scaler-{queue}",
            }
        ]
        for queue in QUEUES
    }


@pytest.mark.parametrize("queue", sorted(QUEUES))
def test_a_scaler_role_is_the_operators_alone_and_reads_one_queue(graph: ResourceGraph, queue: str) -> None:
    assert trust(graph, f"scaler-{queue}") == [
        {
            "Sid": "KedaOperatorOnly",
            "Effect": "Allow",
            "Principal": {"AWS": OPERATOR},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ]
    assert policies(graph, f"ags-dev-scaler-{queue}") == {
        "read-queue-depth": [
            {
                "Sid": "ReadQueueDepth",
                "Effect": "Allow",
                "Action": ["sqs:GetQueueAttributes"],
                "Resource": QUEUES[queue],
            }
        ]
    }


def test_the_trigger_authenticates_as_its_queues_scaler_role(graph: ResourceGraph) -> None:
    auth = only(graph, "kubernetes:keda.sh/v1alpha1:TriggerAuthentication")
    assert auth.get("spec") == {
        "podIdentity": {"provider": "aws", "roleArn": f"arn:aws:iam::{ACCOUNT}:role/ags-dev-scaler-worker"}
    }
    scaled = only(graph, "kubernetes:keda.sh/v1alpha1:ScaledObject")
    (trigger,) = scaled.get("spec")["triggers"]
    assert trigger["type"] == "aws-sqs-queue" and trigger["authenticationRef"] == {"name": "worker"}
    assert trigger["metadata"]["queueURL"].endswith("/ags-dev-tasks-worker")


def test_the_release_is_pinned_and_every_image_comes_from_the_cache(graph: ResourceGraph) -> None:
    release = only(graph, RELEASE)
    assert {
        k: release.get(k) for k in ("chart", "version", "repositoryOpts", "namespace", "createNamespace")
    } == {
        "chart": "keda",
        "version": "2.18.0",
        "repositoryOpts": {"repo": "https://kedacore.github.io/charts"},
        "namespace": "keda",
        "createNamespace": True,
    }
    assert release.get("values") == {
        "image": {
            "keda": {"registry": REGISTRY, "repository": "ags-dev-ghcr/kedacore/keda", "tag": "2.18.0"},
            "metricsApiServer": {
                "registry": REGISTRY,
                "repository": "ags-dev-ghcr/kedacore/keda-metrics-apiserver",
                "tag": "2.18.0",
            },
            "webhooks": {
                "registry": REGISTRY,
                "repository": "ags-dev-ghcr/kedacore/keda-admission-webhooks",
                "tag": "2.18.0",
            },
            "pullPolicy": "IfNotPresent",
        },
        "podIdentity": {"aws": {"irsa": {"enabled": False}}},
    }
    assert only(graph, "agentstage:test:Outputs").inputs["seeds"] == [
        f"{REGISTRY}/ags-dev-ghcr/kedacore/{image}:2.18.0"
        for image in ("keda", "keda-metrics-apiserver", "keda-admission-webhooks")
    ]
    ghcr = only(graph, "aws:ecr/pullThroughCacheRule:PullThroughCacheRule", "images-ghcr")
    assert {ghcr.urn, only(graph, ASSOCIATION).urn} <= set(release.dependencies)


def test_keda_roles_pass_the_iam_rules(graph: ResourceGraph) -> None:
    rules = {rule.id: rule for rule in RULES}
    keda_roles = {"ags-dev-keda-operator", *(f"ags-dev-scaler-{q}" for q in QUEUES)}
    resources = [
        *(r for r in graph.of_type("aws:iam/role:Role") if r.get("name") in keda_roles),
        *(p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.get("role") in keda_roles),
    ]
    assert len(resources) == 7  # three roles, two assume grants, two queue-depth policies
    for resource in resources:
        for rule_id in ("AGS-AWS-011", "AGS-AWS-012", "AGS-AWS-013"):
            rule = rules[rule_id]
            if resource.type in rule.types:
                verdict = rule.check(resource, graph, None)  # type: ignore[arg-type]
                assert verdict.passed, (rule_id, resource.name, verdict)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Scaler_Worker", "name: 'Scaler_Worker' must be lowercase letters, digits and single dashes"),
        ("scaler-" + "x" * 60, "is over IAM's 64 characters"),
    ],
)
def test_bad_scaler_names_are_named(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(
            lambda s: Keda("keda", s.context, s.cluster, s.cache).scaler_role(name, QUEUES["worker"]) and None
        )


def test_a_queue_gets_one_scaler_role() -> None:
    def twice(stage: Stage) -> None:
        keda = Keda("keda", stage.context, stage.cluster, stage.cache)
        keda.scaler_role("scaler-worker", QUEUES["worker"])
        keda.scaler_role("scaler-worker", QUEUES["planner"])

    with pytest.raises(ValueError, match="keda already has the scaler role 'scaler-worker'"):
        build(twice)


def test_a_kubernetes_version_keda_is_not_tested_on_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"KEDA 2\.18\.0 is tested on Kubernetes \['1\.31', '1\.32', '1\.33'\], not 1\.30"
    ):
        build(lambda s: Keda("keda", s.context, s.cluster, s.cache) and None, kubernetes_version="1.30")
