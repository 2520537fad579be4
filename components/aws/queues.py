"""SQS task queues: one per agent, each with its dead-letter queue, sealed with the stack's key.

- redrive: a message received ``max_receive_count`` times moves to the queue's dead-letter queue (kept
  14 days, the longest SQS allows), whose redrive-allow policy admits this source queue only;
- visibility timeout: six times the consuming function's timeout, as AWS advises for Lambda event source
  mappings, so a message is never redelivered while an invocation may still work on it;
- encryption: the stack's customer-managed key (data keys reused for five minutes);
- queue policy: TLS only, and only the identities the topology names may send (a deny on every other
  principal, so a broad grant elsewhere in the account cannot add senders);
- grants: :meth:`TaskQueues.grant_send` and :meth:`TaskQueues.grant_receive` write exactly what the
  runtime's SQS adapter calls (queue URLs resolved by name, dead letters sent by the adapter itself);
- perimeter (optional, ``TaskQueuesArgs.perimeter``): the queue policies also deny, outside the VPC's SQS
  endpoint (:mod:`components.aws.data_perimeter`), the actions whose every caller is inside the VPC:

  * ``sqs:SendMessage`` on every queue and dead-letter queue: the senders are the agents' functions and
    pods in the VPC, and the runtime dead-letters a message itself, from where it runs. S3 announcing a
    document sends as its service principal (exempt), and SQS's own redrive after ``max_receive_count`` is
    no request at all;
  * receiving (``ReceiveMessage``, ``DeleteMessage``, ``ChangeMessageVisibility``) only on queues whose
    consumers run in the VPC (``QueueSpec.consumed_in_vpc``: pods scaled by KEDA). A Lambda event source
    mapping polls with the function's role from the Lambda service, not from the function's VPC, so a
    queue a function consumes keeps receiving open (:meth:`TaskQueues.trigger` refuses a fenced one);
  * never ``GetQueueAttributes``/``GetQueueUrl`` (the deployer and ``pulumi refresh`` read them from
    outside), nor receiving from a dead-letter queue (operators inspect dead letters from the console).
    Redriving dead letters (``StartMessageMoveTask``) needs ``sqs:SendMessage`` on the source queue, which
    AWS does not document as exempt (``aws:ViaAWSService``): start a redrive from inside the VPC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_aws import iam, lambda_, sqs

from components.aws.context import AwsContext
from components.aws.data_perimeter import VpcPerimeter
from components.aws.iam import Statement
from components.aws.role import ExecutionRole
from components.aws.serverless_agent import LambdaAgent
from components.base import Component
from core.config.aws import DEAD_LETTER

DEAD_LETTER_RETENTION_SECONDS = 14 * 86_400
VISIBILITY_PER_TIMEOUT = 6
SEND_ACTIONS = ("sqs:SendMessage", "sqs:GetQueueUrl")
RECEIVE_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
)
DEAD_LETTER_ACTIONS = ("sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes")
"""The adapter dead-letters a message itself (a reason attached) by sending a copy to the queue's DLQ."""
FENCED_SENDS = ("sqs:SendMessage",)
FENCED_RECEIVES = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")
"""What a perimeter denies outside the VPC: sends always, receives where the consumers are in the VPC."""


@dataclass(frozen=True)
class QueueSpec:
    """A queue (logical name, e.g. ``tasks-research``), its consumer's timeout and who may send to it:
    the roles ``senders`` (ARNs), or the AWS service ``source`` (service principal, source ARN), such as
    S3 announcing a bucket's objects. The queue policy refuses every other sender.

    ``consumed_in_vpc``: its consumers receive from inside the VPC (pods scaled by KEDA), not through a
    Lambda event source mapping; with a perimeter, receiving is then fenced too."""

    name: str
    consumer_timeout_seconds: int
    senders: tuple[pulumi.Input[str], ...] = ()
    source: tuple[str, pulumi.Input[str]] | None = None
    consumed_in_vpc: bool = False

    def __post_init__(self) -> None:
        if bool(self.senders) == (self.source is not None):
            raise ValueError(f"queue {self.name}: name either sender roles or one source service")


