"""Lambda takes at most 4 KB of environment variables per function and refuses more at deployment: a stack
whose function would get more is refused at plan time, naming what to shorten; every shipped stack fits,
with the margin shown."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.aws.serverless_agent import ENVIRONMENT_LIMIT, environment_size
from core.graph import ResourceGraph
from tests.blueprints.test_config_newcomer import plan_with

AWS_STACKS = ("pilot-aws-dev", "pilot-aws-prod", "foundation-aws-staging", "enterprise-aws-prod")
PILOT_INSTRUCTIONS = (
    "        You are a helpful assistant for the platform team. Use the calculator for arithmetic and\n"
    "        search memory before answering questions about earlier conversations.\n"
)


def test_the_size_is_the_variables_as_one_compact_json_object() -> None:
    """What Lambda's error quotes as the string it measured: {"KEY":"value",...}, non-ASCII escaped."""
    assert environment_size({"A": "b"}) == len('{"A":"b"}')
    assert environment_size({"A": "é"}) == len('{"A":"\\u00e9"}')
    assert environment_size({"A": 'say "hi"\n'}) == len(
        json.dumps({"A": 'say "hi"\n'}, separators=(",", ":"))
    )


def test_a_value_not_known_yet_counts_as_empty() -> None:
    """While the program runs a table's name or a secret's ARN is an Output (anything but a plain string is
    a value not known yet): the size is a lower bound."""
    unknown: Any = object()
    assert environment_size({"A": "b", "TABLE": unknown}) == len('{"A":"b","TABLE":""}')


def test_long_instructions_are_refused_naming_them(project: Path) -> None:
    line = plan_with(
        project,
        "pilot-aws-dev",
        lambda text: text.replace(PILOT_INSTRUCTIONS, f"        {'You are helpful. ' * 190}\n"),
    )
    assert line.startswith("the Lambda function ags-dev-agent would get at least ")
    assert line.endswith(
        "bytes of environment variables (names and values, as Lambda counts them); AWS takes at most 4,096: shorten "
        "agentstage:agents[0].instructions (3,230 characters), agentstage:agents[0].description (89 characters)"
    )


def test_the_orchestrator_carries_every_agents_definition(project: Path) -> None:
    """The orchestrator's runtime holds each agent's description and instructions beside its own."""
    line = plan_with(
        project,
        "foundation-aws-staging",
        lambda text: text.replace(
            "instructions: You do arithmetic and data analysis precisely, showing your working.",
            f"instructions: {'Show the working. ' * 120}",
        ),
    )
    assert line.startswith("the Lambda function ags-stg-orchestrator would get at least ")
    assert line.endswith(
        "shorten agentstage:agents[1].instructions (2,159 characters), agentstage:orchestrator.instructions "
        "(143 characters), agentstage:agents[0].instructions (93 characters)"
    )


def test_every_shipped_stack_fits_with_its_margin_shown(stack_graph: Callable[[str], ResourceGraph]) -> None:
    """Measured on the plan's recorded inputs, where every value is resolved: the exact size."""
    margins = {
        f"{stack} {function.name}": ENVIRONMENT_LIMIT
        - environment_size(function.get("environment.variables", {}))
        for stack in AWS_STACKS
        for function in stack_graph(stack).of_type("aws:lambda/function:Function")
    }
    table = "\n".join(f"{name}: {margin:,} bytes to spare" for name, margin in sorted(margins.items()))
    print(f"Lambda environment margins (limit {ENVIRONMENT_LIMIT:,} bytes):\n{table}")
    assert all(margin >= 0 for margin in margins.values()), table
    # The largest environment is the orchestrator's, which carries every agent's definition.
    assert min(margins, key=margins.__getitem__).endswith("orchestrator-function"), table
