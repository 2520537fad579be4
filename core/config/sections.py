"""Sections a stack may have on more than one cloud: callers' authentication, the content filter, cost
budgets and alerts, waivers, and containerized agents on Kubernetes."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from agent_runtime.settings_contract import SettingsContract, cloud_required_fields, secret_fields
from core.config.base import GUID, NAMESPACE, Name, Strict, pattern
from core.config.regions import check_location

EMAIL = pattern(r"^[^@\s]+@[^@\s]+$", "an email address (name@example.com)")
IAM_ROLE_ARN = pattern(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@/_-]+$", "an IAM role ARN")


class ContentFilterConfig(Strict):
    """The content filter on every model call: an Azure OpenAI RAI policy, or a Bedrock guardrail."""

    severity_threshold: Literal["Low", "Medium", "High"] = "Medium"
    block_prompt_attacks: bool = True


class ApiConfig(Strict):
    """How callers authenticate to the deployed agents: JWT bearer tokens of an OpenID Connect issuer.

    On azure the issuer is the tenant's Entra ID (derived, not set); on aws it is the issuer you name
    (Cognito, Entra ID, Okta, Auth0 ...), whose signing keys are at ``jwksUrl``.
    """

    audience: str | None = Field(
        default=None,
        description="Expected token audience (the API's app ID URI); defaults to api://<prefix>-<env>.",
    )
    issuer: str | None = Field(
        default=None,
        pattern=pattern(
            r"^https://[^\s/]+(/[^\s]*)?$", "an https:// URL without spaces (exactly the tokens' iss claim)"
        ),
        description="aws: the OpenID Connect issuer URL of callers' tokens (its iss claim, exactly).",
    )
    jwks_url: str | None = Field(
        default=None,
        pattern=pattern(r"^https://[^\s]+$", "an https:// URL without spaces"),
        description="aws: the issuer's signing keys; defaults to <issuer>/.well-known/jwks.json.",
    )

    @property
    def keys_url(self) -> str | None:
        return self.jwks_url or (f"{self.issuer.rstrip('/')}/.well-known/jwks.json" if self.issuer else None)


class BudgetConfig(Strict):
    """A monthly cost budget on the stage's resource group, alerting by email."""

    amount: float = Field(gt=0, description="Monthly budget in the billing currency.")
    thresholds: tuple[int, ...] = Field(default=(50, 80, 100), min_length=1)
    contact_emails: tuple[Annotated[str, Field(pattern=EMAIL)], ...] = Field(min_length=1)


class AlertsConfig(Strict):
    """Alert rules on the agents' server errors, latency and model spend (sent to the budget's contacts)."""

    server_error_percent: float = Field(default=5.0, gt=0, le=100, description="5xx share of requests.")
    latency_p95_ms: int = Field(
        default=30_000, gt=0, description="95th percentile of request duration (an agent run spans calls)."
    )
    daily_spend_usd: float = Field(default=50.0, gt=0, description="Priced model usage over 24 hours.")


class WaiverConfig(Strict):
    """A documented exception to one policy rule or checkov check, shown in every report."""

    check: str = Field(
        pattern=pattern(
            r"^(AGS-[A-Z0-9]+-\d{3}|CKV2?_[A-Z0-9_]+)$",
            "an agentstage rule id (AGS-<AREA>-<3 digits>, e.g. AGS-AZ-021) or a checkov check id "
            "(e.g. CKV_AZURE_17, CKV2_AWS_57)",
        ),
        description="Rule or check id.",
    )
    resource: str = Field(
        default="*", min_length=1, description="Resource name or glob (`*-app`, `*` for all) it applies to."
    )
    reason: str = Field(min_length=20, description="Why the exception is acceptable; reviewed like code.")

    def covers(self, resource_name: str) -> bool:
        """Whether this waiver applies to the resource named ``resource_name``."""
        return fnmatch.fnmatchcase(resource_name, self.resource)


