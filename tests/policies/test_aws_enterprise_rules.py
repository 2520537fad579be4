"""The AWS enterprise rules beyond their two fixtures: on the stage's components as planned (all pass, and a
broken guarantee fails), where they apply and where not, and the references, defaults and exemptions each must
judge right."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_enterprise_stage import enterprise_graph
from crossguard_harness import run_pack
from rule_cases.aws import REGION, statement
from rule_cases.aws_enterprise import (
    CLUSTER_INPUTS,
    NODE_ROLE,
    NODES_PULL,
    ONLY_NODES_PULL,
    QUEUE_POLICY,
    REPOSITORY,
    REPOSITORY_INPUTS,
    SQS_ENDPOINT,
    SUBNET,
    caller,
    cluster,
    document,
    endpoint,
    fenced_queue,
    function_in,
    grant,
    nodes,
    perimeter,
    pod_identity,
    registry,
    role,
    service_trust,
    vpc,
)
from rule_cases.base import STACK, res

from core.graph import UNKNOWN, Resource, ResourceGraph
from policies import crossguard
from policies.findings import Finding, Outcome
from policies.rules import StackContext, Stage, all_rules, evaluate, load_context, rule_by_id
from policies.rules import aws_enterprise as enterprise

Graphs = Callable[[str], ResourceGraph]
ENTERPRISE = StackContext(Stage.ENTERPRISE, 30, (), "fixture")


def _judge(
    rule_id: str, target: str, resources: list[Resource], context: StackContext = ENTERPRISE
) -> Finding:
    graph = ResourceGraph(stack=STACK, project="agentstage", resources=resources)
    found = [f for f in evaluate(graph, context, [rule_by_id(rule_id)]) if f.resource_name == target]
    assert len(found) == 1, found
    return found[0]


def _passes(rule_id: str, target: str, resources: list[Resource]) -> str:
    finding = _judge(rule_id, target, resources)
    assert finding.outcome is Outcome.PASSED, finding.message
    return finding.message


def _message(rule_id: str, target: str, resources: list[Resource]) -> str:
    finding = _judge(rule_id, target, resources)
    assert finding.outcome is Outcome.FAILED, finding.message
    return finding.message


def _changed(resources: list[Resource], name: str, **inputs: Any) -> list[Resource]:
    """``resources`` with inputs of the one named ``name`` replaced (``None`` removes one)."""
    result = []
    for resource in resources:
        if resource.name == name:
            merged = {**resource.inputs, **inputs}
            resource = dataclasses.replace(
                resource, inputs={k: v for k, v in merged.items() if v is not None}
            )
        result.append(resource)
    return result


# --- the registry -------------------------------------------------------------------------------------


def test_the_enterprise_rules_follow_the_foundation_ones() -> None:
    ids = [r.id for r in all_rules()]
    new = [r.id for r in enterprise.RULES]
    assert new == [f"AGS-AWS-{n:03d}" for n in range(24, 36)]
    assert ids.index(new[0]) == ids.index("AGS-AWS-023") + 1
    stages = {r.id: r.from_stage for r in enterprise.RULES}
    assert {i for i, s in stages.items() if s is Stage.ENTERPRISE} == {
        "AGS-AWS-030",
        "AGS-AWS-031",
        "AGS-AWS-035",
    }
    assert stages["AGS-AWS-032"] is Stage.FOUNDATION


# --- the stage's components, as planned ----------------------------------------------------------------


@pytest.fixture(scope="module")
def stage() -> ResourceGraph:
    return enterprise_graph()


def test_every_enterprise_rule_passes_on_the_stages_components(stage: ResourceGraph) -> None:
    findings = evaluate(stage, ENTERPRISE, enterprise.RULES)
    failures = [
        f"{f.check_id} {f.resource_name}: {f.message}" for f in findings if f.outcome is not Outcome.PASSED
    ]
    assert failures == []
    judged = {f.check_id for f in findings}
    assert judged == {r.id for r in enterprise.RULES}, "every rule inspects a resource of the stage"
    inside = {f.resource_name: f.message for f in findings if f.check_id == "AGS-AWS-031"}
    assert "(sqs)" in inside["research-pods-role"] and "ec2" in inside["writer-role"]


def test_the_crossguard_pack_agrees_on_the_stage(stage: ResourceGraph) -> None:
    """The pack sees the stage as the engine sends it: URNs for references, floats, property dependencies."""
    violations = run_pack(crossguard.policies(lambda: ENTERPRISE), stage)
    mine = {r.policy_name for r in enterprise.RULES}
    assert {name: found for name, found in violations.items() if found and name in mine} == {}


def _with(graph: ResourceGraph, name: str, change: Callable[[dict[str, Any]], None]) -> ResourceGraph:
    resources = []
    for resource in graph.resources:
        if resource.name == name:
            inputs = json.loads(json.dumps(resource.inputs))
            change(inputs)
            resource = dataclasses.replace(resource, inputs=inputs)
        resources.append(resource)
    return dataclasses.replace(graph, resources=resources)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = inputs
        for key in parents:
            target = target.setdefault(key, {})
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value

    return change


def _trust_also(service: str) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        trust = json.loads(inputs["assumeRolePolicy"])
        trust["Statement"].append(
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        )
        inputs["assumeRolePolicy"] = json.dumps(trust)

    return change


def _without_deny(inputs: dict[str, Any]) -> None:
    policy = json.loads(inputs["policy"])
    policy["Statement"] = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    inputs["policy"] = json.dumps(policy)


MUTATIONS = [
    ("AGS-AWS-024", "agents-cluster", _set("vpcConfig.endpointPublicAccess", True)),
    ("AGS-AWS-025", "agents-cluster", _set("encryptionConfig.provider.keyArn", "alias/aws/eks")),
    ("AGS-AWS-026", "agents-cluster", _set("enabledClusterLogTypes", ["api", "audit"])),
    ("AGS-AWS-027", "agents-cluster", _set("accessConfig.bootstrapClusterCreatorAdminPermissions", True)),
    ("AGS-AWS-028", "agents-nodes", _set("launchTemplate", None)),
    ("AGS-AWS-029", "research-pods-role", _trust_also("lambda.amazonaws.com")),
    ("AGS-AWS-030", "writer-function", _set("vpcConfig", None)),
    ("AGS-AWS-031", "network-sqs", _set("serviceName", f"com.amazonaws.{REGION}.sns")),
    ("AGS-AWS-032", "network-kms", _set("privateDnsEnabled", False)),
    ("AGS-AWS-033", "registry-repository", _set("imageScanningConfiguration.scanOnPush", False)),
    ("AGS-AWS-034", "registry-policy", _without_deny),
    (
        "AGS-AWS-035",
        "settings-perimeter",
        _set("policy", json.dumps({"Version": "2012-10-17", "Statement": []})),
    ),
]


@pytest.mark.parametrize(("rule_id", "name", "change"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_a_broken_guarantee_of_the_stage_fails_its_rule(
    stage: ResourceGraph, rule_id: str, name: str, change: Callable[[dict[str, Any]], None]
) -> None:
    before = evaluate(stage, ENTERPRISE, [rule_by_id(rule_id)])
    after = evaluate(_with(stage, name, change), ENTERPRISE, [rule_by_id(rule_id)])
    assert all(f.outcome is Outcome.PASSED for f in before)
    assert [f for f in after if f.outcome is Outcome.FAILED], f"{rule_id} missed the change of {name}"


# --- where they apply ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["foundation-aws-staging", "pilot-aws-prod"])
def test_the_shipped_aws_stacks_pass_or_are_not_judged(stack: str, stack_graph: Graphs) -> None:
    findings = evaluate(stack_graph(stack), load_context(stack), enterprise.RULES)
    assert [f"{f.check_id} {f.resource_name}" for f in findings if f.outcome is not Outcome.PASSED] == []
    judged = {f.check_id for f in findings}
    assert judged == ({"AGS-AWS-032"} if stack.startswith("foundation") else set())


def test_the_foundations_vpc_is_not_the_enterprise_perimeter(stack_graph: Graphs) -> None:
    """Judged as an enterprise stack, the foundation fails by design: its API-facing functions, queues and tables
    live outside its VPC, which serves the database functions only."""
    findings = evaluate(stack_graph("foundation-aws-staging"), ENTERPRISE, enterprise.RULES)
    outside = {
        f.resource_name for f in findings if f.check_id == "AGS-AWS-030" and f.outcome is Outcome.FAILED
    }
    assert {"orchestrator-function", "analyst-function"} <= outside
    assert not {"ingest-function", "research-function", "authorizer-function"} & outside
    assert any(f.check_id == "AGS-AWS-035" and f.outcome is Outcome.FAILED for f in findings)


def test_an_enterprise_stack_without_any_vpc_resource_is_not_enterprise_like() -> None:
    function = function_in(placed=False)[-1]
    assert _passes("AGS-AWS-030", "writer-function", [function]) == enterprise.NO_VPC


# --- EKS ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vpc_config", "expected"),
    [
        ({"endpointPublicAccess": True, "publicAccessCidrs": ["84.17.32.0/24"]}, None),
        ({"endpointPublicAccess": None}, "unset (AWS's default: true) and publicAccessCidrs is unset"),
        ({"endpointPublicAccess": True, "publicAccessCidrs": ["10.0.0.0/8", "::/0"]}, "['::/0']"),
        ({"endpointPublicAccess": True, "publicAccessCidrs": [UNKNOWN]}, "or unreviewable"),
        ({"endpointPrivateAccess": False}, "endpointPrivateAccess is False"),
    ],
)
def test_the_api_endpoint(vpc_config: dict[str, Any], expected: str | None) -> None:
    finding = _judge("AGS-AWS-024", "agents-cluster", cluster({"vpcConfig": vpc_config}))
    if expected is None:
        assert finding.outcome is Outcome.PASSED and "84.17.32.0/24" in finding.message
    else:
        assert finding.outcome is Outcome.FAILED and expected in finding.message, finding.message


@pytest.mark.parametrize(
    ("encryption", "expected"),
    [
        ({"resources": ["configmaps"]}, "encryptionConfig.resources is ['configmaps']"),
        ({"provider": {"keyArn": f"arn:aws:kms:{REGION}:123456789012:alias/aws/eks"}}, "an AWS managed key"),
        ({"provider": {"keyArn": "my-key"}}, "not a KMS key of this stack or a customer-managed key ARN"),
    ],
)
def test_secrets_are_sealed_with_a_customer_key(encryption: dict[str, Any], expected: str) -> None:
    assert expected in _message("AGS-AWS-025", "agents-cluster", cluster({"encryptionConfig": encryption}))


def test_a_customer_key_of_another_stack_is_accepted_by_its_arn() -> None:
    other = f"arn:aws:kms:{REGION}:123456789012:key/7d0b2f4e-1c3a-4e5b-8f6a-9b0c1d2e3f4a"
    resources = [
        r
        for r in cluster({"encryptionConfig": {"provider": {"keyArn": other}}})
        if r.name != "encryption-key"
    ]
    assert "customer-managed key" in _passes("AGS-AWS-025", "agents-cluster", resources)


def test_the_control_plane_log_group_must_be_this_clusters_and_come_first() -> None:
    key, logs, eks = cluster()
    renamed = dataclasses.replace(logs, inputs={**logs.inputs, "name": "/aws/eks/another/cluster"})
    assert "no log group /aws/eks/ags-prod-agents/cluster" in _message(
        "AGS-AWS-026", "agents-cluster", [key, renamed, eks]
    )
    assert "lacks ['scheduler']" in _message(
        "AGS-AWS-026",
        "agents-cluster",
        cluster({"enabledClusterLogTypes": list(CLUSTER_INPUTS["enabledClusterLogTypes"][:4])}),
    )


def test_aws_defaults_for_cluster_access_are_named() -> None:
    message = _message("AGS-AWS-027", "agents-cluster", cluster({"accessConfig": None}))
    assert "(AWS's default: CONFIG_MAP)" in message and "(AWS's default: true)" in message


@pytest.mark.parametrize(
    ("metadata", "template", "expected"),
    [
        ({"httpTokens": "optional"}, True, "httpTokens is 'optional'"),
        ({"httpPutResponseHopLimit": None}, True, "httpPutResponseHopLimit is unset"),
        ({}, False, "launchTemplate is unset: EKS's own launch template leaves the metadata hop limit at 2"),
        ({"httpEndpoint": "disabled", "httpTokens": "optional"}, True, None),
    ],
)
def test_nodes_keep_pods_from_the_node_role(
    metadata: dict[str, Any], template: bool, expected: str | None
) -> None:
    finding = _judge("AGS-AWS-028", "agents-nodes", nodes(metadata, template=template))
    if expected is None:
        assert (
            finding.outcome is Outcome.PASSED and "turns the instance metadata service off" in finding.message
        )
    else:
        assert finding.outcome is Outcome.FAILED and expected in finding.message, finding.message


def test_a_launch_template_outside_the_stack_cannot_be_reviewed() -> None:
    launch, group = nodes()
    moved = _changed([group], "agents-nodes", launchTemplate={"id": "lt-0fedcba9876543210", "version": "3"})
    assert "is no launch template of this stack" in _message("AGS-AWS-028", "agents-nodes", [launch, *moved])


def test_a_pod_identity_binds_the_service_account_the_role_trusts() -> None:
    message = _message("AGS-AWS-029", "agents-agents-research", pod_identity(service_account="writer"))
    assert "trusts kubernetes-service-account 'research' only, the association binds 'writer'" in message


def test_a_pod_role_needs_its_account_or_cluster_in_the_trust() -> None:
    unscoped = {
        "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole"],
    }
    pods = role("ags-prod-research-pods", unscoped)
    assert "no single aws:SourceAccount or aws:SourceArn" in _message(
        "AGS-AWS-029", "ags-prod-research-pods-role", [pods]
    )


def test_a_pod_identity_needs_a_pod_role_of_the_stack() -> None:
    _pods, association = pod_identity()
    lambda_role = role("ags-prod-research-pods", service_trust("lambda.amazonaws.com"))
    assert "does not trust pods.eks.amazonaws.com" in _message(
        "AGS-AWS-029", association.name, [lambda_role, association]
    )
    assert "is no role of this stack" in _message("AGS-AWS-029", association.name, [association])


def test_roles_of_other_workloads_are_not_judged_as_pod_roles() -> None:
    graph = ResourceGraph(
        STACK, "agentstage", [role("ags-prod-writer", service_trust("lambda.amazonaws.com"))]
    )
    assert evaluate(graph, ENTERPRISE, [rule_by_id("AGS-AWS-029")]) == []


# --- the VPC ------------------------------------------------------------------------------------------


def test_a_function_in_another_subnet_than_the_stacks_fails() -> None:
    resources = _changed(
        function_in(),
        "writer-function",
        vpcConfig={"subnetIds": ["subnet-0dd"], "securityGroupIds": ["sg-1"]},
    )
    assert "['subnet-0dd'] are not subnets of the stack's VPC" in _message(
        "AGS-AWS-030", "writer-function", resources
    )


def test_only_a_token_authorizer_may_stay_outside_the_vpc() -> None:
    """It fetches its issuer's signing keys from the internet; any other function outside fails."""
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:ags-prod-writer"
    outside = [
        dataclasses.replace(r, arn=arn) if r.name == "writer-function" else r
        for r in function_in(placed=False)
    ]
    authorizer = res(
        "aws:apigateway/authorizer:Authorizer",
        "gateway-authorizer",
        {"authorizerUri": f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations"},
    )
    assert "a REST API's token authorizer" in _passes(
        "AGS-AWS-030", "writer-function", [*outside, authorizer]
    )
    assert "runs in Lambda's own network" in _message("AGS-AWS-030", "writer-function", outside)


def test_a_brought_vpc_has_no_subnets_in_the_stack_and_any_subnet_counts() -> None:
    resources = [r for r in function_in() if r.type != SUBNET and r.name != "network-vpc"]
    brought = _changed(
        resources, "writer-function", vpcConfig={"subnetIds": ["subnet-0dd"], "securityGroupIds": ["sg-1"]}
    )
    assert "runs in 1 private subnets" in _passes(
        "AGS-AWS-030", "writer-function", [*brought, endpoint("sqs")]
    )


@pytest.mark.parametrize(
    ("statement_", "expected"),
    [
        (statement(["dynamodb:GetItem"], "*"), "dynamodb (gateway)"),
        (statement(["bedrock:InvokeModel"], "*"), "bedrock-runtime (interface)"),
        (statement(["ecr:BatchGetImage"], "*"), "ecr.api (interface), ecr.dkr (interface), s3 (gateway)"),
        (statement(["foo:Bar"], "*"), "the service 'foo', whose VPC endpoint is not known"),
        (statement(["bedrock:Invoke*"], "*"), "name the actions instead of a wildcard"),
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, "uses NotAction"),
    ],
)
def test_each_service_a_role_in_the_vpc_may_call_needs_its_endpoint(
    statement_: dict[str, Any], expected: str
) -> None:
    resources = caller(endpoint("sqs"))
    writer = next(r for r in resources if r.name == "ags-prod-writer-role")
    assert expected in _message("AGS-AWS-031", writer.name, [*resources, grant(writer, "extra", statement_)])


