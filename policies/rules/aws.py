"""AWS: what checkov cannot judge in a pulumi-aws stack.

checkov reads one resource's attributes at a time and knows nothing of agents: it cannot tell that a role may
call every Bedrock model, that the function calling Bedrock runs without the stack's guardrail, that an IAM
statement's ``*`` resource is for an action AWS does not scope, or which environment a table belongs to.
These rules read the graph's pulumi-aws inputs (IAM documents are the JSON strings in ``policy`` and
``assumeRolePolicy``) and the runtime settings of each Lambda function, so the same verdicts hold in
``agentstage check`` and in the CrossGuard pack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from agent_runtime.settings_contract import env_name
from core.aws_actions import UNSCOPED_ACTIONS as AWS_UNSCOPED_ACTIONS
from core.graph import SECRET, Resource, ResourceGraph
from core.workloads import LAMBDA_FUNCTION, settings
from policies.findings import Severity
from policies.rules.context import StackContext
from policies.rules.model import Rule, Verdict, failed, glob_matches, passed
from policies.rules.predicates import is_unknown, shown

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
USER_POLICY = "aws:iam/userPolicy:UserPolicy"
GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
IDENTITY_POLICIES = (ROLE_POLICY, POLICY, USER_POLICY, GROUP_POLICY, ROLE)
"""Where identity-based policy documents live (a role keeps its inline ones in ``inlinePolicies``)."""
ATTACHMENTS = (
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
)
GUARDRAIL = "aws:bedrock/guardrail:Guardrail"
KMS_KEY = "aws:kms/key:Key"
KMS_ALIAS = "aws:kms/alias:Alias"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TABLE = "aws:dynamodb/table:Table"
SECRET_TYPE = "aws:secretsmanager/secret:Secret"
TOPIC = "aws:sns/topic:Topic"
QUEUE = "aws:sqs/queue:Queue"
ROUTE = "aws:apigatewayv2/route:Route"
AUTHORIZER = "aws:apigatewayv2/authorizer:Authorizer"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
PERMISSION = "aws:lambda/permission:Permission"

PROVIDER_SETTING = env_name("llm_provider")
GUARDRAIL_SETTING = env_name("bedrock_guardrail_id")
GUARDRAIL_VERSION_SETTING = env_name("bedrock_guardrail_version")
ENVIRONMENT_TAG = "agentstage-environment"
PROTECTED_ENVIRONMENTS = frozenset({"prod", "production", "prd"})

UNSCOPED_ACTIONS = frozenset(action.lower() for action in AWS_UNSCOPED_ACTIONS)
"""Actions the Service Authorization Reference lists without a resource type: they can only name ``*``.
Every other action names the ARNs it acts on."""

HARMFUL_CONTENT = ("HATE", "INSULTS", "MISCONDUCT", "SEXUAL", "VIOLENCE")
PROMPT_ATTACK = "PROMPT_ATTACK"
_INVOKE_EXAMPLE = "bedrock:invokemodel"
_WILDCARD = re.compile(r"[*?]")


# --- policy documents ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One policy document of a resource: where it is, and its statements (or why it cannot be read)."""

    where: str
    statements: list[dict[str, Any]]
    problem: str | None = None


def documents(resource: Resource) -> list[Document]:
    """The identity-based policy documents ``resource`` carries (a role: its inline policies)."""
    if resource.type == ROLE:
        entries = [
            (f"inlinePolicies[{p.get('name', '?')}].policy", p.get("policy"))
            for p in resource.get("inlinePolicies") or []
            if isinstance(p, dict)
        ]
    else:
        entries = [("policy", resource.get("policy"))]
    return [_document(where, value) for where, value in entries]


def _document(where: str, value: Any) -> Document:
    try:
        parsed = json.loads(value) if isinstance(value, str) and value not in (SECRET,) else value
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return Document(
            where, [], f"{where} is {_described(value)}: not a policy document that can be reviewed"
        )
    statements = parsed.get("Statement")
    statements = statements if isinstance(statements, list) else [statements]
    return Document(where, [s for s in statements if isinstance(s, dict)])


def _described(value: Any) -> str:
    return shown(value) if value is None or value in (SECRET,) or is_unknown(value) else "not valid JSON"


