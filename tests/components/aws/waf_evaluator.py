"""A model of how AWS WAF decides a web request, run on the web ACL exactly as the program declares it.

It reads the recorded ``aws:wafv2/webAcl:WebAcl`` inputs (what pulumi-aws sends to AWS): the rules in
priority order, their actions and custom responses, managed rule groups with their override action and
rule action overrides, the size constraint with its oversize handling, the rate-based rule, and the body
inspection limit of the association config (16 KB when unset, as on AWS).

AWS's managed groups are modelled by the rules of theirs the ACL tunes or that decide chat requests,
each as AWS documents it: ``SizeRestrictions_BODY`` blocks bodies over 8 KB; a body rule looks for the
example pattern its documentation gives, in the part of the body WAF inspects; an IP list rule matches
an address that AWS lists (:attr:`Request.ip_lists`). This is a model of WAF's semantics, not of AWS's
detection: it shows which settings of the ACL decide a request. A statement, group, or override it does
not model is an error, so the ACL cannot grow past what the tests understand.
"""

from __future__ import annotations

import copy
import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_INSPECTION_LIMIT = "KB_16"
INSPECTION_LIMITS = {"KB_16": 16_384, "KB_32": 32_768, "KB_48": 49_152, "KB_64": 65_536}
CORE_RULE_SET_BODY_LIMIT = 8_192


class Unmodelled(Exception):
    """The evaluator refuses to judge what it does not model (a statement kind, a managed group, an
    override): a rule added to the web ACL must be modelled before the body test can vouch for it."""


@dataclass(frozen=True)
class Request:
    """A POST to the protected stage: its body, the AWS IP lists its source address is on, and how many
    requests that address sent in the rate rule's window, this one included."""

    body: bytes
    ip_lists: frozenset[str] = frozenset()
    recent_requests: int = 1


@dataclass(frozen=True)
class Body:
    """The body as WAF sees it: the part the host service forwards, and whether there was more."""

    inspected: bytes
    oversize: bool

    @property
    def text(self) -> str:
        return self.inspected.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Verdict:
    """``ALLOW`` (the request reaches the API) or ``BLOCK``; the terminating rule (``Group:Rule`` inside a
    managed group); the HTTP status and body the caller gets from WAF; the rules that only counted."""

    action: str
    rule: str | None
    status: int
    response: Mapping[str, Any] | None
    counted: tuple[str, ...]


@dataclass(frozen=True)
class Match:
    """A rule that matched (``Group:Rule`` inside a managed group), the action it takes, and the custom
    response of its block action, if any."""

    rule: str
    action: str
    custom_response: Mapping[str, Any] | None = None


Matcher = Callable[[Body, Request], bool]


@dataclass(frozen=True)
class ManagedRule:
    """One rule of an AWS managed group: what it matches and its documented action."""

    name: str
    matches: Matcher
    action: str = "BLOCK"


def _pattern(regex: str) -> Matcher:
    compiled = re.compile(regex, re.IGNORECASE)
    return lambda body, _request: compiled.search(body.text) is not None


def _listed(rule: str) -> ManagedRule:
    return ManagedRule(rule, lambda _body, request: rule in request.ip_lists)


AWS_MANAGED_RULES: Mapping[str, tuple[ManagedRule, ...]] = {
    "AWSManagedRulesAmazonIpReputationList": (
        _listed("AWSManagedIPReputationList"),
        _listed("AWSManagedReconnaissanceList"),
    ),
    "AWSManagedRulesAnonymousIpList": (_listed("AnonymousIPList"), _listed("HostingProviderIPList")),
    # In the documented order: the first blocking match ends the evaluation.
    "AWSManagedRulesCommonRuleSet": (
        ManagedRule(
            "SizeRestrictions_BODY",
            lambda body, _request: body.oversize or len(body.inspected) > CORE_RULE_SET_BODY_LIMIT,
        ),
        ManagedRule("EC2MetaDataSSRF_BODY", _pattern(r"169\.254\.169\.254")),
        ManagedRule("GenericLFI_BODY", _pattern(r"\.\./")),
        ManagedRule("GenericRFI_BODY", _pattern(r"https?://\d{1,3}(\.\d{1,3}){3}")),
        ManagedRule("CrossSiteScripting_BODY", _pattern(r"<script|\bon(error|load)\s*=|javascript:")),
    ),
    "AWSManagedRulesKnownBadInputsRuleSet": (
        ManagedRule(
            "JavaDeserializationRCE_BODY", _pattern(r"java\.lang\.Runtime|class\.module\.classLoader")
        ),
        ManagedRule("Log4JRCE_BODY", _pattern(r"\$\{jndi:")),
    ),
    "AWSManagedRulesSQLiRuleSet": (
        ManagedRule("SQLi_BODY", _pattern(r"'\s*or\s+'?\d*'?\s*=|;\s*drop\s+table")),
        ManagedRule("SQLiExtendedPatterns_BODY", _pattern(r"\bunion\s+(all\s+)?select\b")),
    ),
}
"""AWS group name -> the modelled rules, each with its documented default action."""

COMPARISONS: Mapping[str, Callable[[int, int], bool]] = {
    "EQ": operator.eq,
    "NE": operator.ne,
    "LE": operator.le,
    "LT": operator.lt,
    "GE": operator.ge,
    "GT": operator.gt,
}


