"""The AWS foundation's web application firewall: a WAFv2 web ACL on the REST API's stage, tuned for chat.

AWS's managed rules are written for web forms, and chat bodies are not web forms. The Core rule set
blocks every body over 8 KB (``SizeRestrictions_BODY``) - a conversation's history routinely is larger,
so untuned it answers ordinary prompts with a bare 403 - and its body rules match what developers talk
about: HTML, relative paths, local URLs, SQL. Those rules are switched to Count (:data:`MANAGED_GROUPS`
says why, rule by rule): they still label, meter and log what they match, so the tuning can be reviewed
from the logs, while every rule on headers, paths, query strings and cookies keeps blocking.

What replaces the 8 KB limit is the stage's own (:class:`WebFirewallArgs.max_body_bytes`, 64 KB by
default). API Gateway forwards at most the first 16, 32, 48 or 64 KB of a body to WAF (the web ACL's
body inspection limit; above 16 KB at extra cost), and a body rule sees only that part. So the
inspection limit is raised to the smallest step that holds the whole limit, and the size rule treats an
oversize body as a match: no body larger than what WAF inspected in full ever passes, and no body rule
is blind to a payload hidden past the inspected part. A client hitting the limit gets the runtime's own
413 error, and a flooding address a 429, both as JSON.

Logs go to a CloudWatch log group (``aws-waf-logs-...``, the prefix WAF requires), sealed with the
stack's key, written through a resource policy that names that group only. They keep the requests a
rule blocked or counted (allowed traffic is in the API's access log) and never the caller's token,
cookies or API key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_aws import cloudwatch, wafv2

from components.aws.context import PARTITION, AwsContext
from components.aws.encryption import WAF_LOG_PREFIX
from components.aws.logs import log_group, retention
from components.base import Component


@dataclass(frozen=True)
class CountedRule:
    """A rule of a managed group switched from Block to Count, and why chat traffic needs it."""

    name: str
    why: str


@dataclass(frozen=True)
class ManagedGroup:
    """An AWS managed rule group as the web ACL runs it: its rule name in the ACL, AWS's group name, its
    capacity in WAF capacity units (WCU) and the rules it may only count."""

    rule: str
    group: str
    capacity: int
    counted: tuple[CountedRule, ...] = ()


IP_REPUTATION = ManagedGroup("IpReputation", "AWSManagedRulesAmazonIpReputationList", 25)
"""Sources Amazon's threat intelligence saw attacking, scanning or flooding: dropped before anything else."""

ANONYMOUS_IP = ManagedGroup(
    "AnonymousIp",
    "AWSManagedRulesAnonymousIpList",
    50,
    (
        CountedRule(
            "HostingProviderIPList",
            "the callers are applications as often as people, and applications run in clouds and data "
            "centres; blocking hosting providers would lock out every server-side caller outside AWS",
        ),
    ),
)
"""Tor, VPN and proxy services hide the address the per-address rate rule and the logs rely on (checkov's
CKV2_AWS_77 expects this group and Known bad inputs on a REST API's web ACL)."""

CORE_RULE_SET = ManagedGroup(
    "CoreRuleSet",
    "AWSManagedRulesCommonRuleSet",
    700,
    (
        CountedRule(
            "SizeRestrictions_BODY",
            "it blocks every body over 8 KB and a conversation's history routinely is larger; the "
            "BodySize rule enforces the stage's own limit instead",
        ),
        CountedRule(
            "CrossSiteScripting_BODY",
            "prompts and answers quote HTML and JavaScript (<script>, onerror=); the API answers JSON, "
            "which no browser renders as a page",
        ),
        CountedRule(
            "GenericLFI_BODY",
            "relative paths (../) are everyday content in questions about code; the runtime opens no "
            "file a request names",
        ),
        CountedRule(
            "GenericRFI_BODY",
            "URLs with IP addresses (http://127.0.0.1:8000) are everyday content in questions about "
            "local development; the runtime fetches only https URLs on allowlisted hosts (http_get)",
        ),
        CountedRule(
            "EC2MetaDataSSRF_BODY",
            "the instance metadata address (169.254.169.254) comes up in any question about AWS "
            "networking; Lambda has no instance metadata service and http_get fetches allowlisted "
            "hosts only",
        ),
    ),
)
"""OWASP-style protections; every rule on the URI, query string, headers and cookies keeps blocking."""

