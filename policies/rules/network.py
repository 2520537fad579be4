"""Network: TLS 1.2+, HTTPS only, no anonymous access, and private-only data services in isolated stages."""

from __future__ import annotations

from typing import Any

from core.graph import Resource, ResourceGraph
from core.workloads import WEB_APP
from policies.findings import Severity
from policies.rules.aws import referenced
from policies.rules.context import StackContext
from policies.rules.model import Rule, Stage, Verdict, failed, passed
from policies.rules.predicates import refers_to, shown, tls_at_least_1_2

STORAGE = "azure-native:storage:StorageAccount"
PRIVATE_ENDPOINT = "azure-native:network:PrivateEndpoint"

# Data services and where each keeps its public-network switch.
PUBLIC_NETWORK_ACCESS: dict[str, str] = {
    "azure-native:cognitiveservices:Account": "properties.publicNetworkAccess",
    "azure-native:search:Service": "publicNetworkAccess",
    "azure-native:keyvault:Vault": "properties.publicNetworkAccess",
    "azure-native:cosmosdb:DatabaseAccount": "publicNetworkAccess",
    STORAGE: "publicNetworkAccess",
    "azure-native:servicebus:Namespace": "publicNetworkAccess",
    "azure-native:containerregistry:Registry": "publicNetworkAccess",
    "azure-native:cache:Redis": "publicNetworkAccess",
}
DATA_SERVICES = tuple(PUBLIC_NETWORK_ACCESS)

# Where each type sets its minimum TLS version, and the version Azure applies when it is unset
# (None: no safe default across API versions, so it must be set explicitly).
MIN_TLS: dict[str, tuple[tuple[str, str | None], ...]] = {
    WEB_APP: (("siteConfig.minTlsVersion", None), ("siteConfig.scmMinTlsVersion", "1.2")),
    STORAGE: (("minimumTlsVersion", None),),
    "azure-native:servicebus:Namespace": (("minimumTlsVersion", None),),
    "azure-native:cosmosdb:DatabaseAccount": (("minimalTlsVersion", None),),
    "azure-native:cache:Redis": (("minimumTlsVersion", None),),
    "azure-native:eventhub:Namespace": (("minimumTlsVersion", None),),
}

# Where each type turns plain HTTP off, and Azure's default when unset.
HTTPS_ONLY: dict[str, tuple[str, bool]] = {
    WEB_APP: ("httpsOnly", False),
    STORAGE: ("enableHttpsTrafficOnly", True),
}

