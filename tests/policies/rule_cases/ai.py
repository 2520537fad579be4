"""Fixtures for AI-specific rules."""

from __future__ import annotations

import json

from components.azure.models import HARM_CATEGORIES
from policies.rules import Stage
from rule_cases.base import Case, flip, res

ACCOUNT = "azure-native:cognitiveservices:Account"
RAI_POLICY = "azure-native:cognitiveservices:RaiPolicy"
DEPLOYMENT = "azure-native:cognitiveservices:Deployment"
APIM = "azure-native:apimanagement:ApiManagementService"
TOKEN_LIMIT_XML = (
    '<policies><inbound><base /><llm-token-limit counter-key="@(context.Subscription.Id)" '
    'tokens-per-minute="5000" estimate-prompt-tokens="true" /></inbound></policies>'
)


def _filters(blocking_shields: bool = True) -> list[dict]:
    harms = [
        {"name": c, "source": s, "enabled": True, "blocking": True, "severityThreshold": "Medium"}
        for s in ("Prompt", "Completion")
        for c in HARM_CATEGORIES
    ]
    shields = [
        {"name": n, "source": "Prompt", "enabled": True, "blocking": blocking_shields}
        for n in ("Jailbreak", "Indirect Attack")
    ]
    return harms + shields


def _models(rai_policy_name: str | None) -> list:
    account = res(ACCOUNT, "models-account", {"accountName": "ags-oai", "kind": "OpenAI"})
    policy = res(
        RAI_POLICY,
        "filter",
        {
            "accountName": "ags-oai",
            "raiPolicyName": "models-content-filter",
            "properties": {"basePolicyName": "Microsoft.DefaultV2", "contentFilters": _filters()},
        },
    )
    properties = {"model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-11-20"}}
    if rai_policy_name:
        properties["raiPolicyName"] = rai_policy_name
    deployment = res(
        DEPLOYMENT, "chat", {"accountName": "ags-oai", "deploymentName": "chat", "properties": properties}
    )
    return [account, policy, deployment]


def _gateway(policy_xml: str) -> list:
    service = res(APIM, "gateway", {"serviceName": "ags-apim", "sku": {"name": "StandardV2", "capacity": 1}})
    policy = res(
        "azure-native:apimanagement:Policy",
        "gateway-policy",
        {"serviceName": "ags-apim", "format": "xml", "value": policy_xml},
        dependencies=(service.urn,),
    )
    return [service, policy]


def _agents(agents: list[dict]) -> dict:
    return {"siteConfig": {"appSettings": [{"name": "AGENTSTAGE_AGENTS", "value": json.dumps(agents)}]}}


CASES = {
    "AGS-AZ-060": Case(
        target="chat", passing=lambda: _models("models-content-filter"), failing=lambda: _models(None)
    ),
    "AGS-AZ-061": flip(
        RAI_POLICY,
        "filter",
        {"properties": {"contentFilters": _filters(True)}},
        {"properties": {"contentFilters": _filters(False)}},
    ),
    "AGS-AZ-062": Case(
        target="gateway",
        passing=lambda: _gateway(TOKEN_LIMIT_XML),
        failing=lambda: _gateway(
            '<policies><inbound><base /><rate-limit calls="100" renewal-period="60" /></inbound></policies>'
        ),
        stage=Stage.FOUNDATION,
    ),
    "AGS-AI-001": flip(
        "azure-native:web:WebApp",
        "app",
        _agents([{"name": "assistant", "model": "chat", "token_budget": 8000}]),
        _agents([{"name": "assistant", "model": "chat"}]),
    ),
    "AGS-AZ-063": flip(
        DEPLOYMENT,
        "chat",
        {
            "properties": {
                "model": {"name": "gpt-4o", "version": "2024-11-20"},
                "versionUpgradeOption": "OnceCurrentVersionExpired",
            }
        },
        {"properties": {"versionUpgradeOption": "OnceNewDefaultVersionAvailable"}},
    ),
}
