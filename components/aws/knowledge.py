"""The knowledge source on AWS: the documents bucket, and the events that announce each change to it.

**Documents** are objects in a bucket of their own. Each names the callers who may read it in its
``readers`` tag (``@all`` for everyone; a document without readers is skipped by the ingestion worker,
never indexed readable by everyone). Uploads come from people and pipelines outside the stack, granted
``s3:PutObject``/``s3:PutObjectTagging`` by whoever runs the estate. The bucket is private (every public
access block on, ACLs disabled), refuses requests without TLS, seals objects with the stack's key
(bucket keys on: one KMS call per object batch, not per request), and keeps versions so an overwritten or
deleted document is recoverable; old versions expire after ``noncurrent_days``.

**Events.** S3 announces ``ObjectCreated:*`` and ``ObjectRemoved:*`` on the ``knowledge-ingest`` queue
(a :class:`~components.aws.queues.TaskQueues` queue whose policy admits this bucket of this account as
its only sender), which the ingestion worker consumes through a Lambda event source mapping. Every event
is a hint: the worker reads the object's current state, so redelivery and reordering change nothing.

**Perimeter** (optional, the VPC's S3 gateway endpoint, :mod:`components.aws.data_perimeter`): the bucket
policy also denies reading documents (``s3:GetObject``, ``s3:GetObjectVersion``) outside the VPC - their
only reader is the ingestion worker, inside it. Uploads, tagging, listing and reading tags stay open:
people and pipelines do them from outside (``aws s3 sync`` lists the bucket, an uploader checks the
``readers`` tag it set), and S3's event notifications are sent by S3 itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_aws import s3

from components.aws.context import AwsContext
from components.aws.data_perimeter import VpcPerimeter
from components.aws.iam import Statement
from components.aws.queues import TaskQueues
from components.aws.role import ExecutionRole
from components.base import Component

S3_EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
READ_ACTIONS = ("s3:GetObject", "s3:GetObjectTagging")
"""What the runtime's S3 source calls per document (tags carry the readers)."""
FENCED_READS = ("s3:GetObject", "s3:GetObjectVersion")
"""The documents' content: what a perimeter denies outside the VPC."""


@dataclass(frozen=True)
class KnowledgeSourceArgs:
    queues: TaskQueues
    queue: str
    """The logical name of the ingest queue in ``queues`` (its policy admits :attr:`bucket_arn`)."""
    noncurrent_days: int = 90
    force_destroy: bool = False
    perimeter: VpcPerimeter | None = None
    """The VPC's S3 endpoint, outside which documents cannot be read (see the module docstring)."""

    def __post_init__(self) -> None:
        if self.perimeter is not None and self.perimeter.service != "s3":
            raise ValueError(
                f"perimeter: the documents are read through the s3 endpoint, not {self.perimeter.service}; "
                "use network.perimeter('s3')"
            )


def documents_bucket_name(context: AwsContext) -> pulumi.Output[str]:
    """Bucket names are global: the account id makes the stack's unique, and it is known before the bucket
    exists (the ingest queue's policy names the bucket it admits)."""
    return pulumi.Output.concat(context.name("documents"), "-", context.account_id)


def bucket_arn(bucket: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.concat("arn:aws:s3:::", bucket)


class KnowledgeSource(Component):
    """``agentstage:aws:KnowledgeSource``: the documents bucket, its policies and its event notification.

    Outputs: ``bucket``, ``bucket_arn``, ``source_url`` (the runtime's ``knowledge_source``).
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        bucket_name: pulumi.Input[str],
        args: KnowledgeSourceArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "KnowledgeSource", name, opts)
        bucket = s3.Bucket(
            f"{name}-bucket",
            bucket=bucket_name,
            force_destroy=args.force_destroy,
            tags=context.tags,
            opts=self.child(),
        )
        s3.BucketPublicAccessBlock(
            f"{name}-private",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self.child(),
        )
        s3.BucketOwnershipControls(
            f"{name}-owner",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=self.child(),
        )
        s3.BucketVersioning(
            f"{name}-versions",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=self.child(),
        )
        s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sealed",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": context.key,
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=self.child(),
        )
        s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire-old-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_days},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=self.child(),
        )
        fence = (
            args.perimeter.statement(
                FENCED_READS, (pulumi.Output.concat(bucket.arn, "/*"),), context.account_id
            )
            if args.perimeter
            else None
        )
        s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, fence).apply(
                lambda known: _bucket_policy(known[0], known[1])
            ),
            opts=self.child(),
        )
        s3.BucketNotification(
            f"{name}-events",
            bucket=bucket.id,
            queues=[{"queue_arn": args.queues.queue_arns[args.queue], "events": list(S3_EVENTS)}],
            # S3 checks on creation that it may send: the queue's policy must exist first.
            opts=self.child(depends_on=[args.queues]),
        )
        self.bucket: pulumi.Output[str] = bucket.bucket
        self.bucket_arn: pulumi.Output[str] = bucket.arn
        self.source_url: pulumi.Output[str] = pulumi.Output.concat("s3://", bucket.bucket)
        self.register_outputs(
            {"bucket": self.bucket, "bucket_arn": self.bucket_arn, "source_url": self.source_url}
        )

    def grant_read(self, role: ExecutionRole) -> None:
        """Read documents and their tags, and list the bucket (a full resync compares what is there)."""
        role.allow(
            "documents-read",
            Statement("ReadDocuments", READ_ACTIONS, (pulumi.Output.concat(self.bucket_arn, "/*"),)),
            Statement("ListDocuments", ("s3:ListBucket",), (self.bucket_arn,)),
        )


def _bucket_policy(bucket_arn: str, fence: dict[str, Any] | None) -> str:
    """Deny requests without TLS, and with ``fence`` (a perimeter statement) what it names outside the VPC."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    if fence:
        statements.append(fence)
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)