S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _public_access_off(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    path = PUBLIC_NETWORK_ACCESS[resource.type]
    value = resource.get(path)
    if isinstance(value, str) and value.lower() == "disabled":
        return passed(f"{path} is 'Disabled'")
    return failed(f"{path} is {shown(value)} in an isolated stage; it must be 'Disabled'")


def _private_endpoint(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    endpoints = [pe for pe in graph.of_type(PRIVATE_ENDPOINT) if _connects(pe, resource)]
    if not endpoints:
        return failed("no private endpoint connects to it")
    return passed(f"reached through private endpoint {', '.join(pe.name for pe in endpoints)}")


def _connects(endpoint: Resource, target: Resource) -> bool:
    connections = (endpoint.get("privateLinkServiceConnections") or []) + (
        endpoint.get("manualPrivateLinkServiceConnections") or []
    )
    return any(isinstance(c, dict) and refers_to(c.get("privateLinkServiceId"), target) for c in connections)


def _tls_1_2(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    problems = []
    for path, default in MIN_TLS[resource.type]:
        value = resource.get(path)
        if value is None and default is not None:
            continue
        if not tls_at_least_1_2(value):
            problems.append(f"{path} is {shown(value)}")
    if problems:
        return failed("; ".join(problems) + "; TLS 1.2 or later is required")
    return passed("minimum TLS version is 1.2 or later")


def _https_only(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    path, default = HTTPS_ONLY[resource.type]
    value = resource.get(path)
    if (default if value is None else value) is True:
        return passed(f"{path} is on")
    return failed(f"{path} is {shown(value)}: plain HTTP is accepted")


def _ftp_off(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    state = resource.get("siteConfig.ftpsState")
    if state in ("Disabled", "FtpsOnly"):
        return passed(f"siteConfig.ftpsState is {state!r}")
    return failed(
        f"siteConfig.ftpsState is {shown(state)}: plain FTP deployment is accepted (Azure's default is 'AllAllowed')"
    )


def _no_anonymous_blobs(resource: Resource, _graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    value: Any = resource.get("allowBlobPublicAccess")
    if value is True:
        return failed("allowBlobPublicAccess is True: containers may be made readable anonymously")
    return passed(f"allowBlobPublicAccess is {shown(value)} (anonymous access off)")


def _s3_blocked(resource: Resource, graph: ResourceGraph, _ctx: StackContext) -> Verdict:
    # The block names its bucket by id; where ids are not known yet (a CrossGuard preview), by what it
    # was computed from.
    blocks = [
        b
        for b in graph.of_type(S3_PUBLIC_ACCESS_BLOCK)
        if refers_to(b.get("bucket"), resource)
        or referenced(graph, b, b.get("bucket"), S3_BUCKETS) is resource
    ]
    if not blocks:
        return failed("no BucketPublicAccessBlock refers to this bucket")
    off = [flag for flag in S3_BLOCK_FLAGS if blocks[0].get(flag) is not True]
    if off:
        return failed(f"{blocks[0].name}: {', '.join(off)} not true")
    return passed(f"public access blocked by {blocks[0].name}")


RULES = (
    Rule(
        id="AGS-AZ-030",
        title="Data services deny public network access in isolated stages",
        severity=Severity.HIGH,
        rationale=(
            "In the enterprise stage data services are reached over private endpoints only. A public "
            "endpoint, even with identity-based auth, exposes the service to credential stuffing, token "
            "replay from anywhere and data exfiltration to attacker-controlled networks."
        ),
        remediation=(
            "Set publicNetworkAccess to 'Disabled' (the components do this when the context is isolated) "
            "and reach the service through a private endpoint in the stack's VNet."
        ),
        types=DATA_SERVICES,
        check=_public_access_off,
        from_stage=Stage.ENTERPRISE,
        reference="https://learn.microsoft.com/azure/private-link/private-endpoint-overview",
    ),
    Rule(
        id="AGS-AZ-031",
        title="Data services have a private endpoint in isolated stages",
        severity=Severity.HIGH,
        rationale=(
            "With public access off, a data service without a private endpoint is unreachable; with public "
            "access on, it is exposed. Either way the isolated design is broken, so each data service needs "
            "its private endpoint in the stack."
        ),
        remediation=(
            "Create a `network:PrivateEndpoint` whose privateLinkServiceConnections[].privateLinkServiceId is "
            "the service's id, with the matching private DNS zone group."
        ),
        types=DATA_SERVICES,
        check=_private_endpoint,
        from_stage=Stage.ENTERPRISE,
        needs_graph=True,
        reference="https://learn.microsoft.com/azure/private-link/private-endpoint-dns",
    ),
    Rule(
        id="AGS-AZ-032",
        title="Minimum TLS version is 1.2 or later",
        severity=Severity.HIGH,
        rationale=(
            "TLS 1.0 and 1.1 have known weaknesses (BEAST, weak cipher suites) and are deprecated by RFC 8996; "
            "a service that still accepts them lets a downgrade expose tokens and prompts in transit."
        ),
        remediation="Set the resource's minimum TLS version to 1.2 (`1.2`, `TLS1_2` or `Tls12` depending on the API).",
        types=tuple(MIN_TLS),
        check=_tls_1_2,
        reference="https://learn.microsoft.com/azure/security/fundamentals/tls-certificate-changes",
    ),
    Rule(
        id="AGS-AZ-033",
        title="Endpoints accept HTTPS only",
        severity=Severity.HIGH,
        rationale="Plain HTTP sends bearer tokens, prompts and completions in clear text over the network.",
        remediation="Set `httpsOnly: true` on apps and keep `enableHttpsTrafficOnly: true` on storage accounts.",
        types=tuple(HTTPS_ONLY),
        check=_https_only,
        reference="https://learn.microsoft.com/azure/app-service/configure-ssl-bindings#enforce-https",
    ),
    Rule(
        id="AGS-AZ-034",
        title="Apps accept no plain-FTP deployments",
        severity=Severity.MEDIUM,
        rationale=(
            "Plain FTP sends deployment credentials and code unencrypted; anyone on the path can capture the "
            "credentials and replace the agent's code."
        ),
        remediation="Set `siteConfig.ftpsState: Disabled` (deploy with the identity-based one-deploy API instead).",
        types=(WEB_APP,),
        check=_ftp_off,
        reference="https://learn.microsoft.com/azure/app-service/deploy-ftp#enforce-ftps",
    ),
    Rule(
        id="AGS-AZ-035",
        title="Storage accounts allow no anonymous blob access",
        severity=Severity.HIGH,
        rationale=(
            "Anonymous containers are readable by anyone with the URL; the deployment package and agent state "
            "in them would leak code and conversations."
        ),
        remediation="Set `allowBlobPublicAccess: false` on the storage account.",
        types=(STORAGE,),
        check=_no_anonymous_blobs,
        reference="https://learn.microsoft.com/azure/storage/blobs/anonymous-read-access-prevent",
    ),
    Rule(
        id="AGS-AWS-003",
        title="S3 buckets block all public access",
        severity=Severity.HIGH,
        rationale="A bucket without a public access block can be opened to the internet by one ACL or policy change.",
        remediation=(
            "Create an `aws.s3.BucketPublicAccessBlock` for the bucket with blockPublicAcls, blockPublicPolicy, "
            "ignorePublicAcls and restrictPublicBuckets all true."
        ),
        types=S3_BUCKETS,
        check=_s3_blocked,
        needs_graph=True,
        reference="https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html",
    ),
)
