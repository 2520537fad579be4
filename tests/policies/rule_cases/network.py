"""Fixtures for network rules."""

from __future__ import annotations

from policies.rules import Stage
from rule_cases.base import Case, flip, ref, res

VAULT = "azure-native:keyvault:Vault"
PRIVATE_ENDPOINT = "azure-native:network:PrivateEndpoint"
BUCKET = "aws:s3/bucketV2:BucketV2"
BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ALL_BLOCKED = {
    "blockPublicAcls": True,
    "blockPublicPolicy": True,
    "ignorePublicAcls": True,
    "restrictPublicBuckets": True,
}


def _vault_with_endpoint(connected: bool) -> list:
    vault = res(VAULT, "vault", {"properties": {"publicNetworkAccess": "Disabled"}})
    other = res(VAULT, "other-vault", {"properties": {"publicNetworkAccess": "Disabled"}})
    target = vault if connected else other
    endpoint = res(
        PRIVATE_ENDPOINT,
        "vault-pe",
        {
            "privateLinkServiceConnections": [
                {"name": "vault", "privateLinkServiceId": ref(target), "groupIds": ["vault"]}
            ],
            "subnet": {
                "id": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/pe"
            },
        },
    )
    return [vault, other, endpoint]


def _bucket(flags: dict) -> list:
    bucket = res(BUCKET, "docs", {"bucket": "docs"})
    return [bucket, res(BLOCK, "docs-block", {"bucket": ref(bucket), **flags})]


CASES = {
    "AGS-AZ-030": flip(
        "azure-native:cosmosdb:DatabaseAccount",
        "cosmos",
        {"publicNetworkAccess": "Disabled"},
        {"publicNetworkAccess": "Enabled"},
        stage=Stage.ENTERPRISE,
    ),
    "AGS-AZ-031": Case(
        target="vault",
        passing=lambda: _vault_with_endpoint(True),
        failing=lambda: _vault_with_endpoint(False),
        stage=Stage.ENTERPRISE,
    ),
    "AGS-AZ-032": flip(
        "azure-native:web:WebApp",
        "app",
        {"siteConfig": {"minTlsVersion": "1.2", "scmMinTlsVersion": "1.2"}},
        {"siteConfig": {"minTlsVersion": "1.0"}},
    ),
    "AGS-AZ-033": flip("azure-native:web:WebApp", "app", {"httpsOnly": True}, {"httpsOnly": None}),
    "AGS-AZ-034": flip(
        "azure-native:web:WebApp",
        "app",
        {"siteConfig": {"ftpsState": "Disabled"}},
        {"siteConfig": {"ftpsState": "AllAllowed"}},
    ),
    "AGS-AZ-035": flip(
        "azure-native:storage:StorageAccount",
        "storage",
        {"allowBlobPublicAccess": False},
        {"allowBlobPublicAccess": True},
    ),
    "AGS-AWS-003": Case(
        target="docs",
        passing=lambda: _bucket(ALL_BLOCKED),
        failing=lambda: _bucket({**ALL_BLOCKED, "restrictPublicBuckets": False}),
    ),
}
