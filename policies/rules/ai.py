"""AI-specific: content filters on every model, token limits at the gateway, a token budget per agent."""

from __future__ import annotations

import json
import re
from typing import Any

from agent_runtime.settings_contract import env_name
from core.graph import Resource, ResourceGraph
from core.workloads import SETTING_HOLDERS, settings
from policies.findings import Severity
from policies.rules.context import StackContext
from policies.rules.model import Rule, Stage, Verdict, failed, passed
from policies.rules.predicates import is_unknown, shown

MODEL_DEPLOYMENT = "azure-native:cognitiveservices:Deployment"
RAI_POLICY = "azure-native:cognitiveservices:RaiPolicy"
API_MANAGEMENT = "azure-native:apimanagement:ApiManagementService"
GATEWAY_POLICIES = (
    "azure-native:apimanagement:Policy",
    "azure-native:apimanagement:ApiPolicy",
    "azure-native:apimanagement:ProductPolicy",
)
AGENTS_SETTING = env_name("agents")

HARM_CATEGORIES = ("Hate", "Sexual", "Violence", "Selfharm")
PROMPT_SHIELDS = ("Jailbreak", "Indirect Attack")
TOKEN_LIMIT = re.compile(r"<\s*(llm|azure-openai)-token-limit\b", re.IGNORECASE)


def _same(a: Any, b: Any) -> bool:
    """Equal, or not comparable before deployment (then the name match decides)."""
    return a == b or is_unknown(a) or is_unknown(b)