@dataclass(frozen=True)
class TaskQueuesArgs:
    """The queues; ``perimeter``: the VPC's SQS endpoint, outside which the policies deny what the module
    docstring lists (none by default)."""

    queues: Sequence[QueueSpec]
    max_receive_count: int = 5
    perimeter: VpcPerimeter | None = None

    def __post_init__(self) -> None:
        if self.perimeter is not None and self.perimeter.service != "sqs":
            raise ValueError(
                f"perimeter: the queues are reached through the sqs endpoint, not {self.perimeter.service}; "
                "use network.perimeter('sqs')"
            )


class TaskQueues(Component):
    """``agentstage:aws:MessageBus``: the queues, their dead-letter queues and queue policies.

    Outputs: ``queue_names`` and ``queue_arns`` (by logical name), ``dead_letter_names``;
    ``max_receive_count`` is the redrive policy's, which a consumer must know to act on its last delivery.
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        args: TaskQueuesArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "MessageBus", name, opts)
        self._name = name
        self.queues: dict[str, sqs.Queue] = {}
        self.dead_letters: dict[str, sqs.Queue] = {}
        self._receive_grants: dict[str, iam.RolePolicy] = {}
        self._fenced_receives: set[str] = set()
        self.max_receive_count = args.max_receive_count
        for spec in args.queues:
            self._queue(spec, context, args.max_receive_count, args.perimeter)
        self.queue_names: Mapping[str, pulumi.Output[str]] = {n: q.name for n, q in self.queues.items()}
        self.queue_arns: Mapping[str, pulumi.Output[str]] = {n: q.arn for n, q in self.queues.items()}
        self.dead_letter_names: Mapping[str, pulumi.Output[str]] = {
            n: q.name for n, q in self.dead_letters.items()
        }
        self.register_outputs(
            {
                "queue_names": self.queue_names,
                "queue_arns": self.queue_arns,
                "dead_letters": self.dead_letter_names,
            }
        )

    def _queue(
        self, spec: QueueSpec, context: AwsContext, max_receive_count: int, perimeter: VpcPerimeter | None
    ) -> None:
        encryption = {"kms_master_key_id": context.key, "kms_data_key_reuse_period_seconds": 300}
        dead_letter = sqs.Queue(
            f"{self._name}-{spec.name}-{DEAD_LETTER}",
            name=context.name(spec.name, DEAD_LETTER),
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
            tags=context.tags,
            **encryption,
            opts=self.child(),
        )
        queue = sqs.Queue(
            f"{self._name}-{spec.name}",
            name=context.name(spec.name),
            visibility_timeout_seconds=VISIBILITY_PER_TIMEOUT * spec.consumer_timeout_seconds,
            receive_wait_time_seconds=20,
            redrive_policy=dead_letter.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count})
            ),
            tags=context.tags,
            **encryption,
            opts=self.child(),
        )
        sqs.RedriveAllowPolicy(
            f"{self._name}-{spec.name}-dlq-sources",
            queue_url=dead_letter.url,
            redrive_allow_policy=queue.arn.apply(
                lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})
            ),
            opts=self.child(),
        )
        fence = dead_letter_fence = None
        if perimeter is not None:
            fenced = FENCED_SENDS + (FENCED_RECEIVES if spec.consumed_in_vpc else ())
            fence = perimeter.statement(fenced, (queue.arn,), context.account_id)
            dead_letter_fence = perimeter.statement(FENCED_SENDS, (dead_letter.arn,), context.account_id)
            if spec.consumed_in_vpc:
                self._fenced_receives.add(spec.name)
        sqs.QueuePolicy(
            f"{self._name}-{spec.name}-policy",
            queue_url=queue.url,
            policy=queue_policy(queue.arn, context.account_id, spec.senders, spec.source, fence),
            opts=self.child(),
        )
        sqs.QueuePolicy(
            f"{self._name}-{spec.name}-dlq-policy",
            queue_url=dead_letter.url,
            policy=queue_policy(dead_letter.arn, context.account_id, fence=dead_letter_fence),
            opts=self.child(),
        )
        self.queues[spec.name] = queue
        self.dead_letters[spec.name] = dead_letter

    def grant_send(self, role: ExecutionRole, queues: Sequence[str]) -> None:
        """Send to ``queues`` (logical names); one grant per role."""
        arns = tuple(self.queues[name].arn for name in queues)
        role.allow("queues-send", Statement("SendTasks", SEND_ACTIONS, arns))

    def grant_receive(self, role: ExecutionRole, queue: str) -> None:
        """Receive and settle the messages of ``queue`` and dead-letter them; nothing on other queues."""
        self._receive_grants[queue] = role.allow(
            f"queue-receive-{queue}",
            Statement("ReceiveOwnQueue", RECEIVE_ACTIONS, (self.queues[queue].arn,)),
            Statement("DeadLetterOwnQueue", DEAD_LETTER_ACTIONS, (self.dead_letters[queue].arn,)),
        )

    def trigger(self, queue: str, function: LambdaAgent, *, maximum_concurrency: int) -> None:
        """Lambda polls ``queue`` for ``function`` (granted :meth:`grant_receive` first: AWS checks the
        role when the mapping is created). One message per invocation, so each task has the function's
        whole deadline; a failed message is reported alone (``ReportBatchItemFailures``) and, after the
        queue's receive count, dead-lettered. ``maximum_concurrency`` (at least 2, as AWS requires) keeps
        the queue from taking every instance the function may run."""
        if queue in self._fenced_receives:
            raise ValueError(
                f"queue {queue}: its perimeter denies receiving outside the VPC, but Lambda's event source "
                "mapping polls from the Lambda service; set consumed_in_vpc=False on its QueueSpec"
            )
        lambda_.EventSourceMapping(
            f"{self._name}-{queue}-trigger",
            event_source_arn=self.queues[queue].arn,
            function_name=function.function_arn,
            batch_size=1,
            function_response_types=["ReportBatchItemFailures"],
            scaling_config={"maximum_concurrency": max(2, maximum_concurrency)},
            opts=self.child(depends_on=[self._receive_grants[queue]]),
        )


def queue_policy(
    queue_arn: pulumi.Input[str],
    account_id: pulumi.Input[str],
    senders: Sequence[pulumi.Input[str]] = (),
    source: tuple[str, pulumi.Input[str]] | None = None,
    fence: pulumi.Input[dict[str, Any]] | None = None,
) -> pulumi.Output[str]:
    """Deny requests without TLS; with ``senders`` deny sending to any other principal; with ``source``
    allow that service to send for that resource of this account, and deny every other send; with
    ``fence`` (a perimeter statement) deny what it names outside the VPC."""
    service, source_arn = source or ("", "")
    return pulumi.Output.all(queue_arn, account_id, source_arn, fence, *senders).apply(
        lambda known: _policy(
            known[0], known[4:], (service, known[2], known[1]) if service else None, known[3]
        )
    )


def _policy(
    queue_arn: str,
    senders: Sequence[str],
    source: tuple[str, str, str] | None,
    fence: dict[str, Any] | None = None,
) -> str:
    statements: list[dict[str, object]] = [
        {
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:*",
            "Resource": queue_arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    if senders:
        statements.append(
            {
                "Sid": "OnlyNamedSenders",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": sorted(senders)}},
            }
        )
    if source:
        service, source_arn, account = source
        statements += [
            {
                "Sid": "SourceSends",
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": source_arn},
                    "StringEquals": {"aws:SourceAccount": account},
                },
            },
            {
                # IAM principals' requests carry no aws:SourceArn: this denies them all, and other sources.
                "Sid": "OnlySourceSends",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnNotEquals": {"aws:SourceArn": source_arn}},
            },
        ]
    if fence:
        statements.append(fence)
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)