def test_pods_and_nodes_are_inside_the_vpc_too() -> None:
    pods, association = pod_identity()
    granted = grant(pods, "receive", statement(["sqs:ReceiveMessage"], "*"))
    message = _message("AGS-AWS-031", pods.name, [*vpc(), pods, association, granted])
    assert "(pods of agents-agents-research)" in message and "sqs (interface)" in message
    assert "(sqs)" in _passes("AGS-AWS-031", pods.name, [*vpc(), endpoint("sqs"), pods, association, granted])


def test_a_role_assumed_from_inside_the_vpc_is_inside_too() -> None:
    """KEDA's operator (a pod) reads each queue's length with the queue's scaler role."""
    operator, association = pod_identity()
    trusted = {"Effect": "Allow", "Principal": {"AWS": operator.arn}, "Action": "sts:AssumeRole"}
    scaler = role("ags-prod-scaler-research", trusted)
    reads = grant(scaler, "queue-length", statement(["sqs:GetQueueAttributes"], "*"))
    resources = [*vpc(), operator, association, scaler, reads]
    message = _message("AGS-AWS-031", scaler.name, resources)
    assert "(whoever assumes it as role ags-prod-research-pods)" in message and "sqs (interface)" in message


def test_a_role_outside_the_vpc_needs_no_endpoint() -> None:
    resources = _changed(caller(), "writer-function", vpcConfig=None)
    assert (
        _passes("AGS-AWS-031", "ags-prod-writer-role", resources) == "the identity of nothing inside the VPC"
    )


