"""Fixtures for secrets rules."""

from __future__ import annotations

from rule_cases.base import Case, flip, res

WEB_APP = "azure-native:web:WebApp"
KV_REFERENCE = "@Microsoft.KeyVault(SecretUri=https://ags-dev-kv.vault.azure.net/secrets/search-key)"


def _settings(**values: str) -> dict:
    return {"siteConfig": {"appSettings": [{"name": k, "value": v} for k, v in values.items()]}}


def _deployment(env: list[dict]) -> list:
    spec = {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:1.0", "env": env}]}}}
    return [
        res("kubernetes:apps/v1:Deployment", "agent", {"metadata": {"namespace": "agents"}, "spec": spec})
    ]


CASES = {
    "AGS-AZ-020": Case(
        target="app",
        passing=lambda: [
            res(
                WEB_APP,
                "app",
                _settings(
                    SEARCH_API_KEY=KV_REFERENCE,
                    AzureWebJobsStorage__credential="managedidentity",
                    AGENTSTAGE_LLM_AUTH="entra",
                    APPLICATIONINSIGHTS_CONNECTION_STRING="<secret>",
                ),
            )
        ],
        failing=lambda: [res(WEB_APP, "app", _settings(SEARCH_API_KEY="0123456789abcdef0123456789abcdef"))],
    ),
    "AGS-AZ-021": flip(
        "azure-native:keyvault:Vault",
        "vault",
        {"properties": {"enableSoftDelete": True, "enablePurgeProtection": True}},
        {"properties": {"enablePurgeProtection": False}},
    ),
    "AGS-AZ-022": flip(
        "azure-native:keyvault:Vault",
        "vault",
        {"properties": {"enableRbacAuthorization": True}},
        {"properties": {"enableRbacAuthorization": False, "accessPolicies": [{"objectId": "x"}]}},
    ),
    "AGS-AWS-002": flip(
        "aws:lambda/function:Function",
        "agent",
        {
            "environment": {
                "variables": {
                    "DB_PASSWORD": "arn:aws:secretsmanager:eu-west-1:1:secret:db",
                    # No password in it: the runtime signs in with an RDS IAM token it mints.
                    "AGENTSTAGE_POSTGRES_DSN": "host=db.example port=5432 user=reader sslmode=require",
                }
            }
        },
        {"environment": {"variables": {"DB_PASSWORD": "hunter2hunter2"}}},
    ),
    "AGS-K8S-001": Case(
        target="agent",
        passing=lambda: _deployment(
            [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "pw"}}}]
        ),
        failing=lambda: _deployment(
            [{"name": "REDIS_URL", "value": "rediss://:s3cr3tpassw0rd@redis:6380/0"}]
        ),
    ),
}