KNOWN_BAD_INPUTS = ManagedGroup("KnownBadInputs", "AWSManagedRulesKnownBadInputsRuleSet", 200)
"""Exploit payloads (Log4j lookups, Java deserialization gadgets) are syntax, not prose, so nothing is
counted: agents forward request text to other services, whose logs may be Java's (and checkov's
CKV_AWS_192 requires Log4JRCE to block)."""

SQL_DATABASE = ManagedGroup(
    "SqlDatabase",
    "AWSManagedRulesSQLiRuleSet",
    200,
    tuple(
        CountedRule(
            rule,
            "SQL is a topic of conversation (queries, injection examples to explain); the runtime passes "
            "request text to its databases only as bound parameters",
        )
        for rule in ("SQLi_BODY", "SQLiExtendedPatterns_BODY")
    ),
)
"""SQL injection in the URI, query string and cookies keeps blocking; chat text may discuss SQL."""

MANAGED_GROUPS = (IP_REPUTATION, ANONYMOUS_IP, CORE_RULE_SET, KNOWN_BAD_INPUTS, SQL_DATABASE)

RATE_RULE = "RatePerIp"
BODY_SIZE_RULE = "BodySize"
OWN_RULE_CAPACITY = {RATE_RULE: 2, BODY_SIZE_RULE: 1}
"""WCU of a rate-based statement on the client address and of a size constraint without transformation."""

RULE_ORDER = (
    IP_REPUTATION.rule,
    ANONYMOUS_IP.rule,
    RATE_RULE,
    BODY_SIZE_RULE,
    CORE_RULE_SET.rule,
    KNOWN_BAD_INPUTS.rule,
    SQL_DATABASE.rule,
)
"""Evaluation order: known-bad sources first, then floods, then bodies too large to inspect in full (a
413, before any content rule), then content. Priorities are 10 apart so a fork can slot rules in."""

INCLUDED_CAPACITY = 1_500
"""WCU a web ACL's base price covers: above it every request inspected costs more."""

INSPECTION_LIMITS = {16_384: "KB_16", 32_768: "KB_32", 49_152: "KB_48", 65_536: "KB_64"}
"""What API Gateway can forward of a body to WAF, in bytes, and the setting's name for it."""

EVALUATION_WINDOWS = (60, 120, 300, 600)
MIN_RATE_LIMIT = 10

REDACTED_HEADERS = ("authorization", "cookie", "x-api-key")
"""Credentials: the caller's bearer token, any session cookie, and the API key some clients send by habit.
WAF logs never hold the body; these are the headers that would carry a secret."""

PAYLOAD_TOO_LARGE = "payload-too-large"
RATE_LIMITED = "rate-limited"