def allows(statement: dict[str, Any]) -> bool:
    return statement.get("Effect") == "Allow"


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _label(statement: dict[str, Any], index: int) -> str:
    return f"statement {statement.get('Sid') or index}"


def _condition_keys(statement: dict[str, Any]) -> dict[str, Any]:
    """Condition key (lower case) -> value, whatever the operator."""
    condition = statement.get("Condition")
    found: dict[str, Any] = {}
    for block in condition.values() if isinstance(condition, dict) else ():
        if isinstance(block, dict):
            found.update({str(key).lower(): value for key, value in block.items()})
    return found


def action_covers(pattern: Any, action: str) -> bool:
    """Whether an IAM action pattern (``bedrock:Invoke*``, ``*``) grants ``action`` (IAM compares actions
    without regard to case)."""
    return isinstance(pattern, str) and glob_matches(action.lower(), pattern.lower())


# --- ARNs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arn:
    service: str
    region: str
    account: str
    resource: str

    @classmethod
    def parse(cls, value: Any) -> Arn | None:
        if not isinstance(value, str):
            return None
        parts = value.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn":
            return None
        return cls(service=parts[2], region=parts[3], account=parts[4], resource=parts[5])

    @property
    def resource_type(self) -> str:
        return re.split(r"[/:]", self.resource, maxsplit=1)[0]

    @property
    def resource_id(self) -> str:
        parts = re.split(r"[/:]", self.resource, maxsplit=1)
        return parts[1] if len(parts) == 2 else ""


def _every_resource(value: str) -> bool:
    """``*``, or an ARN naming every resource of a type (``table/*``, ``arn:aws:s3:::*``, service ``*``)."""
    if value == "*":
        return True
    arn = Arn.parse(value)
    if arn is None:
        return False
    if "*" in arn.service or arn.resource == "*":
        return True
    # S3 object ARNs have no type prefix: ``bucket/*`` is every object of one bucket.
    return arn.service != "s3" and arn.resource_id == "*"


# --- references between resources ----------------------------------------------------------------------


def _identities(resource: Resource) -> set[str]:
    return {v for v in (resource.mock_id, resource.urn, resource.arn) if v}


def referenced(graph: ResourceGraph, resource: Resource, value: Any, types: Iterable[str]) -> Resource | None:
    """The resource of ``types`` that ``value`` (an id, name or ARN) names.

    When that cannot be compared - the value is unknown until deployment, or the graph is CrossGuard's,
    whose resources carry their URNs instead of ids - it is the resource ``value`` was computed from:
    ``resource``'s only dependency of those types.
    """
    candidates = [r for type_ in types for r in graph.of_type(type_)]
    if isinstance(value, str) and not is_unknown(value):
        named = [r for r in candidates if value in _identities(r)]
        if named:
            return named[0]
        if any(r.mock_id != r.urn for r in candidates):
            return None  # ids are known and this one names none of them
    computed_from = [r for r in candidates if r.urn in resource.dependencies]
    return computed_from[0] if len(computed_from) == 1 else None


# --- Bedrock -------------------------------------------------------------------------------------------


