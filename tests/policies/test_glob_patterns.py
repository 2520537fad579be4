"""The rules' pattern matcher: a plain pattern is compared as a string, a glob as ``fnmatchcase`` reads it -
the same answers as ``fnmatchcase`` for every pattern, which the rules relied on before."""

from __future__ import annotations

import random
from fnmatch import fnmatchcase

from policies.rules.aws import action_covers
from policies.rules.evaluate import RulesByType
from policies.rules.model import Rule, Stage, glob_matches
from policies.rules.registry import all_rules

VALUES = (
    "sqs:ReceiveMessage",
    "sqs:receivemessage",
    "sqs:SendMessage",
    "bedrock:InvokeModel",
    "bedrock:InvokeModelWithResponseStream",
    "arn:aws:sqs:eu-west-1:123456789012:ags-prod-research",
    "arn:aws:sqs:eu-west-1:123456789012:ags-prod-research-dlq",
    "arn:aws:s3:::ags-prod-documents/*",
    "aws:sqs/queue:Queue",
    "azure-native:keyvault:Vault",
    "/aws/eks/ags-prod/cluster",
    "sqs",
    "",
    "[literal]",
)


def _patterns(rng: random.Random, count: int) -> list[str]:
    """Patterns cut from the values, with wildcards, character classes (negated or not) and odd brackets."""
    pieces = ("*", "?", "[a-z]", "[!s]", "[", "]", "[*]", "-", ":")
    patterns = []
    for _ in range(count):
        value = rng.choice(VALUES)
        cut = sorted(rng.sample(range(len(value) + 1), k=min(2, len(value) + 1)))
        pattern = value[: cut[0]] + rng.choice(pieces) + value[cut[-1] :] if rng.random() < 0.7 else value
        patterns.append(pattern.upper() if rng.random() < 0.1 else pattern)
    return patterns


def test_every_pattern_matches_as_fnmatchcase_does() -> None:
    rng = random.Random(20261205)
    patterns = [*_patterns(rng, 400), *VALUES, "*", "?", "[]", "[!]"]
    for pattern in patterns:
        for value in VALUES:
            assert glob_matches(value, pattern) == fnmatchcase(value, pattern), (value, pattern)


def test_an_action_pattern_covers_regardless_of_case_and_only_by_its_wildcards() -> None:
    assert action_covers("SQS:ReceiveMessage", "sqs:receivemessage")
    assert action_covers("sqs:Receive*", "sqs:ReceiveMessage")
    assert action_covers("sqs:?eceiveMessage", "sqs:ReceiveMessage")
    assert action_covers("*", "bedrock:InvokeModel")
    assert not action_covers("sqs:ReceiveMessage", "sqs:ReceiveMessages")
    assert not action_covers("sqs:Send*", "sqs:ReceiveMessage")
    assert not action_covers(["sqs:ReceiveMessage"], "sqs:ReceiveMessage"), "only a string is a pattern"


def test_the_rules_judging_a_type_are_those_that_cover_it_in_their_order() -> None:
    """The index by type finds, for every stage, exactly the rules whose ``covers`` says yes, in registry
    order: for every type some rule names, types only a pattern reaches, and types no rule names; with
    rules that mix plain tokens and patterns."""
    extra = Rule(
        **{**vars(all_rules()[0]), "id": "AGS-T-001", "types": ("aws:sqs/queue:Queue", "azure-native:*")}
    )
    rules = (*all_rules(), extra)
    types = {token for rule in rules for token in rule.types} | {
        "azure-native:web:WebApp",
        "aws:unknown/kind:Kind",
        "kubernetes:core/v1:ConfigMap",
        "",
    }
    for stage in Stage:
        rules_for = RulesByType(rules, stage)
        for type_ in sorted(types):
            assert rules_for(type_) == [rule for rule in rules if rule.covers(type_, stage)], (stage, type_)
            assert rules_for(type_) is rules_for(type_)  # worked out once per type