@dataclass(frozen=True)
class WebFirewallArgs:
    """``stage_arn``: the REST API stage to protect (:attr:`RestGateway.stage_arn`,
    ``arn:aws:apigateway:<region>::/restapis/<id>/stages/<stage>``).

    ``max_body_bytes``: the largest request body admitted, at most 65,536 (what WAF can inspect of an API
    Gateway body); set the runtime's ``max_request_bytes`` to the same value. Longer conversations belong
    in the runtime's memory (``conversation_id``), not in every request.
    ``requests_per_window`` per client address and ``window_seconds`` (60, 120, 300 or 600): a flood
    brake, not a quota - offices share one address behind NAT, and each application's rate is its
    usage plan's.
    """

    stage_arn: pulumi.Input[str]
    max_body_bytes: int = 65_536
    requests_per_window: int = 2_000
    window_seconds: int = 300
    log_retention_days: int = 30

    def __post_init__(self) -> None:
        largest = max(INSPECTION_LIMITS)
        if not 1 <= self.max_body_bytes <= largest:
            raise ValueError(
                f"WebFirewallArgs.max_body_bytes is {self.max_body_bytes}: AWS WAF inspects at most "
                f"{largest} bytes of an API Gateway request body, so it can enforce no larger limit; "
                f"set it between 1 and {largest}"
            )
        if self.requests_per_window < MIN_RATE_LIMIT:
            raise ValueError(
                f"WebFirewallArgs.requests_per_window is {self.requests_per_window}: a WAF rate-based "
                f"rule needs a limit of at least {MIN_RATE_LIMIT}"
            )
        if self.window_seconds not in EVALUATION_WINDOWS:
            raise ValueError(
                f"WebFirewallArgs.window_seconds is {self.window_seconds}: WAF counts requests over "
                f"one of {', '.join(map(str, EVALUATION_WINDOWS))} seconds; use one of those"
            )

    @property
    def inspection_limit(self) -> str:
        """The smallest body inspection limit that holds ``max_body_bytes`` whole (``KB_64``)."""
        return next(name for size, name in sorted(INSPECTION_LIMITS.items()) if size >= self.max_body_bytes)


def web_acl_rules(args: WebFirewallArgs) -> list[dict[str, Any]]:
    """The web ACL's rules, in :data:`RULE_ORDER`, as pulumi-aws takes them (``WebAclRuleArgsDict``)."""
    rules = {group.rule: _managed(group) for group in MANAGED_GROUPS}
    rules[RATE_RULE] = {
        "action": _block(429, RATE_LIMITED),
        "statement": {
            "rate_based_statement": {
                "aggregate_key_type": "IP",
                "limit": args.requests_per_window,
                "evaluation_window_sec": args.window_seconds,
            }
        },
    }
    rules[BODY_SIZE_RULE] = {
        "action": _block(413, PAYLOAD_TOO_LARGE),
        "statement": {
            "size_constraint_statement": {
                "comparison_operator": "GT",
                "size": args.max_body_bytes,
                # A body past the inspection limit cannot be measured, only known to be larger: a match.
                "field_to_match": {"body": {"oversize_handling": "MATCH"}},
                "text_transformations": [{"priority": 0, "type": "NONE"}],
            }
        },
    }
    return [
        {"name": name, "priority": 10 * (index + 1), **rules[name], "visibility_config": _visibility(name)}
        for index, name in enumerate(RULE_ORDER)
    ]


def custom_response_bodies(args: WebFirewallArgs) -> list[dict[str, str]]:
    """The JSON errors WAF answers with, shaped like the runtime's (``{"error": {"code", "message"}}``):
    the size rule's is the runtime's own 413 for a body over ``max_request_bytes``."""
    flood = f"more than {args.requests_per_window} requests from this address in {args.window_seconds} s"
    errors = {
        PAYLOAD_TOO_LARGE: ("payload_too_large", f"the request body exceeds {args.max_body_bytes} bytes"),
        RATE_LIMITED: ("rate_limited", f"{flood}; retry later"),
    }
    return [
        {
            "key": key,
            "content_type": "APPLICATION_JSON",
            "content": json.dumps({"error": {"code": code, "message": message}}, sort_keys=True),
        }
        for key, (code, message) in errors.items()
    ]


def _managed(group: ManagedGroup) -> dict[str, Any]:
    statement: dict[str, Any] = {"vendor_name": "AWS", "name": group.group}
    if group.counted:
        statement["rule_action_overrides"] = [
            {"name": rule.name, "action_to_use": {"count": {}}} for rule in group.counted
        ]
    return {"override_action": {"none": {}}, "statement": {"managed_rule_group_statement": statement}}


def _block(status: int, body_key: str) -> dict[str, Any]:
    return {"block": {"custom_response": {"response_code": status, "custom_response_body_key": body_key}}}