def _content_filter_attached(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    name = resource.get("properties.raiPolicyName")
    if not name:
        return failed(
            "properties.raiPolicyName is unset: the deployment runs behind whatever default the account has"
        )
    policies = [
        p
        for p in graph.of_type(RAI_POLICY)
        if p.get("raiPolicyName") == name and _same(p.get("accountName"), resource.get("accountName"))
    ]
    if not policies:
        return failed(
            f"properties.raiPolicyName {name!r} is no content filter (RaiPolicy) defined in this stack"
        )
    return passed(f"runs behind content filter {name!r}")


def _filter_entry(filters: list[Any], name: str, source: str) -> dict[str, Any] | None:
    return next(
        (
            f
            for f in filters
            if isinstance(f, dict)
            and str(f.get("name", "")).lower() == name.lower()
            and f.get("source") == source
        ),
        None,
    )


def _content_filter_blocks(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    filters = resource.get("properties.contentFilters") or []
    required = [(c, s) for c in HARM_CATEGORIES for s in ("Prompt", "Completion")]
    required += [(shield, "Prompt") for shield in PROMPT_SHIELDS]
    weak = []
    for name, source in required:
        entry = _filter_entry(filters, name, source)
        if entry is None or entry.get("enabled") is not True or entry.get("blocking") is not True:
            weak.append(f"{name} ({source})")
    if weak:
        return failed(f"not enabled and blocking: {', '.join(weak)}")
    return passed("blocks hate, sexual, violence, self-harm, jailbreaks and indirect prompt injection")


def _gateway_token_limit(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    service_name = resource.get("serviceName")
    policies = [
        p
        for type_ in GATEWAY_POLICIES
        for p in graph.of_type(type_)
        if p.get("serviceName") == service_name
        or (is_unknown(p.get("serviceName")) and resource.urn in p.dependencies)
    ]
    limiting = [p for p in policies if isinstance(p.get("value"), str) and TOKEN_LIMIT.search(p.get("value"))]
    if not limiting:
        return failed(
            f"none of its {len(policies)} policies contains llm-token-limit or azure-openai-token-limit"
        )
    return passed(f"token limits in {', '.join(p.name for p in limiting)}")


def _defines_agents(resource: Resource) -> bool:
    return any(s.name == AGENTS_SETTING for s in settings(resource))


def _agent_budgets(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    setting = next(s for s in settings(resource) if s.name == AGENTS_SETTING)
    try:
        agents = json.loads(setting.value) if isinstance(setting.value, str) else None
    except ValueError:
        agents = None
    if not isinstance(agents, list) or not all(isinstance(a, dict) for a in agents):
        return failed(
            f"{setting.where}: {AGENTS_SETTING} is {shown(setting.value)}, not a reviewable JSON list of agents"
        )
    unbudgeted = [
        str(a.get("name", "?"))
        for a in agents
        if not (
            isinstance(a.get("token_budget"), int)
            and not isinstance(a.get("token_budget"), bool)
            and a["token_budget"] > 0
        )
    ]
    if unbudgeted:
        return failed(f"agents without a positive token_budget: {', '.join(unbudgeted)}")
    return passed(f"{len(agents)} agents, each with a token budget")


def _version_pinned(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    version = resource.get("properties.model.version")
    upgrade = resource.get("properties.versionUpgradeOption")
    if not version:
        return failed("properties.model.version is unset: Azure picks the model's current default version")
    if upgrade == "OnceNewDefaultVersionAvailable":
        return failed(
            "versionUpgradeOption 'OnceNewDefaultVersionAvailable' swaps the model under running agents"
        )
    return passed(f"pinned to version {version} ({shown(upgrade)})")


RULES = (
    Rule(
        id="AGS-AZ-060",
        title="Every model deployment runs behind the stack's content filter",
        severity=Severity.HIGH,
        rationale=(
            "Without a named content filter a deployment gets the account's default, which does not block "
            "indirect prompt injection - the attack an agent reading documents and tool output is most "
            "exposed to - and can differ between accounts and regions."
        ),
        remediation=(
            "Set `properties.raiPolicyName` to a `cognitiveservices:RaiPolicy` defined in the stack on the same "
            "account (the Models component creates one and attaches it to every deployment)."
        ),
        types=(MODEL_DEPLOYMENT,),
        check=_content_filter_attached,
        needs_graph=True,
        reference="https://learn.microsoft.com/azure/ai-services/openai/how-to/content-filters",
    ),
    Rule(
        id="AGS-AZ-061",
        title="Content filters block harmful content and prompt attacks",
        severity=Severity.HIGH,
        rationale=(
            "A filter that only annotates lets harmful prompts through to the model and harmful completions "
            "through to users; Prompt Shields must block jailbreaks and document-borne (indirect) injection "
            "before they reach an agent that can call tools."
        ),
        remediation=(
            "Enable and set blocking on Hate, Sexual, Violence and Selfharm for prompts and completions, and on "
            "Jailbreak and Indirect Attack for prompts (stack file: `agentstage:contentFilter.blockPromptAttacks: true`)."
        ),
        types=(RAI_POLICY,),
        check=_content_filter_blocks,
        reference="https://learn.microsoft.com/azure/ai-services/content-safety/concepts/jailbreak-detection",
    ),
    Rule(
        id="AGS-AZ-062",
        title="The API gateway enforces token limits",
        severity=Severity.HIGH,
        rationale=(
            "From the foundation stage several agents share the models through the gateway; without a "
            "token-per-minute limit one caller or a looping agent exhausts the shared quota for everyone "
            "and drives cost without bound."
        ),
        remediation=(
            "Add an `llm-token-limit` (or `azure-openai-token-limit`) element with `tokens-per-minute` and a "
            "counter key per subscription or agent to the service, API or product policy."
        ),
        types=(API_MANAGEMENT,),
        check=_gateway_token_limit,
        from_stage=Stage.FOUNDATION,
        needs_graph=True,
        reference="https://learn.microsoft.com/azure/api-management/llm-token-limit-policy",
    ),
    Rule(
        id="AGS-AI-001",
        title="Every agent has a token budget",
        severity=Severity.MEDIUM,
        rationale=(
            "An agent's tool-calling loop can spend tokens without bound when a model or tool misbehaves or a "
            "prompt injection makes it loop; a per-request token budget is the runtime's hard stop."
        ),
        remediation=f"Give every agent in `agentstage:agents` a `tokenBudget`; it reaches the runtime in {AGENTS_SETTING}.",
        types=SETTING_HOLDERS,
        check=_agent_budgets,
        applies=_defines_agents,
        reference="https://genai.owasp.org/llmrisk/llm102025-unbounded-consumption/",
    ),
    Rule(
        id="AGS-AZ-063",
        title="Model versions are pinned",
        severity=Severity.LOW,
        rationale=(
            "Agents' prompts and tool schemas are tested against one model version; an automatic upgrade "
            "changes behaviour (and safety characteristics) without a review."
        ),
        remediation=(
            "Set `properties.model.version` and `versionUpgradeOption: OnceCurrentVersionExpired`, and upgrade "
            "by changing the version in the stack file."
        ),
        types=(MODEL_DEPLOYMENT,),
        check=_version_pinned,
        mandatory=False,
        reference="https://learn.microsoft.com/azure/ai-services/openai/concepts/model-versions",
    ),
)