def test_gateway_endpoints_have_no_private_dns_to_judge() -> None:
    graph = ResourceGraph(STACK, "agentstage", [endpoint("s3", "Gateway")])
    assert evaluate(graph, ENTERPRISE, [rule_by_id("AGS-AWS-032")]) == []


# --- the agent registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"imageTagMutability": None}, "imageTagMutability is unset (AWS's default: MUTABLE)"),
        ({"encryptionConfigurations": [{"encryptionType": "KMS"}]}, "kmsKey is unset"),
        ({"encryptionConfigurations": [{"encryptionType": "AES256"}]}, "encryptionType is 'AES256'"),
        ({"encryptionConfigurations": None}, "encryptionType is unset"),
    ],
)
def test_the_repository_is_immutable_scanned_and_sealed(change: dict[str, Any], expected: str) -> None:
    resources = _changed(
        [res(REPOSITORY, "registry-repository", REPOSITORY_INPUTS)], "registry-repository", **change
    )
    assert expected in _message("AGS-AWS-033", "registry-repository", resources)


def test_only_the_node_role_pulls() -> None:
    anyone = {**NODES_PULL, "Principal": "*"}
    assert "lets ['*'] pull" in _message(
        "AGS-AWS-034", "registry-repository", registry(anyone, ONLY_NODES_PULL)
    )
    other = {**NODES_PULL, "Principal": {"AWS": "arn:aws:iam::123456789012:role/ci"}}
    assert "lets ['arn:aws:iam::123456789012:role/ci'] pull" in _message(
        "AGS-AWS-034", "registry-repository", registry(other, ONLY_NODES_PULL)
    )
    broad_deny = {
        **ONLY_NODES_PULL,
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [NODE_ROLE, "arn:aws:iam::123456789012:role/ci"]}},
    }
    assert "no Deny of" in _message("AGS-AWS-034", "registry-repository", registry(NODES_PULL, broad_deny))