class WebAcl:
    """The recorded inputs of one web ACL, ready to decide requests."""

    def __init__(self, inputs: Mapping[str, Any]) -> None:
        self.inputs = inputs
        self.rules = sorted(inputs["rules"], key=lambda rule: rule["priority"])
        self.responses = {b["key"]: b for b in inputs.get("customResponseBodies", [])}
        limits = [
            body["apiGateway"]["defaultSizeInspectionLimit"]
            for body in inputs.get("associationConfig", {}).get("requestBodies", [])
            if "apiGateway" in body
        ]
        self.inspection_limit = INSPECTION_LIMITS[limits[0] if limits else DEFAULT_INSPECTION_LIMIT]
        assert inputs["defaultAction"] == {"allow": {}}, "the model assumes a default action of allow"

    def decide(self, request: Request) -> Verdict:
        body = Body(request.body[: self.inspection_limit], len(request.body) > self.inspection_limit)
        counted: list[str] = []
        for rule in self.rules:
            for match in self._matches(rule, body, request):
                if match.action == "COUNT":
                    counted.append(match.rule)
                elif match.action == "ALLOW":
                    return Verdict("ALLOW", match.rule, 200, None, tuple(counted))
                else:
                    return self._blocked(match, tuple(counted))
        return Verdict("ALLOW", None, 200, None, tuple(counted))

    def without_overrides(self, group: str, rules: tuple[str, ...] | None = None) -> WebAcl:
        """This ACL without ``group``'s rule action overrides: all of them, or only those of ``rules``."""
        inputs = copy.deepcopy(dict(self.inputs))
        statement = _managed_statement(inputs, group)
        if rules is None:
            statement["ruleActionOverrides"] = []
        else:
            statement["ruleActionOverrides"] = [
                o for o in statement["ruleActionOverrides"] if o["name"] not in rules
            ]
        return WebAcl(inputs)

    def overridden(self, group: str) -> tuple[str, ...]:
        """The rules of ``group`` this ACL overrides."""
        return tuple(o["name"] for o in _managed_statement(self.inputs, group).get("ruleActionOverrides", []))

    def _matches(self, rule: Mapping[str, Any], body: Body, request: Request) -> list[Match]:
        """What matched inside ``rule``, in evaluation order, with the action each match takes."""
        [(kind, statement)] = rule["statement"].items()
        if kind == "managedRuleGroupStatement":
            return self._group_matches(rule, statement, body, request)
        if kind == "sizeConstraintStatement":
            matched = _size_matches(statement, body)
        elif kind == "rateBasedStatement":
            assert statement["aggregateKeyType"] == "IP", "the model counts requests per address only"
            matched = request.recent_requests > statement["limit"]
        else:
            raise Unmodelled(f"{rule['name']}: no model for {kind}")
        custom = rule["action"].get("block", {}).get("customResponse")
        return [Match(rule["name"], _action_of(rule["action"]), custom)] if matched else []

    def _group_matches(
        self, rule: Mapping[str, Any], statement: Mapping[str, Any], body: Body, request: Request
    ) -> list[Match]:
        group = statement["name"]
        if group not in AWS_MANAGED_RULES:
            raise Unmodelled(f"{rule['name']}: no model of {group}; add its documented rules")
        overrides = {
            o["name"]: _action_of(o["actionToUse"]) for o in statement.get("ruleActionOverrides", [])
        }
        unknown = set(overrides) - {managed.name for managed in AWS_MANAGED_RULES[group]}
        if unknown:
            raise Unmodelled(f"{rule['name']}: overrides {sorted(unknown)}, which the model lacks")
        group_counts = "count" in rule["overrideAction"]
        return [
            Match(
                f"{rule['name']}:{managed.name}",
                "COUNT" if group_counts else overrides.get(managed.name, managed.action),
            )
            for managed in AWS_MANAGED_RULES[group]
            if managed.matches(body, request)
        ]

    def _blocked(self, match: Match, counted: tuple[str, ...]) -> Verdict:
        if match.custom_response is None:
            return Verdict("BLOCK", match.rule, 403, None, counted)
        body = self.responses[match.custom_response["customResponseBodyKey"]]
        assert body["contentType"] == "APPLICATION_JSON", body
        return Verdict(
            "BLOCK", match.rule, match.custom_response["responseCode"], json.loads(body["content"]), counted
        )


def _action_of(action: Mapping[str, Any]) -> str:
    [(kind, _settings)] = action.items()
    return kind.upper()


def _size_matches(statement: Mapping[str, Any], body: Body) -> bool:
    field = statement["fieldToMatch"]
    assert set(field) == {"body"}, f"the model measures bodies only, not {sorted(field)}"
    assert statement["textTransformations"] == [{"priority": 0, "type": "NONE"}], "sizes of the raw body"
    if body.oversize:
        handling = field["body"].get("oversizeHandling", "CONTINUE")
        if handling != "CONTINUE":
            return handling == "MATCH"
    return COMPARISONS[statement["comparisonOperator"]](len(body.inspected), statement["size"])


def _managed_statement(inputs: Mapping[str, Any], group: str) -> dict[str, Any]:
    [statement] = [
        rule["statement"]["managedRuleGroupStatement"]
        for rule in inputs["rules"]
        if rule["statement"].get("managedRuleGroupStatement", {}).get("name") == group
    ]
    return statement
