"""The agent registry as planned: an immutable, scanned, KMS-sealed repository; its lifecycle; a policy that
lets the node role alone pull; CI's push grant; and image references that name digests, never tags. The
pull-through cache: a rule per upstream, immutable cached repositories, the node role's import grant."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pytest
from pulumi_aws import get_caller_identity_output

from components.aws.context import AwsContext
from components.aws.registry import AgentRegistry, ImageCache, ImageCacheArgs, RegistryArgs, image_reference
from components.aws.role import ExecutionRole
from core.engine import record
from core.graph import Resource, ResourceGraph

REGION = "eu-west-1"
ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000001"
TAGS = {"agentstage-environment": "dev"}
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ags-dev-nodes"
REPOSITORY_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/ags-dev-agents"
URL = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/ags-dev-agents"
DIGEST = "sha256:" + "0123456789abcdef" * 4
OUTPUTS = "agentstage:test:Outputs"

Factory = Callable[[AwsContext], Mapping[str, Any] | None]


def build(factory: Factory) -> ResourceGraph:
    """The graph of ``factory(context)``; what it returns is recorded as a test-only resource's inputs."""

    def program() -> None:
        account = get_caller_identity_output().account_id
        context = AwsContext("ags", "dev", REGION, account, TAGS, kms_key_arn=KEY)
        outputs = factory(context)
        if outputs:
            pulumi.CustomResource(OUTPUTS, "outputs", dict(outputs))

    return record(program, config={"aws:region": REGION})


def registry(context: AwsContext, **args: Any) -> AgentRegistry:
    nodes = ExecutionRole("nodes", context, service="ec2.amazonaws.com")
    return AgentRegistry("registry", context, RegistryArgs(node_role_arn=nodes.arn, **args))


def only(graph: ResourceGraph, type_: str) -> Resource:
    found = graph.of_type(type_)
    assert len(found) == 1, f"expected one {type_}, found {[r.name for r in found]}"
    return found[0]


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    """A registry, CI's role granted push, and the image reference of one digest."""

    def factory(context: AwsContext) -> dict[str, Any]:
        agents = registry(context)
        agents.grant_push(ExecutionRole("ci", context))
        return {"url": agents.repository_url, "image": agents.image(DIGEST)}

    return build(factory)


def test_the_repository_is_immutable_scanned_and_sealed_with_the_stack_key(graph: ResourceGraph) -> None:
    repository = only(graph, "aws:ecr/repository:Repository")
    assert {key: repository.get(key) for key in (
        "name", "imageTagMutability", "imageScanningConfiguration", "encryptionConfigurations", "forceDelete",
        "tags",
    )} == {
        "name": "ags-dev-agents", "imageTagMutability": "IMMUTABLE",
        "imageScanningConfiguration": {"scanOnPush": True},
        "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": KEY}],
        "forceDelete": False, "tags": TAGS,
    }  # fmt: skip
    assert repository.arn == REPOSITORY_ARN


def test_untagged_images_expire_and_the_newest_tagged_are_kept(graph: ResourceGraph) -> None:
    lifecycle = only(graph, "aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert lifecycle.get("repository") == "ags-dev-agents"
    rules = json.loads(lifecycle.get("policy"))["rules"]
    assert [(r["rulePriority"], r["selection"], r["action"]) for r in rules] == [
        (
            1,
            {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7},
            {"type": "expire"},
        ),
        (
            2,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["*"],
                "countType": "imageCountMoreThan",
                "countNumber": 30,
            },
            {"type": "expire"},
        ),
    ]


def test_the_lifecycle_follows_the_arguments() -> None:
    graph = build(lambda context: registry(context, keep_tagged=5, untagged_expiry_days=1) and None)
    rules = json.loads(only(graph, "aws:ecr/lifecyclePolicy:LifecyclePolicy").get("policy"))["rules"]
    assert [r["selection"]["countNumber"] for r in rules] == [1, 5]


def test_only_the_node_role_pulls(graph: ResourceGraph) -> None:
    policy = only(graph, "aws:ecr/repositoryPolicy:RepositoryPolicy")
    assert policy.get("repository") == "ags-dev-agents"
    assert json.loads(policy.get("policy"))["Statement"] == [
        {
            "Sid": "NodesPull",
            "Effect": "Allow",
            "Principal": {"AWS": NODE_ROLE},
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        },
        {
            "Sid": "OnlyNodesPull",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": NODE_ROLE}},
        },
    ]