class NodePoolConfig(Strict):
    """An autoscaling node pool of a cluster the stack creates (AKS: an Azure VM size)."""

    vm_size: str = Field(default="Standard_D4ds_v5", min_length=1)
    min_count: int = Field(default=1, ge=0, le=100)
    max_count: int = Field(default=3, ge=1, le=1000)

    @model_validator(mode="after")
    def _bounds(self) -> NodePoolConfig:
        if self.min_count > self.max_count:
            raise ValueError(f"minCount ({self.min_count}) is above maxCount ({self.max_count})")
        return self


# Matched whole (fullmatch): a pattern ending in $ also matches before a final newline.
_REPOSITORY = re.compile(r"[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
PINNED = (
    "a version tag (<registry>/<repository>:1.4.2) or a digest (<registry>/<repository>@sha256:<64 hex "
    "digits>)"
)


def pinned_image(image: str) -> str:
    """``image`` if it names its registry and is pinned to a version tag or a digest.

    An untagged or ``latest`` image changes under a running Deployment, so a rollback or a scan result would
    describe an image nobody can name. A registry port (``host:5000/repo``) is not a tag.
    """
    name, at, digest = image.partition("@")
    if at:
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"a digest is sha256: and 64 lowercase hex digits; expected {PINNED}")
    else:
        last = name.rsplit("/", 1)[-1]
        _, colon, tag = last.partition(":")
        if not colon or tag == "latest":
            raise ValueError(
                f"must be pinned to {PINNED}: an untagged or 'latest' image changes under a running Deployment"
            )
        if not _TAG.fullmatch(tag):
            raise ValueError(f"{tag!r} is not a tag (letters, digits, '.', '_', '-'); expected {PINNED}")
        name = name[: len(name) - len(tag) - 1]
    if not _REPOSITORY.fullmatch(name):
        raise ValueError(
            f"expected <registry host>/<repository> in lowercase, pinned to {PINNED}, e.g. "
            "myregistry.azurecr.io/agentstage-runtime:1.4.2"
        )
    return image


_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = pattern(
    rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$",
    "a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or "
    "digit (RFC 1123), at most 253 characters",
)
_ANNOTATION_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
AWS_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
AZURE_CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
# The annotations the stack itself reads (the KEDA triggers' identity) and what each must hold: a value
# that is not one (a '*', a name) would reach the TriggerAuthentication as it is.
_ANNOTATION_VALUES: dict[str, tuple[str, str]] = {
    AWS_ROLE_ANNOTATION: (IAM_ROLE_ARN, "an IAM role ARN, arn:aws:iam::<12-digit account>:role/<name>"),
    AZURE_CLIENT_ID_ANNOTATION: (GUID, "a managed identity's client id, a GUID (8-4-4-4-12 hex digits)"),
}


