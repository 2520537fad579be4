"""AWS foundation stage: the REST API front door, the task queues between agents and the vector store.

What checkov cannot see here lies between resources: whether a web ACL association and method settings exist
*for this stage*, whether a queue's dead-letter target is a queue of the stack (and kept long enough to be
read), whether two agents' roles may receive from one queue. These rules follow the graph's references with
:func:`policies.rules.aws.referenced`, so they judge the plan's ids and ARNs and CrossGuard's URNs alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.graph import UNKNOWN, Resource, ResourceGraph
from policies.findings import Severity
from policies.rules.aws import (
    QUEUE,
    ROLE,
    ROLE_POLICY,
    Arn,
    action_covers,
    allows,
    as_list,
    documents,
    referenced,
)
from policies.rules.context import StackContext
from policies.rules.model import Rule, Stage, Verdict, failed, glob_matches, passed
from policies.rules.predicates import is_unknown, shown

REST_API = "aws:apigateway/restApi:RestApi"
REST_STAGE = "aws:apigateway/stage:Stage"
HTTP_STAGE = "aws:apigatewayv2/stage:Stage"
METHOD = "aws:apigateway/method:Method"
METHOD_SETTINGS = "aws:apigateway/methodSettings:MethodSettings"
REST_AUTHORIZER = "aws:apigateway/authorizer:Authorizer"
INTEGRATION = "aws:apigateway/integration:Integration"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
DB_CLUSTER = "aws:rds/cluster:Cluster"
DB_CLUSTER_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"
DB_INSTANCE = "aws:rds/instance:Instance"

ALL_METHODS = "*/*"
"""The ``methodPath`` of a stage's settings for every method (others override single methods)."""
MAX_RETENTION_SECONDS = 1_209_600
"""14 days, the longest SQS keeps a message: a dead-letter queue keeps failed tasks for investigation."""
MAX_RECEIVE_COUNT = 20
"""Past this many receives a task that fails every time has run its agent - and paid its model calls - far
more often than any transient error explains; it belongs in the dead-letter queue."""
RECEIVE = "sqs:ReceiveMessage"
SEND = "sqs:SendMessage"
_WILDCARD = re.compile(r"[*?]")


# --- REST API: firewall, throttling, authorization ----------------------------------------------------


def _rest_api(graph: ResourceGraph, resource: Resource) -> Resource | None:
    return referenced(graph, resource, resource.get("restApi"), (REST_API,))


def _same_api(graph: ResourceGraph, one: Resource, other: Resource) -> bool:
    """Whether two API Gateway sub-resources belong to one REST API (by reference, else by equal id)."""
    first, second = _rest_api(graph, one), _rest_api(graph, other)
    if first is not None and second is not None:
        return first.urn == second.urn
    return _known_equal(one.get("restApi"), other.get("restApi"))


def _known_equal(one: Any, other: Any) -> bool:
    return isinstance(one, str) and not is_unknown(one) and one == other


def _is_private(api: Resource) -> bool:
    return "PRIVATE" in {str(t).upper() for t in as_list(api.get("endpointConfiguration.types"))}


def _stage_label(stage: Resource) -> str:
    return repr(stage.get("stageName") or stage.get("name") or stage.name)


