"""The agent image's registry: one private ECR repository that only the cluster's nodes pull from.

- Tags are immutable: a tag, once pushed, names one image for good, so what was tested is what runs.
  Deployments still name images by digest (:meth:`AgentRegistry.image`), which cannot move at all.
- Basic scanning on push. Enhanced scanning (Amazon Inspector) is a registry-wide setting of the account
  (``ecr.RegistryScanningConfiguration``), billed per image scanned and rescanned: a platform team's
  decision for every repository of the account, not one stack's. Basic scanning is free and is what the
  AWS Config rule ``ECR_PRIVATE_IMAGE_SCANNING_ENABLED`` asks of the repository.
- Images are sealed with the stack's KMS key. ECR creates its own grant on the key when the repository
  is created (the deployer needs ``kms:CreateGrant``, ``kms:RetireGrant`` and ``kms:DescribeKey``, which
  the key policy's account statement lets IAM grant); pullers and pushers need no key permissions.
- A lifecycle policy expires untagged images after ``untagged_expiry_days`` and keeps the newest
  ``keep_tagged`` tagged images. ECR counts the per-platform manifests of a multi-platform image index as
  untagged images of their own: push single-platform images here, or an index's children expire under it.
  Keep ``keep_tagged`` above the number of releases a rollback may reach back to: an expired digest
  fails every pod rescheduled onto it.
- The repository policy allows the node role to pull and denies pulling to every other principal of
  the account, administrators included (an identity policy with ``ecr:*`` cannot override a deny).
  CI pushes through :meth:`AgentRegistry.grant_push` and cannot pull back: the image pipeline builds,
  tests and scans before it pushes. The node role also needs ``ecr:GetAuthorizationToken`` in its own
  policy (EKS's ``AmazonEC2ContainerRegistryPullOnly`` gives it): a repository policy cannot grant it.

:class:`ImageCache` is how nodes without internet run third-party images (the Cluster Autoscaler's from
``registry.k8s.io``, KEDA's from ``ghcr.io``, the CloudWatch agent's from ``public.ecr.aws``): an ECR
pull-through cache rule per upstream registry. The first pull of ``<account>.dkr.ecr.<region>.amazonaws.com/
<prefix>/<upstream path>:<tag>`` makes ECR fetch the image from the upstream (from AWS's network, not the
VPC's) into a repository it creates under the prefix; later pulls are served from ECR. One exception, which
AWS documents: when ECR is reached through interface endpoints, the *first* pull of an image and tag
through a cache rule needs a route to the internet from the VPC. A VPC without egress seeds the cache
once per image and tag, from a network with a route (CI, an administrator's machine): ``docker pull`` of
each reference in :attr:`ImageCache.seeds` - the images the add-ons pinned with :meth:`ImageCache.pin` -
before the releases that run them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import pulumi
from pulumi_aws import ecr, iam

from components.aws.context import PARTITION, AwsContext
from components.aws.iam import Statement
from components.aws.role import ExecutionRole
from components.base import Component

PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
"""What pulling an image takes on the repository (the node role's allow in the repository policy)."""

READ_IMAGE_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
"""What the repository policy denies to everyone but the node role: reading manifests and layers.
``ecr:BatchCheckLayerAvailability`` stays open because pushing needs it too, and it reveals no content."""

PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)
"""What ``docker push`` takes on the repository, as the ECR User Guide lists it."""

AUTHORIZATION_TOKEN = "ecr:GetAuthorizationToken"
"""The registry login: an account-level action without resource-level scope, so it names ``*``."""

CACHE_IMPORT_ACTIONS = ("ecr:BatchImportUpstreamImage", "ecr:CreateRepository")
"""What the puller needs on a cache's repositories beyond pulling: importing an image the cache does not
hold yet, into a repository ECR creates at the first pull (the ECR User Guide's pull-through cache IAM)."""


@dataclass(frozen=True)
class Upstream:
    """A registry ECR can cache: ``label`` ends the cache's repository prefix; ``credentials`` says whether
    ECR must log in to it (with a Secrets Manager secret named ``ecr-pullthroughcache/...``)."""

    label: str
    credentials: bool


UPSTREAMS: Mapping[str, Upstream] = MappingProxyType(
    {
        "registry.k8s.io": Upstream("k8s", credentials=False),
        "public.ecr.aws": Upstream("ecr-public", credentials=False),
        "ghcr.io": Upstream("ghcr", credentials=True),
    }
)
"""The upstream registries the stage's add-ons come from, as ECR names them (``upstreamRegistryUrl``)."""

