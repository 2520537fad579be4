"""API Management policies as typed Python, compiled to the policy XML the gateway runs.

Each policy statement is a frozen dataclass that checks its own arguments and renders one element;
:class:`PolicyDocument` assembles them into ``<policies>`` with ``<base />`` first in every section, so
policies from broader scopes still apply. Rendering goes through ``xml.etree``: values are escaped by
the XML serializer, never by hand, so a policy expression such as ``@(context.Subscription.Id)`` or one
holding ``&&`` and quotes reaches APIM exactly as written. Named values (``{{name}}``) are plain text
and pass through unchanged; APIM substitutes them before it evaluates the policy.

Element names, attributes and their order follow the policy reference on learn.microsoft.com
(api-management/<policy>-policy): validate-azure-ad-token, llm-token-limit, llm-emit-token-metric,
authentication-managed-identity, set-backend-service, retry, forward-request.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

SUBSCRIPTION_ID = "@(context.Subscription.Id)"
"""The calling subscription: the key that makes limits per subscription (and so per product consumer)."""

QUOTA_PERIODS = ("Hourly", "Daily", "Weekly", "Monthly", "Yearly")
MAX_METRIC_DIMENSIONS = 5
"""llm-emit-token-metric: "You can configure at most 5 custom dimensions for this policy"."""


def named_value(value_id: str) -> str:
    """A reference to an APIM named value, substituted by APIM before the policy runs."""
    return "{{" + value_id + "}}"


class Policy(Protocol):
    """Anything that renders to one policy element."""

    def element(self) -> ET.Element: ...


def _attributes(**values: object) -> dict[str, str]:
    """XML attributes from keyword arguments: ``snake_case`` -> ``kebab-case``, ``None`` dropped, booleans lowercased."""
    rendered = {}
    for key, value in values.items():
        if value is None:
            continue
        rendered[key.replace("_", "-")] = str(value).lower() if isinstance(value, bool) else str(value)
    return rendered


def _list(parent: ET.Element, tag: str, item_tag: str, items: Sequence[str]) -> None:
    """``<tag><item_tag>item</item_tag>...</tag>`` under ``parent``, or nothing for no items."""
    if items:
        container = ET.SubElement(parent, tag)
        for item in items:
            ET.SubElement(container, item_tag).text = item


@dataclass(frozen=True)
class RequiredClaim:
    """A claim the token must carry: ``match="any"`` accepts one of ``values``, ``"all"`` needs every one."""

    name: str
    values: tuple[str, ...]
    match: Literal["any", "all"] = "any"

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError(f"required claim '{self.name}' needs at least one value")


@dataclass(frozen=True)
class AzureAdTokenValidation:
    """``validate-azure-ad-token``: the caller must present a valid Entra ID token of this tenant.

    Chosen over the generic ``validate-jwt`` because it needs no OpenID configuration URL and pins
    the issuer to the tenant. ``client_application_ids`` is required by the policy: only tokens
    issued to these applications (the agents' managed identities, a front end) are accepted.
    """

    tenant_id: str
    client_application_ids: tuple[str, ...]
    audiences: tuple[str, ...] = ()
    required_claims: tuple[RequiredClaim, ...] = ()
    header_name: str = "Authorization"
    failed_validation_httpcode: int = 401
    output_token_variable_name: str | None = None

    def __post_init__(self) -> None:
        if not self.client_application_ids:
            raise ValueError("validate-azure-ad-token needs at least one client application id")

    def element(self) -> ET.Element:
        root = ET.Element(
            "validate-azure-ad-token",
            _attributes(
                tenant_id=self.tenant_id,
                header_name=self.header_name,
                failed_validation_httpcode=self.failed_validation_httpcode,
                output_token_variable_name=self.output_token_variable_name,
            ),
        )
        _list(root, "client-application-ids", "application-id", self.client_application_ids)
        _list(root, "audiences", "audience", self.audiences)
        if self.required_claims:
            claims = ET.SubElement(root, "required-claims")
            for claim in self.required_claims:
                element = ET.SubElement(claims, "claim", _attributes(name=claim.name, match=claim.match))
                for value in claim.values:
                    ET.SubElement(element, "value").text = value
        return root


@dataclass(frozen=True)
class TokenLimit:
    """``llm-token-limit``: a token rate (per minute), a token quota per period, or both, per ``counter_key``.

    Exceeding the rate answers 429, the quota 403. ``estimate_prompt_tokens`` (default on) counts the
    prompt before forwarding, so a caller over its limit never reaches (and is never billed by) the
    model. Not available on the Consumption tier.
    """

    counter_key: str = SUBSCRIPTION_ID
    tokens_per_minute: int | None = None
    token_quota: int | None = None
    token_quota_period: str | None = None
    estimate_prompt_tokens: bool = True
    remaining_tokens_header_name: str | None = "x-ratelimit-remaining-tokens"
    tokens_consumed_header_name: str | None = "x-tokens-consumed"

    def __post_init__(self) -> None:
        if self.tokens_per_minute is None and self.token_quota is None:
            raise ValueError("llm-token-limit needs tokens_per_minute, token_quota, or both")
        for name in ("tokens_per_minute", "token_quota"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"llm-token-limit {name} must be at least 1, got {value}")
        if (self.token_quota is None) != (self.token_quota_period is None):
            raise ValueError("llm-token-limit token_quota and token_quota_period must be set together")
        if self.token_quota_period is not None and self.token_quota_period not in QUOTA_PERIODS:
            raise ValueError(
                f"llm-token-limit token_quota_period must be one of {', '.join(QUOTA_PERIODS)},"
                f" got '{self.token_quota_period}'"
            )

    def element(self) -> ET.Element:
        return ET.Element(
            "llm-token-limit",
            _attributes(
                counter_key=self.counter_key,
                tokens_per_minute=self.tokens_per_minute,
                token_quota=self.token_quota,
                token_quota_period=self.token_quota_period,
                estimate_prompt_tokens=self.estimate_prompt_tokens,
                remaining_tokens_header_name=self.remaining_tokens_header_name,
                tokens_consumed_header_name=self.tokens_consumed_header_name,
            ),
        )


@dataclass(frozen=True)
class Dimension:
    """A metric dimension. ``value`` may be omitted for APIM's default dimensions ("API ID", "Subscription ID", …)."""

    name: str
    value: str | None = None


@dataclass(frozen=True)
class EmitTokenMetric:
    """``llm-emit-token-metric``: prompt, completion and total tokens to Application Insights, per dimension."""

    namespace: str
    dimensions: tuple[Dimension, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.dimensions) <= MAX_METRIC_DIMENSIONS:
            raise ValueError(
                f"llm-emit-token-metric takes 1 to {MAX_METRIC_DIMENSIONS} dimensions, got {len(self.dimensions)}"
            )

    def element(self) -> ET.Element:
        root = ET.Element("llm-emit-token-metric", _attributes(namespace=self.namespace))
        for dimension in self.dimensions:
            ET.SubElement(root, "dimension", _attributes(name=dimension.name, value=dimension.value))
        return root


@dataclass(frozen=True)
class ManagedIdentityAuth:
    """``authentication-managed-identity``: a bearer token for ``resource``, as the gateway's own identity.

    ``client_id`` selects a user-assigned identity (without it APIM uses its system identity, which
    agentstage does not enable). The token replaces whatever ``Authorization`` header the caller sent.
    """

    resource: str
    client_id: str | None = None

    def element(self) -> ET.Element:
        return ET.Element(
            "authentication-managed-identity", _attributes(resource=self.resource, client_id=self.client_id)
        )


@dataclass(frozen=True)
class RemoveHeader:
    """``set-header exists-action="delete"``: drop a request header before it reaches the backend."""

    name: str

    def element(self) -> ET.Element:
        return ET.Element("set-header", _attributes(name=self.name, exists_action="delete"))


@dataclass(frozen=True)
class SetBackend:
    """``set-backend-service``: route to a backend entity (a single backend or a pool) by its id."""

    backend_id: str

    def element(self) -> ET.Element:
        return ET.Element("set-backend-service", _attributes(backend_id=self.backend_id))


@dataclass(frozen=True)
class ForwardRequest:
    """``forward-request``; ``buffer_request_body`` keeps the body so a retry can send it again."""

    buffer_request_body: bool = False

    def element(self) -> ET.Element:
        return ET.Element(
            "forward-request", _attributes(buffer_request_body=self.buffer_request_body or None)
        )


@dataclass(frozen=True)
class Retry:
    """``retry``: repeat the ``then`` policies while ``condition`` holds, up to ``count`` more times.

    Used around ``forward-request`` with a backend pool: when one backend answers 429 its circuit
    breaker opens and the retry lands on the next backend of the pool, at once (``first_fast_retry``).
    """

    condition: str
    count: int
    then: tuple[Policy, ...]
    interval_seconds: int = 0
    first_fast_retry: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 50:
            raise ValueError(f"retry count must be between 1 and 50, got {self.count}")

    def element(self) -> ET.Element:
        root = ET.Element(
            "retry",
            _attributes(
                condition=self.condition,
                count=self.count,
                interval=self.interval_seconds,
                first_fast_retry=self.first_fast_retry,
            ),
        )
        root.extend(policy.element() for policy in self.then)
        return root


def status_is(*codes: int) -> str:
    """A policy expression that holds when the backend answered one of ``codes``."""
    tests = " || ".join(f"context.Response.StatusCode == {code}" for code in codes)
    return f"@(context.Response != null && ({tests}))"


@dataclass(frozen=True)
class PolicyDocument:
    """A full policy: ``<policies>`` with inbound, backend, outbound and on-error sections.

    Every section starts with ``<base />`` (inherit the broader scope) except ``backend`` when it is
    given: a backend section that forwards the request itself replaces the inherited forward.
    """

    inbound: tuple[Policy, ...] = ()
    backend: tuple[Policy, ...] = ()
    outbound: tuple[Policy, ...] = ()
    on_error: tuple[Policy, ...] = ()

    def element(self) -> ET.Element:
        root = ET.Element("policies")
        sections = (
            ("inbound", self.inbound, True),
            ("backend", self.backend, not self.backend),
            ("outbound", self.outbound, True),
            ("on-error", self.on_error, True),
        )
        for tag, policies, inherit in sections:
            section = ET.SubElement(root, tag)
            if inherit:
                ET.SubElement(section, "base")
            section.extend(policy.element() for policy in policies)
        return root

    def render(self) -> str:
        """Well-formed, indented policy XML: what APIM's ``xml`` format (not ``rawxml``) expects."""
        root = self.element()
        ET.indent(root, space="  ")
        return ET.tostring(root, encoding="unicode", short_empty_elements=True)