def is_annotation_key(key: str) -> bool:
    """Whether ``key`` is a Kubernetes annotation key: ``[<prefix>/]<name>``, the prefix a DNS subdomain of
    at most 253 characters and the name at most 63 letters, digits, '-', '_' or '.', alphanumeric at both
    ends."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and re.fullmatch(DNS_SUBDOMAIN, prefix)):
        return False
    return len(name) <= 63 and _ANNOTATION_NAME.fullmatch(name) is not None


class KubernetesConfig(Strict):
    """Containerized agents on Kubernetes, scaled on their queue depth (AKS, or a cluster you already run)."""

    image: str = Field(
        description="The runtime image, by tag or (better) digest: <registry>/<repository>@sha256:<digest>.",
    )
    agents: tuple[Name, ...] = Field(
        min_length=1, description="Agents that run on Kubernetes; the others stay serverless (hybrid)."
    )
    namespace: Name = "agents"
    system_pool: NodePoolConfig = NodePoolConfig.model_validate({"vmSize": "Standard_D2ds_v5", "maxCount": 3})
    user_pool: NodePoolConfig = NodePoolConfig()
    kubernetes_version: str | None = Field(
        default=None,
        pattern=pattern(r"^1\.\d+(\.\d+)?$", "a Kubernetes version 1.<minor>[.<patch>], e.g. 1.30"),
    )
    private_cluster: bool = Field(default=False, description="API server reachable only from the VNet.")
    admin_group_object_ids: tuple[str, ...] = Field(
        default=(), description="Entra ID groups that administer the cluster (Azure RBAC Cluster Admin)."
    )
    encryption_at_host: bool = Field(
        default=False,
        description="Encrypt node temp disks and caches; needs the subscription feature "
        "Microsoft.Compute/EncryptionAtHost registered first.",
    )
    zone_redundant_registry: bool = Field(
        default=False, description="Replicate the (Premium) registry across the region's availability zones."
    )
    max_replicas: int = Field(default=10, ge=1, le=1000, description="Upper bound of each agent's workers.")
    messages_per_replica: int = Field(
        default=5, ge=1, le=1000, description="Queue depth per worker replica KEDA aims for."
    )
    kubeconfig_context: str | None = Field(
        default=None, description="kubernetes cloud only: the kubeconfig context of your cluster."
    )
    service_account_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="kubernetes cloud only: annotations binding the agents' service account to a cloud "
        "identity (azure.workload.identity/client-id, eks.amazonaws.com/role-arn).",
    )
    settings_secret: str | None = Field(
        default=None,
        pattern=DNS_SUBDOMAIN,
        max_length=253,
        description="kubernetes cloud only: an existing Secret whose keys (AGENTSTAGE_<SETTING>) the agents "
        "read as settings files (what must not be in the stack file: API keys, connection URLs).",
    )

    @field_validator("image")
    @classmethod
    def _pinned(cls, image: str) -> str:
        return pinned_image(image)

    @field_validator("service_account_annotations")
    @classmethod
    def _annotations(cls, annotations: dict[str, str]) -> dict[str, str]:
        for key, value in annotations.items():
            if not is_annotation_key(key):
                raise ValueError(
                    f"{key!r} is not a Kubernetes annotation key: [<prefix>/]<name>, the prefix a DNS subdomain "
                    "(lowercase letters, digits, '-' and '.', at most 253 characters) and the name at most 63 "
                    "letters, digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. "
                    f"{AWS_ROLE_ANNOTATION})"
                )
            form = _ANNOTATION_VALUES.get(key)
            if form is not None and not re.fullmatch(form[0], value):
                raise ValueError(f"{key}: {value!r} is not {form[1]}")
        return annotations


# What the blueprint sets itself in runtimeSettings (per agent), and what a shared cluster cannot use.
_SET_BY_BLUEPRINT = frozenset({"agents", "task_queue", "identity_client_id"})
_NEEDS_A_SHARED_BUS = ("sqs", "servicebus", "storage_queue")


def runtime_settings_known(values: dict[str, str]) -> None:
    """Names must be settings of the runtime's contract, complete for a deployed agent, and not secret."""
    unknown = sorted(set(values) - SettingsContract.model_fields.keys())
    if unknown:
        raise ValueError(
            f"{NAMESPACE}:runtimeSettings: unknown runtime setting(s) {', '.join(unknown)}; see "
            "runtime/agent_runtime/settings_contract.py for the names"
        )
    own = sorted(set(values) & _SET_BY_BLUEPRINT)
    if own:
        raise ValueError(
            f"{NAMESPACE}:runtimeSettings.{own[0]} is set by the blueprint for each agent; remove it"
        )
    missing = sorted(cloud_required_fields() - _SET_BY_BLUEPRINT - set(values))
    if missing:
        raise ValueError(f"{NAMESPACE}:runtimeSettings needs {', '.join(missing)} for a deployed agent")
    if values.get("bus_backend") not in _NEEDS_A_SHARED_BUS:
        raise ValueError(
            f"{NAMESPACE}:runtimeSettings.bus_backend must be one of {', '.join(_NEEDS_A_SHARED_BUS)}: "
            "workers on a cluster share their queues (the embedded sqlite queue is one process's)"
        )
    secret = sorted(set(values) & secret_fields())
    if secret:
        raise ValueError(
            f"{NAMESPACE}:runtimeSettings.{secret[0]} is a secret: put it in the Secret named by "
            f"{NAMESPACE}:kubernetes.settingsSecret, not in the stack file"
        )
    for name, value in sorted(values.items()):
        runtime_setting_value(name, value)
        form = _SETTING_FORMS.get(name)
        if form is not None:
            form(value)