def _visibility(metric: str) -> dict[str, Any]:
    return {"cloudwatch_metrics_enabled": True, "metric_name": metric, "sampled_requests_enabled": True}


def capacity() -> int:
    """The web ACL's WCU: what its managed groups and own rules cost."""
    return sum(group.capacity for group in MANAGED_GROUPS) + sum(OWN_RULE_CAPACITY.values())


LOGGING_FILTER: Mapping[str, Any] = {
    "default_behavior": "DROP",
    "filters": [
        {
            "behavior": "KEEP",
            "requirement": "MEETS_ANY",
            # EXCLUDED_AS_COUNT: a managed rule overridden to Count matched - the evidence for the tuning.
            "conditions": [
                {"action_condition": {"action": action}} for action in ("BLOCK", "COUNT", "EXCLUDED_AS_COUNT")
            ],
        }
    ],
}
"""Keep what a rule blocked or counted; allowed requests are in the API's access log already."""


def log_delivery_policy(log_group_arn: str, region: str, account: str) -> str:
    """CloudWatch Logs' resource policy letting AWS's log delivery (on WAF's behalf, for this account only)
    write to this log group only. Without it WAF adds the group to the account's shared ``AWSWAF-LOGS``
    policy, which outgrows its size limit in an account with many web ACLs."""
    statement: dict[str, Any] = {
        "Sid": "WafLogDelivery",
        "Effect": "Allow",
        "Principal": {"Service": "delivery.logs.amazonaws.com"},
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": f"{log_group_arn}:log-stream:*",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": account},
            "ArnLike": {"aws:SourceArn": f"arn:{PARTITION}:logs:{region}:{account}:*"},
        },
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)


class WebFirewall(Component):
    """``agentstage:aws:WebFirewall``: web ACL, its association with the stage, its log group, the log
    group's resource policy for WAF's log delivery, and the logging configuration.

    Outputs: ``web_acl_arn``, ``log_group_name``; ``max_body_bytes`` for the runtime's settings.
    """

    def __init__(
        self,
        name: str,
        context: AwsContext,
        args: WebFirewallArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aws", "WebFirewall", name, opts)
        acl_name = context.name(name)
        acl = wafv2.WebAcl(
            f"{name}-acl",
            name=acl_name,
            scope="REGIONAL",
            description="agentstage: managed rules tuned for chat bodies, a body limit, a rate per address",
            default_action={"allow": {}},
            rules=web_acl_rules(args),
            association_config={
                "request_bodies": [{"api_gateway": {"default_size_inspection_limit": args.inspection_limit}}]
            },
            custom_response_bodies=custom_response_bodies(args),
            visibility_config=_visibility(acl_name),
            tags=context.tags,
            opts=self.child(),
        )
        wafv2.WebAclAssociation(
            f"{name}-stage", resource_arn=args.stage_arn, web_acl_arn=acl.arn, opts=self.child()
        )
        logs = log_group(
            name, context, f"{WAF_LOG_PREFIX}{acl_name}", retention(args.log_retention_days), self
        )
        delivery = cloudwatch.LogResourcePolicy(
            f"{name}-log-delivery",
            policy_name=context.name(name, "waf-log-delivery"),
            policy_document=pulumi.Output.all(logs.arn, context.account_id).apply(
                lambda known: log_delivery_policy(known[0], context.region, known[1])
            ),
            opts=self.child(),
        )
        wafv2.WebAclLoggingConfiguration(
            f"{name}-logging",
            resource_arn=acl.arn,
            log_destination_configs=[logs.arn],
            redacted_fields=[{"single_header": {"name": header}} for header in REDACTED_HEADERS],
            logging_filter=LOGGING_FILTER,
            opts=self.child(depends_on=[delivery]),
        )
        self.web_acl_arn: pulumi.Output[str] = acl.arn
        self.log_group_name: pulumi.Output[str] = logs.name
        self.max_body_bytes = args.max_body_bytes
        self.register_outputs({"web_acl_arn": self.web_acl_arn, "log_group_name": self.log_group_name})
