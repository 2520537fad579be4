"""What every AWS block of a stack shares: names, region, account, tags and the stack's KMS key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pulumi

PARTITION = "aws"


@dataclass(frozen=True)
class AwsContext:
    """The stack's AWS context. ``account_id`` comes from ``getCallerIdentity`` (known in a preview).

    ``kms_key_arn`` is the stack's customer-managed key, set once the encryption block exists
    (:meth:`with_key`): logs, tables, secrets and function environments are encrypted with it.
    """

    name_prefix: str
    environment: str
    region: str
    account_id: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)
    kms_key_arn: pulumi.Input[str] | None = None

    def name(self, *parts: str) -> str:
        """A physical name: ``<prefix>-<environment>-<parts>``, what AWS consoles and bills show."""
        return "-".join((self.name_prefix, self.environment, *parts))

    def arn(self, service: str, resource: str, *, regional: bool = True) -> pulumi.Output[str]:
        """An ARN in this account (and region, unless the service is global)."""
        region = self.region if regional else ""
        return pulumi.Output.concat(f"arn:{PARTITION}:{service}:{region}:", self.account_id, f":{resource}")

    def with_key(self, kms_key_arn: pulumi.Input[str]) -> AwsContext:
        return dataclasses.replace(self, kms_key_arn=kms_key_arn)

    @property
    def key(self) -> pulumi.Input[str]:
        if self.kms_key_arn is None:
            raise ValueError(
                "the stack's KMS key is not set: build Encryption first and use context.with_key"
            )
        return self.kms_key_arn