def runtime_setting_value(name: str, value: str) -> Any:
    """``value`` of the runtime setting ``name`` as the runtime will read it from its environment, checked
    alone against its field (the checks across settings run when the runtime starts): a wrong value fails the
    plan, not the pods."""
    field = SettingsContract.model_fields[name]
    kind = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as error:
        reason = error.errors()[0]["msg"]
        raise ValueError(f"{NAMESPACE}:runtimeSettings.{name}: {value!r} is refused: {reason}") from None


_SERVICEBUS_NAMESPACE = re.compile(r"[a-z][a-z0-9-]{4,48}[a-z0-9]")
_STORAGE_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")


def _aws_region(region: str) -> str:
    check_location(region, ("aws",), key=f"{NAMESPACE}:runtimeSettings.aws_region")
    return region


def servicebus_namespace_name(host: str) -> str:
    """The namespace's name in the runtime setting ``servicebus_namespace``, a fully qualified namespace
    (``<name>.servicebus.windows.net``): what KEDA's Service Bus trigger takes."""
    name, _, domain = host.lower().partition(".")
    if domain != "servicebus.windows.net" or not _SERVICEBUS_NAMESPACE.fullmatch(name):
        raise ValueError(
            f"{NAMESPACE}:runtimeSettings.servicebus_namespace: {host!r} is not a fully qualified Service Bus "
            "namespace: <name>.servicebus.windows.net, the name 6-50 letters, digits or hyphens, starting with "
            "a letter and ending with a letter or digit"
        )
    return name


def storage_queue_account(url: str) -> str:
    """The storage account of the runtime setting ``storage_queue_account_url``, its queue endpoint
    (``https://<account>.queue.core.windows.net``): what KEDA's Azure queue trigger takes."""
    problem = (
        f"{NAMESPACE}:runtimeSettings.storage_queue_account_url: {url!r} is not a storage account's queue "
        "endpoint: https://<account>.queue.core.windows.net, the account 3-24 lowercase letters or digits"
    )
    # urlsplit drops tabs and newlines anywhere in a URL, so they are refused before it reads one; it
    # lowercases the host name, and a scheme is case-insensitive.
    if not url.isprintable() or any(c.isspace() for c in url):
        raise ValueError(problem)
    parts = urlsplit(url)
    account, _, domain = (parts.hostname or "").partition(".")
    if (
        parts.scheme.lower() != "https"
        or domain != "queue.core.windows.net"
        or not _STORAGE_ACCOUNT.fullmatch(account)
        or parts.netloc.lower() != parts.hostname  # no user, password or port
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(problem)
    return account


_SETTING_FORMS: dict[str, Callable[[str], str]] = {
    "aws_region": _aws_region,
    "servicebus_namespace": servicebus_namespace_name,
    "storage_queue_account_url": storage_queue_account,
}
"""Runtime settings the stack reads too (KEDA's triggers find the queues with them), in the form it needs."""

# What KEDA needs to find and read each bus's queues on your own cluster: (runtime setting, annotation).
_SCALER_NEEDS: dict[str, tuple[str, str]] = {
    "sqs": ("aws_region", AWS_ROLE_ANNOTATION),
    "servicebus": ("servicebus_namespace", AZURE_CLIENT_ID_ANNOTATION),
    "storage_queue": ("storage_queue_account_url", AZURE_CLIENT_ID_ANNOTATION),
}


def scaler_can_read_the_bus(settings: dict[str, str], annotations: dict[str, str]) -> None:
    backend = settings["bus_backend"]
    setting, annotation = _SCALER_NEEDS[backend]
    if not settings.get(setting):
        raise ValueError(f"{NAMESPACE}:runtimeSettings.{setting} is needed with bus_backend '{backend}'")
    if not annotations.get(annotation):
        raise ValueError(
            f"{NAMESPACE}:kubernetes.serviceAccountAnnotations needs '{annotation}' with bus_backend "
            f"'{backend}': the agents and KEDA's queue-depth reads authenticate as that identity"
        )