def _web_acl_protects(stage: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    api = _rest_api(graph, stage)
    if api is not None and _is_private(api):
        return passed(f"REST API {api.name} is PRIVATE: reachable only through the VPC's interface endpoints")
    associations = [
        a
        for a in graph.of_type(WEB_ACL_ASSOCIATION)
        if (named := referenced(graph, a, a.get("resourceArn"), (REST_STAGE,))) is not None
        and named.urn == stage.urn
    ]
    if not associations:
        return failed(
            f"no wafv2 WebAclAssociation names stage {_stage_label(stage)} as its resourceArn: every request "
            "reaches the authorizer and the agents unfiltered"
        )
    problems, acls = [], []
    for association in associations:
        acl = referenced(graph, association, association.get("webAclArn"), (WEB_ACL,))
        if acl is None:
            problems.append(
                f"association {association.name} names webAclArn {shown(association.get('webAclArn'))}, "
                "which is no web ACL of this stack"
            )
            continue
        problem = _web_acl_problem(acl)
        if problem:
            problems.append(problem)
        acls.append(acl.name)
    if problems:
        return failed("; ".join(problems))
    return passed(f"stage {_stage_label(stage)} is behind web ACL {', '.join(acls)}")


def _web_acl_problem(acl: Resource) -> str | None:
    default = acl.get("defaultAction")
    actions = [k for k in ("allow", "block") if isinstance(default, dict) and k in default]
    if not actions:
        return f"web ACL {acl.name} has defaultAction {shown(default)}: neither allow nor block"
    rules = _web_acl_rule_count(acl)
    if rules is None:
        return f"web ACL {acl.name}'s ruleJson is {shown(acl.get('ruleJson'))}: its rules cannot be reviewed"
    if rules == 0:
        return f"web ACL {acl.name} has no rules: it {actions[0]}s every request"
    return None


def _web_acl_rule_count(acl: Resource) -> int | None:
    """The web ACL's rules, from ``rules`` or the raw ``ruleJson`` (``None``: unreadable)."""
    rule_json = acl.get("ruleJson")
    if rule_json is None:
        return len(as_list(acl.get("rules")))
    try:
        parsed = json.loads(rule_json) if isinstance(rule_json, str) and not is_unknown(rule_json) else None
    except ValueError:
        parsed = None
    return len(parsed) if isinstance(parsed, list) else None


def _throttled(stage: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    if stage.type == HTTP_STAGE:
        return _http_stage_throttled(stage)
    entries = [
        s for s in graph.of_type(METHOD_SETTINGS) if _same_api(graph, s, stage) and _for_stage(s, stage)
    ]
    problems = [
        f"MethodSettings {s.name} ({shown(s.get('methodPath'))}): {p}" for s in entries for p in _limits(s)
    ]
    if not any(s.get("methodPath") == ALL_METHODS for s in entries):
        problems.insert(
            0,
            f"no MethodSettings with methodPath '{ALL_METHODS}' throttles stage {_stage_label(stage)}: "
            "it may take all of the account's regional request rate",
        )
    if problems:
        return failed("; ".join(problems))
    return passed(
        f"every method of stage {_stage_label(stage)} is throttled and none traces request or response bodies"
    )


def _for_stage(entry: Resource, stage: Resource) -> bool:
    """Whether method settings are ``stage``'s: by its name, or - unknown until deployment - as a dependency."""
    name = entry.get("stageName")
    if name is None or is_unknown(name):
        return stage.urn in entry.dependencies
    return name == stage.get("stageName")


def _limits(entry: Resource) -> Iterator[str]:
    """What a MethodSettings entry gets wrong: each entry replaces the stage's throttling for its methods,
    and an unset limit is -1, no throttling at all."""
    yield from (f"settings.{p}" for p in _throttling_problems(entry.get("settings") or {}))
    if entry.get("settings.dataTraceEnabled") is True:
        yield "settings.dataTraceEnabled is true: whole requests and responses (prompts, answers) are logged"


def _throttling_problems(settings: dict[str, Any], required: bool = True) -> Iterator[str]:
    for key in ("throttlingRateLimit", "throttlingBurstLimit"):
        value = settings.get(key)
        if value is None and not required:
            continue
        if not _positive(value):
            yield f"{key} is {shown(value)}: unthrottled"


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _http_stage_throttled(stage: Resource) -> Verdict:
    """HTTP and WebSocket APIs: the stage's default route settings throttle, a route override that sets a
    limit sets a positive one (one it leaves unset is the default's), and none traces message bodies."""
    defaults = stage.get("defaultRouteSettings") or {}
    problems = [f"defaultRouteSettings.{p}" for p in _throttling_problems(defaults)]
    for where, route in _routes(stage):
        problems += [f"{where}: {p}" for p in _throttling_problems(route, required=False)]
    for where, settings in (("defaultRouteSettings", defaults), *_routes(stage)):
        if settings.get("dataTraceEnabled") is True:
            problems.append(f"{where}: dataTraceEnabled is true: message bodies go to the logs")
    if problems:
        return failed("; ".join(problems))
    return passed(f"stage {_stage_label(stage)} throttles every route and traces no bodies")


def _routes(stage: Resource) -> Iterator[tuple[str, dict[str, Any]]]:
    for route in as_list(stage.get("routeSettings")):
        if isinstance(route, dict):
            yield f"routeSettings {shown(route.get('routeKey'))}", route


def _method_authorized(method: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    kind = method.get("authorization")
    verb = shown(method.get("httpMethod"))
    if kind == "AWS_IAM":
        return passed(f"method {verb} needs SigV4-signed requests (AWS_IAM)")
    if kind in ("CUSTOM", "COGNITO_USER_POOLS"):
        authorizer = referenced(graph, method, method.get("authorizerId"), (REST_AUTHORIZER,))
        if authorizer is None:
            return failed(
                f"method {verb} is {kind} but authorizerId {shown(method.get('authorizerId'))} is no "
                "authorizer of this stack"
            )
        problem = _authorizer_problem(kind, authorizer)
        if problem:
            return failed(f"method {verb} is {kind}, but {problem}")
        return passed(f"method {verb} admits only the callers authorizer {authorizer.name} accepts")
    if kind == "NONE" and method.get("httpMethod") == "OPTIONS" and _answered_by_mock(graph, method):
        return passed("OPTIONS (CORS preflight, sent without credentials) is answered by a MOCK integration")
    return failed(f"method {verb} has authorization {shown(kind)}: anyone on the internet can call it")


def _authorizer_problem(kind: str, authorizer: Resource) -> str | None:
    """CUSTOM needs a Lambda (TOKEN or REQUEST) authorizer, COGNITO_USER_POOLS one naming user pools."""
    type_ = authorizer.get("type") or "TOKEN"  # API Gateway's default
    uri, pools = authorizer.get("authorizerUri"), authorizer.get("providerArns")
    if kind == "CUSTOM" and (type_ not in ("TOKEN", "REQUEST") or not uri):
        return (
            f"authorizer {authorizer.name} is {type_!r} with authorizerUri {shown(uri)}: no Lambda authorizer"
        )
    if kind == "COGNITO_USER_POOLS" and (type_ != kind or not pools):
        return f"authorizer {authorizer.name} is {type_!r} with providerArns {shown(pools)}: no user pool"
    return None


def _answered_by_mock(graph: ResourceGraph, method: Resource) -> bool:
    """Whether the method's integration is MOCK: API Gateway answers itself and reaches no backend."""
    return any(
        i.get("type") == "MOCK"
        and i.get("httpMethod") == method.get("httpMethod")
        and _known_equal(i.get("resourceId"), method.get("resourceId"))
        and _same_api(graph, i, method)
        for i in graph.of_type(INTEGRATION)
    )


# --- queues --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Redrive:
    """A queue's redrive policy as written (``UNKNOWN`` fields when the whole policy is computed later)."""

    target_arn: Any
    max_receive_count: Any
    problem: str | None = None


def _redrive(queue: Resource) -> _Redrive | None:
    """The queue's ``redrivePolicy`` (a JSON string), or ``None`` when it has none."""
    value = queue.get("redrivePolicy")
    if value is None or value == "":
        return None
    if is_unknown(value):
        return _Redrive(UNKNOWN, UNKNOWN)
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return _Redrive(None, None, f"redrivePolicy is {shown(value)}: not a JSON redrive policy")
    return _Redrive(parsed.get("deadLetterTargetArn"), parsed.get("maxReceiveCount"))


def _dead_letter_target(graph: ResourceGraph, queue: Resource) -> Resource | None:
    """The queue of the stack that ``queue`` moves failed messages to, if any."""
    policy = _redrive(queue)
    if policy is None or policy.problem or not policy.target_arn:
        return None
    return referenced(graph, queue, policy.target_arn, (QUEUE,))


def _dead_letter_queue(queue: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    sources = [
        q.name
        for q in graph.of_type(QUEUE)
        if q.urn != queue.urn
        and (target := _dead_letter_target(graph, q)) is not None
        and target.urn == queue.urn
    ]
    if sources:
        return _kept_long_enough(queue, sources)
    policy = _redrive(queue)
    if policy is None:
        return failed(
            "has no redrivePolicy: a task that fails every time is received again and again, re-running its "
            "agent, until its retention ends and it is lost"
        )
    if policy.problem:
        return failed(policy.problem)
    target = _dead_letter_target(graph, queue)
    if target is None or target.urn == queue.urn:
        return failed(
            f"redrivePolicy.deadLetterTargetArn {shown(policy.target_arn)} is no other queue of this stack"
        )
    count = policy.max_receive_count
    if is_unknown(count):
        return passed(f"moves failed tasks to {target.name} (redrivePolicy known after deployment)")
    number = int(count) if isinstance(count, str) and count.isdigit() else count
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= MAX_RECEIVE_COUNT:
        return failed(
            f"redrivePolicy.maxReceiveCount is {shown(count)}: set 1 to {MAX_RECEIVE_COUNT} receives before "
            f"a task moves to {target.name}"
        )
    return passed(f"moves a task to {target.name} after {number} failed receives")


def _kept_long_enough(queue: Resource, sources: list[str]) -> Verdict:
    retention = queue.get("messageRetentionSeconds")
    of = f"the dead-letter queue of {', '.join(sorted(sources))}"
    if retention == MAX_RETENTION_SECONDS:
        return passed(f"{of}, keeping failed tasks 14 days")
    return failed(
        f"{of}, but messageRetentionSeconds is {shown(retention)}: failed tasks expire before anyone "
        f"investigates them (SQS counts from their first enqueue); set {MAX_RETENTION_SECONDS}"
    )


# --- who receives from a queue -------------------------------------------------------------------------


@dataclass(frozen=True)
class _QueueGrants:
    """What one policy resource lets its role do with queues: the ``Resource`` patterns as written."""

    receive: tuple[tuple[str, Any], ...]
    """(statement label, resource pattern) allowing ``sqs:ReceiveMessage``."""
    send: tuple[Any, ...]
    problems: tuple[str, ...]
    """Documents that cannot be read (they might grant either)."""


def _queue_grants(resource: Resource) -> _QueueGrants:
    """Every Allow statement that grants receiving or sending - through ``sqs:*``, ``*``, ``NotAction`` -
    on a resource that may be a queue (``NotResource`` counts as ``*``: every queue but some)."""
    receive: list[tuple[str, Any]] = []
    send: list[Any] = []
    problems: list[str] = []
    for document in documents(resource):
        if document.problem:
            problems.append(document.problem)
            continue
        for index, statement in enumerate(document.statements):
            if not allows(statement):
                continue
            label = f"{document.where} statement {statement.get('Sid') or index}"
            if "NotResource" in statement:
                label, targets = f"{label} (NotResource)", ["*"]
            else:
                targets = [t for t in as_list(statement.get("Resource")) if _may_be_queue(t)]
            if _allows_action(statement, RECEIVE):
                receive += [(label, target) for target in targets]
            if _allows_action(statement, SEND):
                send += targets
    return _QueueGrants(tuple(receive), tuple(send), tuple(problems))


def _allows_action(statement: dict[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not any(action_covers(p, action) for p in as_list(statement["NotAction"]))
    return any(action_covers(p, action) for p in as_list(statement.get("Action")))


def _may_be_queue(target: Any) -> bool:
    """``*``, an ARN whose service may be SQS, or a value that cannot be read (it might be a queue)."""
    if not isinstance(target, str) or is_unknown(target) or target == "*":
        return True
    arn = Arn.parse(target)
    return arn is not None and glob_matches("sqs", arn.service)


@dataclass(frozen=True)
class _Identity:
    """The role a policy belongs to: ``key`` is the same for every policy of one role."""

    key: str
    label: str


def _identity_of(graph: ResourceGraph, resource: Resource) -> _Identity:
    """A role itself, or the role a role policy's ``role`` names (by id, reference or name)."""
    if resource.type == ROLE:
        return _Identity(resource.urn, _role_label(resource))
    value = resource.get("role")
    role = referenced(graph, resource, value, (ROLE,)) or next(
        (r for r in graph.of_type(ROLE) if isinstance(value, str) and r.get("name") == value), None
    )
    if role is not None:
        return _Identity(role.urn, _role_label(role))
    if isinstance(value, str) and not is_unknown(value):
        return _Identity(f"role:{value}", f"role {value}")
    return _Identity(resource.urn, f"the role of {resource.name}")


def _role_label(role: Resource) -> str:
    return f"role {role.get('name') or role.name}"


def _policies(graph: ResourceGraph) -> tuple[tuple[_Identity, _QueueGrants], ...]:
    """Every role's and role policy's queue grants (asked once per graph: see ``ResourceGraph.derived``)."""
    return tuple(
        (_identity_of(graph, resource), _queue_grants(resource))
        for resource in (*graph.of_type(ROLE_POLICY), *graph.of_type(ROLE))
    )


def _one_receiver(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    grants = _queue_grants(resource)
    if grants.problems:
        return failed("; ".join(grants.problems))
    if not grants.receive:
        return passed(f"grants no {RECEIVE}")
    me = _identity_of(graph, resource)
    others: dict[str, tuple[str, list[str]]] = {}
    sends: list[str] = []
    for who, found in graph.derived(_policies):
        if who.key == me.key:
            sends += [t for t in found.send if isinstance(t, str)]
        else:
            entry = others.setdefault(who.key, (who.label, []))
            entry[1].extend(t for _label, t in found.receive if isinstance(t, str) and not is_unknown(t))
    problems, queues = [], []
    for label, target in grants.receive:
        problem = _receive_problem(graph, me, label, target, others, sends)
        if problem:
            problems.append(problem)
        else:
            queues.append(_queue_name(target))
    if problems:
        return failed("; ".join(problems))
    return passed(f"{me.label} is the only role that may receive from {', '.join(sorted(set(queues)))}")


def _receive_problem(
    graph: ResourceGraph,
    me: _Identity,
    label: str,
    target: Any,
    others: dict[str, tuple[str, list[str]]],
    sends: list[str],
) -> str | None:
    if not isinstance(target, str) or is_unknown(target):
        return f"{label} grants {RECEIVE} on {shown(target)}, which cannot be reviewed before deployment"
    if _WILDCARD.search(target):
        matched = sorted(
            q.get("name") or q.name for q in graph.of_type(QUEUE) if q.arn and glob_matches(q.arn, target)
        )
        return (
            f"{label} grants {RECEIVE} on {target!r}: every queue it matches, present and future "
            f"({', '.join(matched) if matched else 'none of this stack yet'})"
        )
    sharing = sorted(
        who for who, patterns in others.values() if any(glob_matches(target, p) for p in patterns)
    )
    if not sharing:
        return None
    also = (
        "; it sends to that queue too, so it can take back tasks it hands to another agent"
        if any(glob_matches(target, p) for p in sends)
        else ""
    )
    return f"{label}: {me.label} receives from {_queue_name(target)}, and so may {', '.join(sharing)}{also}"


def _queue_name(arn: str) -> str:
    parsed = Arn.parse(arn)
    return parsed.resource if parsed is not None else arn


# --- the vector store ----------------------------------------------------------------------------------


def _cluster_locked(cluster: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    problems = []
    if cluster.get("storageEncrypted") is not True:
        problems.append(
            f"storageEncrypted is {shown(cluster.get('storageEncrypted'))}: vectors, document text and "
            "snapshots are stored unencrypted"
        )
    if cluster.get("iamDatabaseAuthenticationEnabled") is not True:
        problems.append(
            f"iamDatabaseAuthenticationEnabled is {shown(cluster.get('iamDatabaseAuthenticationEnabled'))}: "
            "agents would log in with a long-lived password instead of 15-minute IAM tokens"
        )
    if cluster.get("manageMasterUserPassword") is not True:
        problems.append(
            f"manageMasterUserPassword is {shown(cluster.get('manageMasterUserPassword'))}: RDS neither "
            "generates nor rotates the master password in Secrets Manager"
        )
    written = [key for key in ("masterPassword", "masterPasswordWo") if cluster.get(key) not in (None, "")]
    if written:
        problems.append(f"{' and '.join(written)} is set: the master password is in the program")
    if problems:
        return failed("; ".join(problems))
    return passed("encrypted, IAM authentication on, master password generated and rotated by RDS")


def _not_public(instance: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    value = instance.get("publiclyAccessible")
    if value is False:
        return passed("publiclyAccessible is false: its endpoint resolves to private addresses only")
    if value is None:
        return failed(
            "publiclyAccessible is unset: AWS then decides by the subnet group (public in the default one "
            "or in a VPC with an internet gateway)"
        )
    return failed(f"publiclyAccessible is {shown(value)}: the database endpoint resolves to a public address")


RULES = (
    Rule(
        id="AGS-AWS-017",
        title="Public REST API stages are behind a WAF web ACL with rules",
        severity=Severity.HIGH,
        rationale=(
            "The REST API is the agents' internet-facing front door. Without a web ACL every request - floods "
            "from one address, oversized bodies, known exploit patterns - reaches the Lambda authorizer and "
            "the orchestrator, each costing compute and, past the authorizer, model tokens. A web ACL without "
            "rules filters nothing."
        ),
        remediation=(
            "Associate the stage with a REGIONAL wafv2 web ACL of the stack (`WebAclAssociation` with "
            "`resourceArn` = the stage's ARN) that has a default action and rules - managed rule groups, a body "
            "size limit, a rate limit per address (components/aws/waf.WebFirewall does this). PRIVATE APIs "
            "are exempt."
        ),
        types=(REST_STAGE,),
        check=_web_acl_protects,
        reference="https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-control-access-aws-waf.html",
        from_stage=Stage.FOUNDATION,
        needs_graph=True,
    ),
    Rule(
        id="AGS-AWS-018",
        title="API stages throttle every method and never trace request bodies",
        severity=Severity.HIGH,
        rationale=(
            "An unthrottled stage shares the account's regional request limit with every other API, so one "
            "caller's loop can starve them all and run up the agents' model bill. Data tracing writes full "
            "request and response bodies - prompts, retrieved documents, answers - to CloudWatch Logs, "
            "where log readers who may not see conversations can read them."
        ),
        remediation=(
            f"REST APIs: give each stage a `MethodSettings` with `methodPath: '{ALL_METHODS}'` and positive "
            "`settings.throttlingRateLimit` and `throttlingBurstLimit` (and the same on every method "
            "override), `dataTraceEnabled: false`. HTTP APIs: positive limits in `defaultRouteSettings`."
        ),
        types=(REST_STAGE, HTTP_STAGE),
        check=_throttled,
        reference="https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html",
        from_stage=Stage.FOUNDATION,
        needs_graph=True,
    ),
    Rule(
        id="AGS-AWS-019",
        title="Every REST API method requires a Lambda, Cognito or IAM authorization",
        severity=Severity.CRITICAL,
        rationale=(
            "A method with authorization NONE lets anyone on the internet run the orchestrator: every request "
            "costs model tokens, and the runtime has no verified caller to apply tenants, budgets and tool "
            "permissions to. Only a CORS preflight answered by a MOCK integration reaches no backend."
        ),
        remediation=(
            "Set `authorization: CUSTOM` with `authorizerId` of a TOKEN or REQUEST authorizer of the stack "
            "(RestGateway does this), `COGNITO_USER_POOLS` with a user-pool authorizer, or `AWS_IAM` for "
            "callers that sign requests."
        ),
        types=(METHOD,),
        check=_method_authorized,
        reference="https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-control-access-to-api.html",
        from_stage=Stage.FOUNDATION,
        needs_graph=True,
    ),
    Rule(
        id="AGS-AWS-020",
        title="Every SQS queue has a dead-letter queue that keeps failed tasks 14 days",
        severity=Severity.MEDIUM,
        rationale=(
            "Without a redrive policy a task that always fails is received over and over - each time its "
            "agent runs and calls the model again - until its retention ends and it vanishes unexamined. A "
            "dead-letter queue with a short retention loses the failed tasks before anyone investigates."
        ),
        remediation=(
            "Set `redrivePolicy` to `{deadLetterTargetArn: <a queue of the stack>, maxReceiveCount: 1.."
            f"{MAX_RECEIVE_COUNT}}}` and `messageRetentionSeconds: {MAX_RETENTION_SECONDS}` on the "
            "dead-letter queue (components/aws/queues.TaskQueues does this)."
        ),
        types=(QUEUE,),
        check=_dead_letter_queue,
        reference="https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html",
        from_stage=Stage.FOUNDATION,
        needs_graph=True,
    ),
    Rule(
        id="AGS-AWS-021",
        title="Aurora clusters are encrypted and admit IAM authentication, with a password RDS manages",
        severity=Severity.HIGH,
        rationale=(
            "The vector store holds the text of every ingested document. Unencrypted storage exposes it in "
            "snapshots and on disk; password logins mean a long-lived secret every agent must hold; a master "
            "password in the program lands in its state and history, and nothing rotates it."
        ),
        remediation=(
            "Set `storageEncrypted: true`, `iamDatabaseAuthenticationEnabled: true` and "
            "`manageMasterUserPassword: true`, and remove `masterPassword`/`masterPasswordWo`: RDS then "
            "keeps and rotates the master password in Secrets Manager and agents connect with IAM tokens."
        ),
        types=(DB_CLUSTER,),
        check=_cluster_locked,
        reference="https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.IAMDBAuth.html",
        from_stage=Stage.FOUNDATION,
    ),
    Rule(
        id="AGS-AWS-022",
        title="Database instances are explicitly not publicly accessible",
        severity=Severity.HIGH,
        rationale=(
            "A publicly accessible instance gets an endpoint that resolves to a public address: only its "
            "security group stands between the internet and the stack's documents. Left unset, AWS decides "
            "by the subnet group, so a change of network makes the database public silently."
        ),
        remediation="Set `publiclyAccessible: false` on every cluster instance and DB instance.",
        types=(DB_CLUSTER_INSTANCE, DB_INSTANCE),
        check=_not_public,
        reference="https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_VPC.WorkingWithRDSInstanceinaVPC.html#USER_VPC.Hiding",
        from_stage=Stage.FOUNDATION,
    ),
    Rule(
        id="AGS-AWS-023",
        title="Each SQS queue has exactly one role that may receive from it",
        severity=Severity.HIGH,
        rationale=(
            "A task queue belongs to the agent that receives from it. A second role that may receive - through "
            "a shared grant, `sqs:*` or a queue wildcard - takes tasks meant for another agent, deletes them, "
            "or answers them with its own tools; one that may also send to the queue can hand tasks to itself "
            "under another agent's name. Wildcards cover queues added later too."
        ),
        remediation=(
            f"Grant `{RECEIVE}` only to the consuming agent's role, on its own queue's ARN "
            "(TaskQueues.grant_receive), and `sqs:SendMessage` to senders only (TaskQueues.grant_send); no "
            "`sqs:*`, no `*` or wildcard queue ARNs."
        ),
        types=(ROLE_POLICY, ROLE),
        check=_one_receiver,
        reference="https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-security-best-practices.html",
        from_stage=Stage.FOUNDATION,
        needs_graph=True,
    ),
)