CREDENTIAL_SECRET_PREFIX = "ecr-pullthroughcache/"
"""ECR reads an upstream's credentials only from a secret whose name starts with this."""

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REPOSITORY_NAME = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
_SECRET_ARN = re.compile(
    rf"arn:{PARTITION}:secretsmanager:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}}):"
    r"secret:(?P<name>.+)-[A-Za-z0-9]{6}"
)
_PREFIX_LENGTH = range(2, 31)
"""ECR's limit on a pull-through cache rule's repository prefix."""


@dataclass(frozen=True)
class RegistryArgs:
    """The repository ``<prefix>-<env>-<repository>`` and who pulls from it.

    ``node_role_arn``: the role the cluster's nodes run as (the kubelet pulls with it), the only
    principal that may pull. ``keep_tagged`` (default 30): how many tagged images the lifecycle policy
    keeps. ``untagged_expiry_days`` (default 7): how long an untagged image is kept after its push.
    """

    node_role_arn: pulumi.Input[str]
    repository: str = "agents"
    keep_tagged: int = 30
    untagged_expiry_days: int = 7

    def __post_init__(self) -> None:
        if not _REPOSITORY_NAME.fullmatch(self.repository):
            raise ValueError(
                f"repository: '{self.repository}' is not an ECR repository name: use lowercase letters, "
                "digits and single '.', '_', '-' or '/' between them"
            )
        if not 1 <= self.keep_tagged <= 1000:
            raise ValueError(f"keep_tagged: {self.keep_tagged} is outside 1-1000 images")
        if not 1 <= self.untagged_expiry_days <= 365:
            raise ValueError(f"untagged_expiry_days: {self.untagged_expiry_days} is outside 1-365 days")