def test_no_workload_pushes() -> None:
    push = ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"]
    writer = role("ags-prod-writer", service_trust("lambda.amazonaws.com"))
    by_policy = {"Effect": "Allow", "Principal": {"AWS": writer.arn}, "Action": push}
    resources = [*registry(NODES_PULL, ONLY_NODES_PULL, by_policy), writer]
    assert f"lets ['{writer.arn}'] push" in _message("AGS-AWS-034", "registry-repository", resources)
    granted = grant(writer, "push", statement(push, "*"))
    message = _message(
        "AGS-AWS-034", "registry-repository", [*registry(NODES_PULL, ONLY_NODES_PULL), writer, granted]
    )
    assert "role ags-prod-writer (a workload) may push through role policy ags-prod-writer-push" in message


def test_a_stack_policy_attached_to_a_workload_role_is_read_as_its_own() -> None:
    """Besides its inline and role policies, a role holds the stack's policies attached to it; two roles
    with attachments each are told apart (each is judged on its own documents only)."""
    push = ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"]
    writer = role("ags-prod-writer", service_trust("lambda.amazonaws.com"))
    reader = role("ags-prod-reader", service_trust("lambda.amazonaws.com"))
    pushing = res(
        "aws:iam/policy:Policy",
        "pushing",
        {"policy": document(statement(push, "*"))},
        arn="arn:aws:iam::123456789012:policy/pushing",
    )
    reading = res(
        "aws:iam/policy:Policy",
        "reading",
        {"policy": document(statement(["ecr:BatchGetImage"], "*"))},
        arn="arn:aws:iam::123456789012:policy/reading",
    )
    attachments = [
        res(
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
            f"{who.get('name')}-{policy.name}",
            {"role": who.get("name"), "policyArn": policy.arn},
        )
        for who, policy in ((writer, pushing), (reader, reading))
    ]
    base = [*registry(NODES_PULL, ONLY_NODES_PULL), writer, reader, reading]
    _passes("AGS-AWS-034", "registry-repository", [*base, attachments[1]])
    message = _message("AGS-AWS-034", "registry-repository", [*base, pushing, *attachments])
    assert "role ags-prod-writer (a workload) may push through policy pushing" in message
    assert "ags-prod-reader" not in message


