"""Secrets Manager: the one place the agents' secret settings live (API keys of tools or model providers).

The secret holds a JSON object of runtime settings (``{"AGENTSTAGE_LLM_API_KEY": "..."}``); the Lambda host
reads it once per cold start, as its execution role, and hands the values to the runtime as settings files
(``AGENTSTAGE_SETTINGS_DIR``): never environment variables, never the stack file, never logs. The stack
creates the secret empty; its value is set out of band (``aws secretsmanager put-secret-value``).

With a perimeter (the VPC's Secrets Manager endpoint, :mod:`components.aws.data_perimeter`) the secret's
resource policy denies reading its value (``secretsmanager:GetSecretValue``) outside the VPC: its only
readers are the runtimes, at their start, inside the VPC. Everything else stays open, because it comes
from outside: the deployer creating, describing and tagging the secret, and whoever sets its value.
"""

from __future__ import annotations

import pulumi
from pulumi_aws import secretsmanager

from components.aws.context import AwsContext
from components.aws.data_perimeter import VpcPerimeter, policy_document
from components.aws.iam import Statement
from components.aws.role import ExecutionRole
from components.base import Component

SETTINGS_SECRET_VARIABLE = "AGENTSTAGE_SETTINGS_SECRET_ARN"
"""The Lambda host's variable naming the secret (read before the runtime's settings exist)."""
FENCED_READS = ("secretsmanager:GetSecretValue",)


class Secrets(Component):
    """``agentstage:aws:Secrets``: one secret sealed with the stack's key, recoverable for 30 days.

    ``perimeter``: the VPC's Secrets Manager endpoint, outside which reading the value is denied (see the
    module docstring); none by default.

    Outputs: ``secret_arn``.
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        opts: pulumi.ResourceOptions | None = None,
        *,
        perimeter: VpcPerimeter | None = None,
    ) -> None:
        super().__init__("aws", "Secrets", name, opts)
        if perimeter is not None and perimeter.service != "secretsmanager":
            raise ValueError(
                f"perimeter: the secret is read through the secretsmanager endpoint, not {perimeter.service}; "
                "use network.perimeter('secretsmanager')"
            )
        secret = secretsmanager.Secret(
            f"{name}-settings",
            name=context.name("settings"),
            description="Secret runtime settings of the agents (a JSON object of AGENTSTAGE_<SETTING> keys)",
            kms_key_id=context.key,
            recovery_window_in_days=30,
            tags=context.tags,
            opts=self.child(),
        )
        if perimeter is not None:
            secretsmanager.SecretPolicy(
                f"{name}-perimeter",
                secret_arn=secret.arn,
                policy=policy_document(
                    [perimeter.statement(FENCED_READS, (secret.arn,), context.account_id)]
                ),
                block_public_policy=True,  # Secrets Manager refuses the policy if it would open the secret
                opts=self.child(),
            )
        self.secret_arn: pulumi.Output[str] = secret.arn
        self.register_outputs({"secret_arn": self.secret_arn})

    def grant_read(self, role: ExecutionRole) -> None:
        role.allow(
            "secrets-read",
            Statement("ReadSettingsSecret", ("secretsmanager:GetSecretValue",), (self.secret_arn,)),
        )