class AgentRegistry(Component):
    """``agentstage:aws:Registry``: the ECR repository, its lifecycle policy and its repository policy.

    Outputs: ``repository_url`` (``<account>.dkr.ecr.<region>.amazonaws.com/<name>``), ``repository_arn``.
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        args: RegistryArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "Registry", name, opts)
        self._name = name
        physical = context.name(args.repository)
        if not _REPOSITORY_NAME.fullmatch(physical) or len(physical) > 256:
            raise ValueError(
                f"repository: '{physical}' (prefix, environment and repository) is not an ECR repository "
                "name: keep it lowercase and at most 256 characters"
            )
        self.repository = ecr.Repository(
            f"{name}-repository",
            name=physical,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[
                ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=context.key)
            ],
            force_delete=False,
            tags=context.tags,
            opts=self.child(),
        )
        ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=lifecycle_policy(args.keep_tagged, args.untagged_expiry_days),
            opts=self.child(),
        )
        ecr.RepositoryPolicy(
            f"{name}-policy",
            repository=self.repository.name,
            policy=pulumi.Output.from_input(args.node_role_arn).apply(pull_policy),
            opts=self.child(),
        )
        self.repository_url: pulumi.Output[str] = self.repository.repository_url
        self.repository_arn: pulumi.Output[str] = self.repository.arn
        self.register_outputs({"repository_url": self.repository_url, "repository_arn": self.repository_arn})

    def image(self, digest: pulumi.Input[str]) -> pulumi.Output[str]:
        """The image reference ``<repository_url>@sha256:<64 hex>`` that deployments name; see
        :func:`image_reference`."""
        return image_reference(self.repository_url, digest)

    def grant_push(self, role: ExecutionRole) -> None:
        """Let ``role`` (CI's) log in to the registry and push images to this repository, nothing else."""
        role.allow(
            f"{self._name}-push",
            Statement("PushToRepository", PUSH_ACTIONS, (self.repository_arn,)),
            Statement("RegistryLogin", (AUTHORIZATION_TOKEN,), ("*",)),
        )


def image_reference(repository_url: pulumi.Input[str], digest: pulumi.Input[str]) -> pulumi.Output[str]:
    """``<repository_url>@<digest>``; ``digest`` must be ``sha256:`` and 64 lowercase hex digits.

    A tag is refused: even immutable, a tag is resolved by the node at pull time, and a digest is
    what the image pipeline verified. A digest known now is checked now, one from another resource
    once it is known."""
    if isinstance(digest, str):
        _check_digest(digest)
    return pulumi.Output.all(repository_url, digest).apply(
        lambda known: f"{known[0]}@{_check_digest(known[1])}"
    )


def _check_digest(digest: str) -> str:
    if not DIGEST.fullmatch(digest):
        raise ValueError(
            f"digest: '{digest}' is not an image digest: pass 'sha256:<64 hex>' as the push printed it "
            "(docker buildx --metadata-file, or `aws ecr describe-images --query imageDetails[].imageDigest`); "
            "tags are not accepted"
        )
    return digest


def lifecycle_policy(keep_tagged: int, untagged_expiry_days: int) -> str:
    """Expire untagged images ``untagged_expiry_days`` after their push; keep the newest ``keep_tagged``
    tagged images (``tagPatternList: ["*"]`` matches every tag)."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"Expire untagged images after {untagged_expiry_days} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": untagged_expiry_days,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"Keep the newest {keep_tagged} tagged images",
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPatternList": ["*"],
                        "countType": "imageCountMoreThan",
                        "countNumber": keep_tagged,
                    },
                    "action": {"type": "expire"},
                },
            ]
        },
        sort_keys=True,
    )


def pull_policy(node_role_arn: str) -> str:
    """Allow the node role to pull; deny reading images to every other principal."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "NodesPull",
                    "Effect": "Allow",
                    "Principal": {"AWS": node_role_arn},
                    "Action": sorted(PULL_ACTIONS),
                },
                {
                    "Sid": "OnlyNodesPull",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": sorted(READ_IMAGE_ACTIONS),
                    "Condition": {"ArnNotEquals": {"aws:PrincipalArn": node_role_arn}},
                },
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class ImageCacheArgs:
    """Which upstream registries to cache (keys of :data:`UPSTREAMS`) and, for those that need a login,
    ``credential_arns``: upstream -> the ARN of a Secrets Manager secret of this account and region named
    ``ecr-pullthroughcache/<anything>`` holding ``{"username": ..., "accessToken": ...}`` (for ghcr.io, a
    GitHub user and a classic token with ``read:packages`` only). ``keep_images`` and
    ``untagged_expiry_days`` are the lifecycle of each repository the cache creates.
    """

    upstreams: Sequence[str] = tuple(UPSTREAMS)
    credential_arns: Mapping[str, str] = field(default_factory=dict)
    keep_images: int = 10
    untagged_expiry_days: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.upstreams, str) or not self.upstreams:
            raise ValueError(f"upstreams: a non-empty list such as {list(UPSTREAMS)}, not {self.upstreams!r}")
        unknown = sorted(set(self.upstreams) - set(UPSTREAMS))
        if unknown:
            raise ValueError(f"upstreams: {unknown} are not cached here; choose from {list(UPSTREAMS)}")
        stray = sorted(set(self.credential_arns) - set(self.upstreams))
        if stray:
            raise ValueError(f"credential_arns: {stray} are not in upstreams {list(self.upstreams)}")
        for upstream in self.upstreams:
            arn = self.credential_arns.get(upstream)
            if UPSTREAMS[upstream].credentials and arn is None:
                raise ValueError(
                    f"credential_arns: {upstream} needs a login; give the ARN of a Secrets Manager secret named "
                    f"'{CREDENTIAL_SECRET_PREFIX}<name>' with its username and access token"
                )
            if not UPSTREAMS[upstream].credentials and arn is not None:
                raise ValueError(f"credential_arns: {upstream} is public; ECR pulls it without a login")
            if arn is not None:
                _check_credential_arn(upstream, arn)
        if not 1 <= self.keep_images <= 1000:
            raise ValueError(f"keep_images: {self.keep_images} is outside 1-1000 images")
        if not 1 <= self.untagged_expiry_days <= 365:
            raise ValueError(f"untagged_expiry_days: {self.untagged_expiry_days} is outside 1-365 days")


def _check_credential_arn(upstream: str, arn: str) -> None:
    match = _SECRET_ARN.fullmatch(arn)
    if match is None:
        raise ValueError(
            f"credential_arns: '{arn}' for {upstream} is not a Secrets Manager secret ARN "
            "(arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>)"
        )
    if not match["name"].startswith(CREDENTIAL_SECRET_PREFIX) or match["name"] == CREDENTIAL_SECRET_PREFIX:
        raise ValueError(
            f"credential_arns: the secret '{match['name']}' for {upstream} must be named "
            f"'{CREDENTIAL_SECRET_PREFIX}<name>': ECR reads upstream credentials from no other secret"
        )