def _bedrock_scoped(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    problems, granted = [], 0
    for document in documents(resource):
        if document.problem:
            problems.append(document.problem)
            continue
        for index, statement in enumerate(document.statements):
            actions = as_list(statement.get("Action"))
            if not allows(statement) or not any(_grants_invoke(a) for a in actions):
                continue
            granted += 1
            label = f"{document.where} {_label(statement, index)}"
            if "NotResource" in statement:
                problems.append(f"{label} grants Bedrock invocation on NotResource (every model but some)")
            for target in as_list(statement.get("Resource")):
                problem = _model_problem(target, statement)
                if problem:
                    problems.append(f"{label} grants {sorted(map(str, actions))} on {target!r}: {problem}")
    if problems:
        return failed("; ".join(problems))
    if not granted:
        return passed("grants no Bedrock invocation")
    return passed(f"{_count(granted, 'statement')} granting Bedrock invocation, each on named models")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _grants_invoke(action: Any) -> bool:
    return isinstance(action, str) and (
        action.lower().startswith("bedrock:invoke") or action_covers(action, _INVOKE_EXAMPLE)
    )


def _model_problem(target: Any, statement: dict[str, Any]) -> str | None:
    if target == "*":
        return "every model, in every region and account"
    arn = Arn.parse(target)
    if arn is None or arn.service != "bedrock":
        return "not a Bedrock model ARN"
    if _WILDCARD.search(arn.resource):
        return "a wildcard model"
    if _WILDCARD.search(arn.account):
        return "any account's model"
    if _WILDCARD.search(arn.region) and "bedrock:inferenceprofilearn" not in _condition_keys(statement):
        return (
            "the model in every region, callable directly (only a cross-region inference profile - the "
            "bedrock:InferenceProfileArn condition - may route to other regions)"
        )
    return None


def _runtime_values(resource: Resource) -> dict[str, Any]:
    return {setting.name: setting.value for setting in settings(resource)}


def _calls_bedrock(resource: Resource) -> bool:
    return _runtime_values(resource).get(PROVIDER_SETTING) == "bedrock"


def _guardrail_attached(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    values = _runtime_values(resource)
    guardrail_id = values.get(GUARDRAIL_SETTING)
    guardrails = graph.of_type(GUARDRAIL)
    if not guardrail_id:
        return failed(
            f"environment.variables has no {GUARDRAIL_SETTING}: the runtime calls Bedrock without a guardrail"
        )
    if not guardrails:
        return failed(
            f"{GUARDRAIL_SETTING} is {shown(guardrail_id)}, but the stack defines no Bedrock guardrail"
        )
    version = shown(values.get(GUARDRAIL_VERSION_SETTING))
    if is_unknown(guardrail_id):
        return passed(f"{GUARDRAIL_SETTING} is set from the stack's guardrail (version {version})")
    match = next((g for g in guardrails if _names_guardrail(guardrail_id, g)), None)
    if match is not None:
        return passed(f"calls Bedrock through guardrail {match.name} (version {version})")
    if any(g.arn is None for g in guardrails):  # ids known only after deployment: the stack has one
        return passed(f"{GUARDRAIL_SETTING} is set and the stack defines a guardrail (version {version})")
    return failed(
        f"{GUARDRAIL_SETTING} is {guardrail_id!r}, which is none of the stack's guardrails "
        f"({', '.join(g.name for g in guardrails)})"
    )


def _names_guardrail(value: Any, guardrail: Resource) -> bool:
    """Bedrock takes a guardrail's id or ARN as its identifier."""
    if not isinstance(value, str) or guardrail.arn is None:
        return False
    return value == guardrail.arn or guardrail.arn.endswith(f":guardrail/{value}")


def _guardrail_filters(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    filters = {
        str(f.get("type", "")).upper(): f
        for f in resource.get("contentPolicyConfig.filtersConfigs") or []
        if isinstance(f, dict)
    }
    weak = [
        f"{kind} (input)"
        for kind in (*HARMFUL_CONTENT, PROMPT_ATTACK)
        if not _blocks(filters.get(kind), "input")
    ]
    weak += [f"{kind} (output)" for kind in HARMFUL_CONTENT if not _blocks(filters.get(kind), "output")]
    if weak:
        return failed(f"contentPolicyConfig.filtersConfigs does not filter and block: {', '.join(weak)}")
    return passed(
        "blocks hate, insults, misconduct, sexual and violent content both ways, and prompt attacks"
    )


def _blocks(entry: dict[str, Any] | None, side: str) -> bool:
    """A filter that acts on ``side``: a strength above NONE, enabled, and an action that blocks."""
    if entry is None:
        return False
    strength = str(entry.get(f"{side}Strength") or "NONE").upper()
    action = str(entry.get(f"{side}Action") or "BLOCK").upper()  # Bedrock blocks unless told to only detect
    return strength != "NONE" and entry.get(f"{side}Enabled") is not False and action == "BLOCK"


# --- keys ----------------------------------------------------------------------------------------------

CUSTOMER_KEY: dict[str, str] = {
    LOG_GROUP: "kmsKeyId",
    TABLE: "serverSideEncryption.kmsKeyArn",
    SECRET_TYPE: "kmsKeyId",
    TOPIC: "kmsMasterKeyId",
    QUEUE: "kmsMasterKeyId",
    LAMBDA_FUNCTION: "kmsKeyArn",
}
"""Where each type names the KMS key it is encrypted with."""

_KEY_ID = re.compile(r"^(mrk-)?[0-9a-f]{8}(-?[0-9a-f]{4}){3}-?[0-9a-f]{12}$|^mrk-[0-9a-f]{32}$")


def _customer_managed_key(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    path = CUSTOMER_KEY[resource.type]
    if resource.type == LAMBDA_FUNCTION and not resource.get("environment.variables"):
        return passed("has no environment variables to encrypt")
    if resource.type == TABLE and resource.get("serverSideEncryption.enabled") is not True:
        return failed(
            f"serverSideEncryption.enabled is {shown(resource.get('serverSideEncryption.enabled'))}: "
            "the table is encrypted with a key AWS owns, outside the account's control and audit"
        )
    value = resource.get(path)
    if not value:
        return failed(f"{path} is {shown(value)}: encrypted with a key AWS owns or manages, not the stack's")
    if isinstance(value, str) and "alias/aws/" in value:
        return failed(f"{path} is {value!r}: an AWS managed key, whose policy the account cannot restrict")
    key = referenced(graph, resource, value, (KMS_KEY, KMS_ALIAS))
    if key is not None:
        return passed(f"{path} is the stack's key {key.name}")
    arn = Arn.parse(value)
    if arn is not None and arn.service == "kms" and arn.resource_type in ("key", "alias"):
        return passed(f"{path} is customer-managed key {value!r}")
    if isinstance(value, str) and (_KEY_ID.match(value) or value.startswith("alias/")):
        return passed(f"{path} is customer-managed key {value!r}")
    return failed(f"{path} is {shown(value)}: not a KMS key of this stack or a customer-managed key ARN")


# --- entry points --------------------------------------------------------------------------------------


def _route_authenticated(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    kind = resource.get("authorizationType")
    route = resource.get("routeKey")
    if kind == "AWS_IAM":
        return passed(f"route {shown(route)} needs SigV4-signed requests (AWS_IAM)")
    if kind != "JWT":
        return failed(f"route {shown(route)} has authorizationType {shown(kind)}: anyone can call it")
    authorizer_id = resource.get("authorizerId")
    if not authorizer_id:
        return failed(f"route {shown(route)} is JWT but names no authorizerId")
    authorizer = referenced(graph, resource, authorizer_id, (AUTHORIZER,))
    if authorizer is None:
        return failed(f"authorizerId {shown(authorizer_id)} is no authorizer of this stack")
    config = authorizer.get("jwtConfiguration") or {}
    if authorizer.get("authorizerType") != "JWT" or not config.get("issuer") or not config.get("audiences"):
        return failed(
            f"authorizer {authorizer.name} is {shown(authorizer.get('authorizerType'))} with issuer "
            f"{shown(config.get('issuer'))} and audiences {shown(config.get('audiences'))}: it checks no JWT"
        )
    return passed(
        f"route {shown(route)} admits JWTs of {config['issuer']} only (authorizer {authorizer.name})"
    )


def _function_url_authenticated(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    kind = resource.get("authorizationType")
    if kind == "AWS_IAM":
        return passed("authorizationType is AWS_IAM: callers sign their requests")
    return failed(f"authorizationType is {shown(kind)}: the function URL is open to the internet")


def _permission_scoped(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    principal = resource.get("principal")
    source_arn = resource.get("sourceArn")
    if principal == "*":
        return failed("principal is '*': any AWS account may invoke the function")
    if not isinstance(principal, str) or not principal.endswith(".amazonaws.com"):
        return passed(f"principal is {shown(principal)}: a named account or role")
    if principal == "apigateway.amazonaws.com":
        arn = Arn.parse(source_arn)
        api = arn.resource.split("/", 1)[0] if arn else ""
        if arn is None or arn.service != "execute-api" or not api or _WILDCARD.search(api + arn.account):
            return failed(
                f"sourceArn is {shown(source_arn)}: any API Gateway API (of any account) may invoke the function"
            )
        return passed(f"only API {api} may invoke the function (sourceArn {source_arn})")
    if source_arn or resource.get("sourceAccount"):
        return passed(
            f"{principal} may invoke it for {shown(source_arn or resource.get('sourceAccount'))} only"
        )
    return failed(
        f"principal {principal} without sourceArn or sourceAccount: any account's {principal} resource"
    )


# --- IAM -----------------------------------------------------------------------------------------------


def _least_privilege(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    problems, checked = [], 0
    for document in documents(resource):
        if document.problem:
            problems.append(document.problem)
            continue
        for index, statement in enumerate(document.statements):
            if not allows(statement):
                continue
            checked += 1
            label = f"{document.where} {_label(statement, index)}"
            problems += [f"{label}: {p}" for p in _statement_problems(statement)]
    if problems:
        return failed("; ".join(problems))
    if resource.type == ROLE and not checked:
        return passed("has no inline policy documents")
    return passed(f"{_count(checked, 'Allow statement')}, each with exact actions on exact resources")


NARROWING_CONDITIONS: dict[str, frozenset[str]] = {
    # Network interfaces are created before their ids exist: the subnet or VPC they are in narrows them.
    "ec2:network-interface": frozenset({"ec2:subnet", "ec2:vpc"}),
}
"""Resource types AWS cannot name in advance, and the condition keys that scope every one of them."""


def _narrowed_by_condition(resource: str, statement: dict[str, Any]) -> bool:
    arn = Arn.parse(resource)
    keys = NARROWING_CONDITIONS.get(f"{arn.service}:{arn.resource_type}") if arn else None
    if not keys:
        return False
    conditions = {key.lower(): value for key, value in _condition_keys(statement).items()}
    return any(
        key in conditions and all(isinstance(v, str) and "*" not in v for v in as_list(conditions[key]))
        for key in keys
    )


def _statement_problems(statement: dict[str, Any]) -> Iterator[str]:
    if "NotAction" in statement:
        yield "NotAction allows every action except those listed"
    if "NotResource" in statement:
        yield "NotResource allows every resource except those listed"
    actions = [str(a) for a in as_list(statement.get("Action"))]
    wildcards = [a for a in actions if a == "*" or a.split(":", 1)[-1] == "*" or "*" in a.split(":", 1)[0]]
    if wildcards:
        yield f"Action {wildcards} allows every action of the service, present and future"
    broad = [
        r
        for r in as_list(statement.get("Resource"))
        if isinstance(r, str) and _every_resource(r) and not _narrowed_by_condition(r, statement)
    ]
    scoped = sorted(a for a in actions if a.lower() not in UNSCOPED_ACTIONS)
    if broad and scoped:
        yield f"Resource {broad} for {scoped}, which AWS scopes to resources: name their ARNs"
    unknown = [r for r in as_list(statement.get("Resource")) if not isinstance(r, str) or is_unknown(r)]
    if unknown:
        yield f"Resource {[shown(r) for r in unknown]} cannot be reviewed before deployment"


_AWS_MANAGED = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/(.+/)?(?P<name>[^/]+)$")


def _broad_managed_policy(arn: Any) -> bool:
    match = _AWS_MANAGED.match(arn) if isinstance(arn, str) else None
    if match is None:
        return False
    name = match.group("name")
    return name.startswith("AdministratorAccess") or name == "PowerUserAccess" or name.endswith("FullAccess")


def _no_broad_managed_policies(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    arns = (
        [("managedPolicyArns", a) for a in resource.get("managedPolicyArns") or []]
        if resource.type == ROLE
        else [("policyArn", resource.get("policyArn"))]
    )
    if not arns:
        return passed("attaches no managed policy")
    problems, attached = [], []
    for where, arn in arns:
        if _broad_managed_policy(arn):
            problems.append(f"{where} attaches {arn}")
        elif is_unknown(arn) or not arn:
            own = referenced(graph, resource, arn, (POLICY,))
            if own is None:
                problems.append(f"{where} is {shown(arn)}: the attached policy cannot be reviewed")
            else:
                attached.append(f"the stack's policy {own.name}")
        else:
            attached.append(str(arn))
    if problems:
        return failed("; ".join(problems))
    return passed(f"attaches {', '.join(attached)}")


_SOURCE_KEYS = ("aws:sourceaccount", "aws:sourcearn")


def _trust_scoped(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    document = _document("assumeRolePolicy", resource.get("assumeRolePolicy"))
    if document.problem:
        return failed(document.problem)
    problems, services = [], []
    for index, statement in enumerate(document.statements):
        if not allows(statement):
            continue
        principal = statement.get("Principal")
        label = _label(statement, index)
        if principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))):
            problems.append(f"{label} trusts any principal ('*')")
            continue
        named = as_list(principal.get("Service")) if isinstance(principal, dict) else []
        if not named:
            continue
        services += [str(s) for s in named]
        keys = _condition_keys(statement)
        source = {k: keys[k] for k in _SOURCE_KEYS if k in keys}
        if not source:
            problems.append(
                f"{label} lets {named} assume the role on behalf of any account (no aws:SourceAccount condition)"
            )
        elif any(
            _WILDCARD.search(str(v)) or is_unknown(v) for value in source.values() for v in as_list(value)
        ):
            problems.append(f"{label} scopes {named} with {source}, which names no single account")
    if problems:
        return failed("; ".join(problems))
    if not services:
        return passed("trusts no AWS service principal")
    return passed(f"{', '.join(services)} may assume it only for this stack's account")


# --- state and logs ------------------------------------------------------------------------------------


def _point_in_time_recovery(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    enabled = resource.get("pointInTimeRecovery.enabled")
    if enabled is True:
        return passed("point-in-time recovery is on (any second of the last 35 days)")
    return failed(f"pointInTimeRecovery.enabled is {shown(enabled)}: a bad write or delete cannot be undone")


def environment_of(resource: Resource, graph: ResourceGraph) -> str | None:
    """The ``agentstage-environment`` tag of ``resource``, else of the stack's other resources."""
    for candidate in (resource, *graph.cloud_resources()):
        tags = candidate.get("tags")
        value = tags.get(ENVIRONMENT_TAG) if isinstance(tags, dict) else None
        if isinstance(value, str) and value and not is_unknown(value):
            return value
    return None


def _deletion_protection(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    environment = environment_of(resource, graph)
    enabled = resource.get("deletionProtectionEnabled")
    if enabled is True:
        return passed(f"deletion protection is on ({ENVIRONMENT_TAG} {shown(environment)})")
    if environment is not None and environment.lower() not in PROTECTED_ENVIRONMENTS:
        return passed(f"{ENVIRONMENT_TAG} is {environment!r}: deletion protection is for production only")
    why = (
        f"{ENVIRONMENT_TAG} is {environment!r}"
        if environment
        else f"no {ENVIRONMENT_TAG} tag says it is not production"
    )
    return failed(f"deletionProtectionEnabled is {shown(enabled)} and {why}: one delete call drops the table")


def _log_retention(resource: Resource, _graph: ResourceGraph, ctx: StackContext) -> Verdict:
    days = resource.get("retentionInDays")
    if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
        return failed(
            f"retentionInDays is {shown(days)}: the logs never expire (and are never reviewed for it)"
        )
    if days < ctx.log_retention_days:
        return failed(f"retentionInDays is {days}; the stack requires at least {ctx.log_retention_days} days")
    return passed(f"keeps logs {days} days (stack minimum {ctx.log_retention_days})")


RULES = (
    Rule(
        id="AGS-AWS-004",
        title="Bedrock invocation is granted on named models only",
        severity=Severity.HIGH,
        rationale=(
            "`bedrock:InvokeModel` on `*` or on a wildcard model lets a compromised or prompt-injected agent call "
            "every model the account has access to - the most expensive ones, models without the stack's "
            "evaluation, and, with a region wildcard, models in regions its data must not reach."
        ),
        remediation=(
            "Grant `bedrock:InvokeModel`/`InvokeModelWithResponseStream` on each model's foundation-model ARN in "
            "the stack's region; for a cross-region inference profile, on the profile's ARN plus its model in "
            "`arn:aws:bedrock:*::foundation-model/<model>` with a `bedrock:InferenceProfileArn` condition "
            "(BedrockModels.grant_invoke does this)."
        ),
        types=IDENTITY_POLICIES,
        check=_bedrock_scoped,
        reference="https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html",
    ),
    Rule(
        id="AGS-AWS-005",
        title="Every function that calls Bedrock runs with the stack's guardrail",
        severity=Severity.HIGH,
        rationale=(
            "Bedrock applies a guardrail only to calls that name it. Without the guardrail id the runtime sends "
            "every prompt, retrieved document and tool result to the model unfiltered, and returns whatever the "
            "model answers - no prompt-attack screening, no harmful-content filter."
        ),
        remediation=(
            f"Set {GUARDRAIL_SETTING} (and {GUARDRAIL_VERSION_SETTING}) in the function's environment to the "
            "stack's `bedrock:Guardrail` and its published version (BedrockModels.runtime_settings does this)."
        ),
        types=(LAMBDA_FUNCTION,),
        check=_guardrail_attached,
        applies=_calls_bedrock,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/bedrock/latest/userguide/guardrails-use-converse-api.html",
    ),
    Rule(
        id="AGS-AWS-006",
        title="Bedrock guardrails block harmful content and prompt attacks",
        severity=Severity.HIGH,
        rationale=(
            "A guardrail without content filters passes harmful prompts to the model and harmful answers to "
            "users; without the prompt-attack filter, jailbreaks and instructions injected through documents or "
            "tool output reach an agent that can call tools. A filter in detect mode (action NONE) only logs."
        ),
        remediation=(
            "In `contentPolicyConfig.filtersConfigs` set HATE, INSULTS, MISCONDUCT, SEXUAL and VIOLENCE with input "
            "and output strength above NONE, and PROMPT_ATTACK with an input strength above NONE (stack file: "
            "`agentstage:contentFilter.blockPromptAttacks: true`); leave the actions at BLOCK."
        ),
        types=(GUARDRAIL,),
        check=_guardrail_filters,
        reference="https://docs.aws.amazon.com/bedrock/latest/userguide/guardrails-content-filters.html",
    ),
    Rule(
        id="AGS-AWS-007",
        title="Logs, tables, secrets, topics, queues and function environments use a customer-managed KMS key",
        severity=Severity.MEDIUM,
        rationale=(
            "With AWS-owned or AWS-managed keys, anyone with read access to the service reads the data: the key "
            "policy cannot be narrowed, its use is not separately auditable, and the data cannot be made "
            "unreadable by disabling the key. Conversations, prompts in logs and secret settings belong under the "
            "stack's own key; so do the tasks agents hand each other through queues."
        ),
        remediation=(
            "Set the stack's KMS key: `kmsKeyId` on log groups and secrets, `serverSideEncryption: {enabled: true, "
            "kmsKeyArn}` on DynamoDB tables, `kmsMasterKeyId` on SNS topics and SQS queues, `kmsKeyArn` on Lambda "
            "functions (components/aws take it from `context.key`)."
        ),
        types=tuple(CUSTOMER_KEY),
        check=_customer_managed_key,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#customer-mgn-key",
    ),
    Rule(
        id="AGS-AWS-008",
        title="Every HTTP API route requires a JWT or IAM authorization",
        severity=Severity.CRITICAL,
        rationale=(
            "A route without an authorizer lets anyone on the internet run the agent: every request costs model "
            "tokens and Lambda time, and the runtime's tenant and tool permissions have no verified caller to "
            "apply to."
        ),
        remediation=(
            "Set `authorizationType: JWT` and `authorizerId` to a JWT authorizer with the identity provider's "
            "issuer and the API's audience (HttpApi does this), or `AWS_IAM` for callers that sign requests."
        ),
        types=(ROUTE,),
        check=_route_authenticated,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html",
    ),
    Rule(
        id="AGS-AWS-009",
        title="Lambda function URLs require IAM authorization",
        severity=Severity.CRITICAL,
        rationale=(
            "A function URL with authorizationType NONE is a public endpoint beside the API gateway: it skips the "
            "JWT authorizer, throttling and access logs, and anyone who finds the URL runs the agent."
        ),
        remediation=(
            "Remove the function URL (callers come through the HTTP API), or set `authorizationType: AWS_IAM` "
            "and grant `lambda:InvokeFunctionUrl` to the callers' roles."
        ),
        types=(FUNCTION_URL,),
        check=_function_url_authenticated,
        reference="https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html",
    ),
    Rule(
        id="AGS-AWS-010",
        title="Lambda invoke permissions name the calling API or resource",
        severity=Severity.HIGH,
        rationale=(
            "A permission for `apigateway.amazonaws.com` without a sourceArn lets any API Gateway API - in any "
            "account - invoke the function, bypassing the stack's authorizer; other service principals without "
            "sourceArn or sourceAccount are the confused-deputy problem."
        ),
        remediation=(
            "Set `sourceArn` to the API's execution ARN (`arn:aws:execute-api:<region>:<account>:<api-id>/*/<route>`) "
            "or, for other services, to the calling resource's ARN; never principal `*`."
        ),
        types=(PERMISSION,),
        check=_permission_scoped,
        reference="https://docs.aws.amazon.com/lambda/latest/dg/permissions-function-services.html",
    ),
    Rule(
        id="AGS-AWS-011",
        title="IAM policies name exact actions on exact resources",
        severity=Severity.HIGH,
        rationale=(
            "`*` or `service:*` actions grant every present and future operation, including ones added after "
            "review; `Resource: *` for an action AWS scopes to resources grants it on every table, secret or "
            "queue in the account. An agent acts with its role's permissions whenever a prompt injection "
            "succeeds."
        ),
        remediation=(
            "List the actions the code calls and the ARNs it calls them on (components/aws grants build such "
            "statements); `*` is only for actions without resource types, such as "
            "`xray:PutTraceSegments` or `cloudwatch:PutMetricData` (with a `cloudwatch:namespace` condition)."
        ),
        types=IDENTITY_POLICIES,
        check=_least_privilege,
        reference="https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html",
    ),
    Rule(
        id="AGS-AWS-012",
        title="No AdministratorAccess, PowerUserAccess or *FullAccess managed policy is attached",
        severity=Severity.CRITICAL,
        rationale=(
            "AWS managed administrator and full-access policies grant every action of a service (or of all of "
            "them) on every resource, and AWS adds actions to them over time; attached to an agent's role they "
            "make any prompt injection an account or service takeover."
        ),
        remediation=(
            "Detach the managed policy and grant the exact statements instead (ExecutionRole.allow with the "
            "components' grant_* methods)."
        ),
        types=(*ATTACHMENTS, ROLE),
        check=_no_broad_managed_policies,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_job-functions.html",
    ),
    Rule(
        id="AGS-AWS-013",
        title="Service roles trust their service for this account only",
        severity=Severity.MEDIUM,
        rationale=(
            "A trust policy that lets a service principal assume the role without `aws:SourceAccount` (or "
            "`aws:SourceArn`) can be used by that service acting for another account - the cross-service "
            "confused deputy; a `*` principal lets anyone assume it."
        ),
        remediation=(
            "Add `Condition: {StringEquals: {aws:SourceAccount: <account id>}}` to each statement that trusts a "
            "service principal (iam.service_trust does this)."
        ),
        types=(ROLE,),
        check=_trust_scoped,
        reference="https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html",
    ),
    Rule(
        id="AGS-AWS-014",
        title="DynamoDB tables have point-in-time recovery",
        severity=Severity.MEDIUM,
        rationale=(
            "Conversations, memories, task records and the budget ledger live only in these tables; without "
            "point-in-time recovery a faulty deployment or an agent's bad writes cannot be rolled back."
        ),
        remediation="Set `pointInTimeRecovery: {enabled: true}` on the table.",
        types=(TABLE,),
        check=_point_in_time_recovery,
        reference="https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/PointInTimeRecovery.html",
    ),
    Rule(
        id="AGS-AWS-015",
        title="DynamoDB tables refuse deletion in production",
        severity=Severity.MEDIUM,
        rationale=(
            "A mistaken `pulumi destroy`, a replacement or one DeleteTable call drops a production table with its "
            "data; deletion protection makes deletion a deliberate two-step change."
        ),
        remediation=(
            "Set `deletionProtectionEnabled: true` on tables of production environments (the stack tag "
            f"`{ENVIRONMENT_TAG}` says which; the AWS blueprint does this for prod)."
        ),
        types=(TABLE,),
        check=_deletion_protection,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithTables.Basics.html#WorkingWithTables.Basics.DeletionProtection",
    ),
    Rule(
        id="AGS-AWS-016",
        title="CloudWatch log groups expire their logs at the stack's retention",
        severity=Severity.MEDIUM,
        rationale=(
            "A log group without retention keeps every prompt fragment, caller id and error forever (and bills "
            "for it); one shorter than the stack's `logRetentionDays` deletes evidence investigations need."
        ),
        remediation=(
            "Set `retentionInDays` to a CloudWatch-allowed value of at least the stack's "
            "`agentstage:logRetentionDays` (components/aws/logs.retention picks it)."
        ),
        types=(LOG_GROUP,),
        check=_log_retention,
        reference="https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/Working-with-log-groups-and-streams.html#SettingLogRetention",
    ),
)