def test_ci_pushes_to_this_repository_and_logs_in_nothing_more(graph: ResourceGraph) -> None:
    (grant,) = [p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.get("role") == "ags-dev-ci"]
    assert grant.get("name") == "registry-push"
    assert json.loads(grant.get("policy"))["Statement"] == [
        {
            "Sid": "PushToRepository",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:CompleteLayerUpload",
                "ecr:InitiateLayerUpload",
                "ecr:PutImage",
                "ecr:UploadLayerPart",
            ],
            "Resource": REPOSITORY_ARN,
        },
        {"Sid": "RegistryLogin", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
    ]
    node_grants = [
        p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.get("role") == "ags-dev-nodes"
    ]
    assert node_grants == [], "the node role pulls through the repository policy, not through a grant here"


def test_images_are_named_by_digest_in_this_repository(graph: ResourceGraph) -> None:
    outputs = only(graph, OUTPUTS).inputs
    assert outputs["url"] == URL
    assert outputs["image"] == f"{URL}@{DIGEST}"
    assert re.fullmatch(
        r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9-]+@sha256:[0-9a-f]{64}", outputs["image"]
    )


@pytest.mark.parametrize(
    "reference",
    ["latest", "v1.2.3", "agents:v1", "sha256:" + "0" * 63, "sha256:" + "A" * 64, "sha512:" + "0" * 64, ""],
)
def test_a_tag_or_malformed_digest_is_refused(reference: str) -> None:
    with pytest.raises(
        ValueError, match=rf"digest: '{re.escape(reference)}' is not an image digest.*tags are not"
    ):
        image_reference(URL, reference)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"repository": "Agents"}, "repository: 'Agents' is not an ECR repository name"),
        ({"repository": "agents/"}, "repository: 'agents/' is not an ECR repository name"),
        ({"keep_tagged": 0}, "keep_tagged: 0 is outside 1-1000"),
        ({"untagged_expiry_days": 0}, "untagged_expiry_days: 0 is outside 1-365"),
    ],
)
def test_bad_registry_arguments_are_named(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RegistryArgs(node_role_arn=NODE_ROLE, **args)


def test_the_registry_needs_the_stack_key() -> None:
    def factory(context: AwsContext) -> None:
        AgentRegistry(
            "registry", AwsContext("ags", "dev", REGION, ACCOUNT), RegistryArgs(node_role_arn=NODE_ROLE)
        )

    with pytest.raises(ValueError, match="the stack's KMS key is not set"):
        build(factory)


# --- the pull-through cache -----------------------------------------------------------------------------

GHCR_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ecr-pullthroughcache/ghcr-AbC123"
RULE = "aws:ecr/pullThroughCacheRule:PullThroughCacheRule"
TEMPLATE = "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate"


@pytest.fixture(scope="module")
def cache_graph() -> ResourceGraph:
    """The default cache; the node role granted the import twice (two add-ons ask for it)."""

    def factory(context: AwsContext) -> dict[str, Any]:
        cache = ImageCache("images", context, ImageCacheArgs(credential_arns={"ghcr.io": GHCR_SECRET}))
        nodes = ExecutionRole("nodes", context, service="ec2.amazonaws.com")
        first, second = cache.grant_pull_through(nodes), cache.grant_pull_through(nodes)
        assert first is second
        return {
            "registry": cache.registry,
            "autoscaler": cache.repository("registry.k8s.io", "autoscaling/cluster-autoscaler"),
        }

    return build(factory)


def test_each_upstream_is_cached_under_the_stacks_prefix(cache_graph: ResourceGraph) -> None:
    rules = {r.get("upstreamRegistryUrl"): r for r in cache_graph.of_type(RULE)}
    assert {url: (r.get("ecrRepositoryPrefix"), r.get("credentialArn")) for url, r in rules.items()} == {
        "registry.k8s.io": ("ags-dev-k8s", None),
        "public.ecr.aws": ("ags-dev-ecr-public", None),
        "ghcr.io": ("ags-dev-ghcr", GHCR_SECRET),
    }
    outputs = only(cache_graph, OUTPUTS).inputs
    assert outputs["registry"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    assert (
        outputs["autoscaler"]
        == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/ags-dev-k8s/autoscaling/cluster-autoscaler"
    )


def test_cached_repositories_are_created_immutable_with_a_lifecycle(cache_graph: ResourceGraph) -> None:
    templates = {t.get("prefix"): t for t in cache_graph.of_type(TEMPLATE)}
    assert sorted(templates) == ["ags-dev-ecr-public", "ags-dev-ghcr", "ags-dev-k8s"]
    for rule in cache_graph.of_type(RULE):
        template = templates[rule.get("ecrRepositoryPrefix")]
        assert {
            k: template.get(k) for k in ("appliedFors", "imageTagMutability", "encryptionConfigurations")
        } == {
            "appliedFors": ["PULL_THROUGH_CACHE"],
            "imageTagMutability": "IMMUTABLE",
            "encryptionConfigurations": [{"encryptionType": "AES256"}],
        }
        rules = json.loads(template.get("lifecyclePolicy"))["rules"]
        assert [r["selection"]["countNumber"] for r in rules] == [1, 10]
        assert template.urn in rule.dependencies, "repositories the rule creates must find their template"


def test_the_node_role_imports_through_the_cache_only(cache_graph: ResourceGraph) -> None:
    (grant,) = [
        p for p in cache_graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.get("role") == "ags-dev-nodes"
    ]
    assert grant.get("name") == "images-import"
    assert json.loads(grant.get("policy"))["Statement"] == [
        {
            "Sid": "ImportThroughCache",
            "Effect": "Allow",
            "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
            "Resource": [
                f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{prefix}/*"
                for prefix in ("ags-dev-ecr-public", "ags-dev-ghcr", "ags-dev-k8s")
            ],
        }
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"upstreams": "ghcr.io"}, "upstreams: a non-empty list"),
        ({"upstreams": ["docker.io"]}, r"upstreams: \['docker.io'\] are not cached here"),
        (
            {"upstreams": ["ghcr.io"]},
            "credential_arns: ghcr.io needs a login; give the ARN of a Secrets Manager",
        ),
        (
            {"upstreams": ["registry.k8s.io"], "credential_arns": {"registry.k8s.io": GHCR_SECRET}},
            "credential_arns: registry.k8s.io is public",
        ),
        (
            {"upstreams": ["registry.k8s.io"], "credential_arns": {"ghcr.io": GHCR_SECRET}},
            r"credential_arns: \['ghcr.io'\] are not in upstreams",
        ),
        (
            {"credential_arns": {"ghcr.io": "ecr-pullthroughcache/ghcr"}},
            "credential_arns: 'ecr-pullthroughcache/ghcr' for ghcr.io is not a Secrets Manager secret ARN",
        ),
        (
            {"credential_arns": {"ghcr.io": GHCR_SECRET.replace("ecr-pullthroughcache/", "tokens/")}},
            "the secret 'tokens/ghcr' for ghcr.io must be named 'ecr-pullthroughcache/<name>'",
        ),
        ({"credential_arns": {"ghcr.io": GHCR_SECRET}, "keep_images": 0}, "keep_images: 0 is outside 1-1000"),
    ],
)
def test_bad_cache_arguments_are_named(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageCacheArgs(**args)


def test_a_prefix_ecr_cannot_take_is_refused() -> None:
    def factory(context: AwsContext) -> None:
        long = AwsContext("agentstage-platform", "staging", REGION, ACCOUNT, kms_key_arn=KEY)
        ImageCache("images", long, ImageCacheArgs(upstreams=["public.ecr.aws"]))

    with pytest.raises(
        ValueError, match="the cache prefix 'agentstage-platform-staging-ecr-public' for public.ecr.aws"
    ):
        build(factory)


def test_an_upstream_not_cached_has_no_repository() -> None:
    def factory(context: AwsContext) -> None:
        ImageCache("images", context, ImageCacheArgs(upstreams=["registry.k8s.io"])).repository(
            "ghcr.io", "x"
        )

    with pytest.raises(
        ValueError, match="upstream: ghcr.io is not cached by images; add it to ImageCacheArgs"
    ):
        build(factory)