class ImageCache(Component):
    """``agentstage:aws:ImageCache``: a pull-through cache rule per upstream registry and a repository
    creation template for the repositories each rule creates.

    Registry-wide settings, prefixed per stack: the repositories of upstream ``u`` are
    ``<prefix>-<env>-<label>/...``, so two stacks in one account keep their caches apart (ECR allows ten
    rules per registry). The template makes every cached repository tag-immutable - a cached tag is never
    replaced by a later upstream push, so what was reviewed is what nodes run - and gives it a lifecycle. It
    keeps ECR's default AES-256 encryption: these are public images, and a KMS key in a template needs a
    custom role for ECR to assume, which would hold key grants for no confidentiality gained.

    :meth:`grant_pull_through` lets the node role import through the cache; :meth:`repository` names the
    cached copy of an upstream repository, :attr:`registry` the host the images are pulled from.
    Outputs: ``registry``.
    """

    def __init__(
        self, name: str, context: AwsContext, args: ImageCacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "ImageCache", name, opts)
        self._name = name
        self._context = context
        self.prefixes: dict[str, str] = {}
        self.rules: list[ecr.PullThroughCacheRule] = []
        self._grants: dict[int, iam.RolePolicy] = {}
        self.seeds: list[pulumi.Output[str]] = []
        for upstream in args.upstreams:
            prefix = context.name(UPSTREAMS[upstream].label)
            if len(prefix) not in _PREFIX_LENGTH or not _REPOSITORY_NAME.fullmatch(prefix):
                raise ValueError(
                    f"upstreams: the cache prefix '{prefix}' for {upstream} must be 2-30 lowercase characters; "
                    "shorten the stack's name prefix or environment"
                )
            self.prefixes[upstream] = prefix
            label = UPSTREAMS[upstream].label
            template = ecr.RepositoryCreationTemplate(
                f"{name}-{label}-template",
                prefix=prefix,
                applied_fors=["PULL_THROUGH_CACHE"],
                description=f"Repositories the {upstream} pull-through cache creates",
                image_tag_mutability="IMMUTABLE",
                encryption_configurations=[{"encryption_type": "AES256"}],
                lifecycle_policy=lifecycle_policy(args.keep_images, args.untagged_expiry_days),
                opts=self.child(),
            )
            self.rules.append(
                ecr.PullThroughCacheRule(
                    f"{name}-{label}",
                    ecr_repository_prefix=prefix,
                    upstream_registry_url=upstream,
                    credential_arn=args.credential_arns.get(upstream),
                    opts=self.child(depends_on=[template]),  # repositories are created with its settings
                )
            )
        self.registry: pulumi.Output[str] = pulumi.Output.concat(
            context.account_id, f".dkr.ecr.{context.region}.amazonaws.com"
        )
        self.register_outputs({"registry": self.registry})

    def repository(self, upstream: str, path: str) -> pulumi.Output[str]:
        """The cached copy of ``<upstream>/<path>``: ``<registry>/<prefix>/<path>`` (no tag)."""
        return pulumi.Output.concat(self.registry, "/", self.prefix(upstream), "/", path)

    def pin(self, upstream: str, path: str, tag: str) -> pulumi.Output[str]:
        """The cached ``<upstream>/<path>:<tag>`` (``<registry>/<prefix>/<path>:<tag>``), recorded in
        :attr:`seeds`: the image runs on the nodes, so it is pulled through the cache once before."""
        reference = pulumi.Output.concat(self.repository(upstream, path), f":{tag}")
        self.seeds.append(reference)
        return reference

    def prefix(self, upstream: str) -> str:
        """The repository prefix ``upstream`` is cached under."""
        if upstream not in self.prefixes:
            raise ValueError(
                f"upstream: {upstream} is not cached by {self._name}; add it to ImageCacheArgs.upstreams"
            )
        return self.prefixes[upstream]

    def grant_pull_through(self, role: ExecutionRole) -> iam.RolePolicy:
        """Let ``role`` (the node role: the kubelet pulls) import images through these rules and create their
        repositories - under the cache's prefixes only. Pulling itself and the registry login come from
        ``AmazonEC2ContainerRegistryPullOnly``, which the node role carries. Granting the same role again
        returns the one grant (every add-on on the nodes asks for it)."""
        if id(role) in self._grants:
            return self._grants[id(role)]
        context = self._context
        repositories = tuple(
            pulumi.Output.concat(
                f"arn:{PARTITION}:ecr:{context.region}:", context.account_id, f":repository/{prefix}/*"
            )
            for prefix in self.prefixes.values()
        )
        grant = role.allow(
            f"{self._name}-import", Statement("ImportThroughCache", CACHE_IMPORT_ACTIONS, repositories)
        )
        self._grants[id(role)] = grant
        return grant
