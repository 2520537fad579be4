"""Amazon Bedrock: the stack's models, reachable only by id, and the guardrail on every call.

On-demand Bedrock models need no resource; what the stack creates is the guardrail - generated from the
stack's content-filter settings, the Bedrock counterpart of the Azure OpenAI content filter - and a
published version of it that the runtime sends with every Converse call. Access is granted per model:
the exact foundation-model ARN, or for a cross-region inference profile the profile's ARN plus its model
in the regions the profile routes to, and only when called through that profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import bedrock

from components.aws.context import PARTITION, AwsContext
from components.aws.iam import Statement
from components.aws.role import ExecutionRole
from components.base import Component

HARMFUL_CONTENT = ("SEXUAL", "VIOLENCE", "HATE", "INSULTS", "MISCONDUCT")
STRENGTH_FOR_SEVERITY = {"Low": "HIGH", "Medium": "MEDIUM", "High": "LOW"}
"""The stack's threshold is the lowest severity that is blocked (Azure's convention): blocking from Low up
is Bedrock's strictest filter strength, from High up its most lenient."""
PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.")


@dataclass(frozen=True)
class ModelsArgs:
    """``model_ids``: every Bedrock model or inference-profile id the agents call (chat and embeddings).
    ``severity_threshold`` (Low, Medium, High) and ``block_prompt_attacks`` shape the guardrail."""

    model_ids: Sequence[str]
    severity_threshold: str = "Medium"
    block_prompt_attacks: bool = True


class BedrockModels(Component):
    """``agentstage:aws:Models``: the guardrail and its published version.

    Outputs: ``guardrail_id``, ``guardrail_version``, ``guardrail_arn``.
    """

    def __init__(
        self, name: str, context: AwsContext, args: ModelsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "Models", name, opts)
        self._context = context
        self.model_ids = tuple(dict.fromkeys(args.model_ids))
        strength = STRENGTH_FOR_SEVERITY[args.severity_threshold]
        filters = [
            {"type": kind, "input_strength": strength, "output_strength": strength}
            for kind in HARMFUL_CONTENT
        ]
        if args.block_prompt_attacks:
            # Prompt attacks are screened on input only (Bedrock refuses any other output strength).
            filters.append({"type": "PROMPT_ATTACK", "input_strength": "HIGH", "output_strength": "NONE"})
        self.guardrail = bedrock.Guardrail(
            f"{name}-guardrail",
            name=context.name("guardrail"),
            description="agentstage content filter: harmful content and prompt attacks, on every model call",
            blocked_input_messaging="This request was blocked by the content filter.",
            blocked_outputs_messaging="The answer was withheld by the content filter.",
            content_policy_config={"filters_configs": filters},
            kms_key_arn=context.key,
            tags=context.tags,
            opts=self.child(),
        )
        self.version = bedrock.GuardrailVersion(
            f"{name}-guardrail-version",
            guardrail_arn=self.guardrail.guardrail_arn,
            description="published by agentstage",
            opts=self.child(),
        )
        self.guardrail_id: pulumi.Output[str] = self.guardrail.guardrail_id
        self.guardrail_arn: pulumi.Output[str] = self.guardrail.guardrail_arn
        self.guardrail_version: pulumi.Output[str] = self.version.version
        self.register_outputs(
            {
                "guardrail_id": self.guardrail_id,
                "guardrail_version": self.guardrail_version,
                "guardrail_arn": self.guardrail_arn,
            }
        )

    def grant_invoke(self, role: ExecutionRole, model_ids: Sequence[str] | None = None) -> None:
        """Converse, ConverseStream and InvokeModel on ``model_ids`` (the stack's models by default: each
        must be one of them), and the guardrail."""
        chosen = list(self.model_ids) if model_ids is None else sorted(set(model_ids))
        unknown = [model for model in chosen if model not in self.model_ids]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not among the stack's models ({', '.join(self.model_ids)})"
            )
        invoke = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
        direct = [m for m in chosen if not m.startswith(PROFILE_PREFIXES)]
        statements = (
            [Statement("InvokeFoundationModels", invoke, tuple(self._foundation_model(m) for m in direct))]
            if direct
            else []
        )
        for index, profile in enumerate(m for m in chosen if m.startswith(PROFILE_PREFIXES)):
            profile_arn = self._context.arn("bedrock", f"inference-profile/{profile}")
            statements.append(Statement(f"InvokeProfile{index}", invoke, (profile_arn,)))
            statements.append(
                Statement(
                    f"InvokeProfileModel{index}",
                    invoke,
                    (f"arn:{PARTITION}:bedrock:*::foundation-model/{_base_model(profile)}",),
                    {"StringEquals": {"bedrock:InferenceProfileArn": profile_arn}},
                )
            )
        statements.append(Statement("ApplyGuardrail", ("bedrock:ApplyGuardrail",), (self.guardrail_arn,)))
        role.allow("bedrock-invoke", *statements)

    def runtime_settings(self) -> dict[str, pulumi.Input[str]]:
        return {
            "llm_provider": "bedrock",
            "llm_auth": "aws",
            "llm_endpoint": f"https://bedrock-runtime.{self._context.region}.amazonaws.com",
            "aws_region": self._context.region,
            "bedrock_guardrail_id": self.guardrail_id,
            "bedrock_guardrail_version": self.guardrail_version,
        }

    def _foundation_model(self, model_id: str) -> str:
        return f"arn:{PARTITION}:bedrock:{self._context.region}::foundation-model/{model_id}"


def _base_model(profile: str) -> str:
    """``eu.anthropic.claude-3-5-haiku-20241022-v1:0`` -> ``anthropic.claude-3-5-haiku-20241022-v1:0``."""
    return profile.split(".", 1)[1]