def test_a_repository_without_a_policy_fails() -> None:
    resources = [r for r in registry(NODES_PULL, ONLY_NODES_PULL) if r.name != "registry-policy"]
    assert "no repository policy" in _message("AGS-AWS-034", "registry-repository", resources)


# --- the data perimeter ---------------------------------------------------------------------------------


def test_the_perimeter_must_deny_and_name_the_services_endpoint() -> None:
    allow = {**perimeter(), "Effect": "Allow"}
    assert "no resource policy denies sqs requests" in _message(
        "AGS-AWS-035", "bus-tasks-research", fenced_queue(allow)
    )
    resources = [
        *fenced_queue(perimeter("vpce-0d0d0d0d0d0d0d0d0")),
        dataclasses.replace(endpoint("dynamodb", "Gateway"), mock_id="vpce-0d0d0d0d0d0d0d0d0"),
    ]
    assert "the stack's dynamodb endpoint, not a sqs one" in _message(
        "AGS-AWS-035", "bus-tasks-research", resources
    )
    assert "not a VPC endpoint id" in _message(
        "AGS-AWS-035", "bus-tasks-research", fenced_queue(perimeter("sqs"))
    )


def test_an_endpoint_the_stack_does_not_create_may_be_named() -> None:
    """A hub VPC's or a brought VPC's endpoint: its id is all the stack knows."""
    assert SQS_ENDPOINT in json.dumps(perimeter())
    assert "sqs requests from outside" in _passes(
        "AGS-AWS-035", "bus-tasks-research", fenced_queue(perimeter("vpce-0e0e0e0e0e0e0e0e0"))
    )


def test_an_inline_resource_policy_counts() -> None:
    resources = [r for r in fenced_queue() if r.type != QUEUE_POLICY]
    inline = _changed(resources, "bus-tasks-research", policy=document(perimeter()))
    assert "(policy)" in _passes("AGS-AWS-035", "bus-tasks-research", inline)


def test_the_perimeter_policy_of_another_queue_does_not_count() -> None:
    resources = fenced_queue(perimeter())
    other = _changed(
        resources,
        "bus-tasks-research-policy",
        queueUrl="https://sqs.eu-west-1.amazonaws.com/123456789012/other",
    )
    assert "no resource policy denies" in _message("AGS-AWS-035", "bus-tasks-research", other)
