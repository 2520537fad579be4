"""Policy XML: each typed policy renders the element and attributes APIM documents, escaped safely."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from components.azure.apim_policies import (
    SUBSCRIPTION_ID,
    AzureAdTokenValidation,
    Dimension,
    EmitTokenMetric,
    ForwardRequest,
    ManagedIdentityAuth,
    PolicyDocument,
    RemoveHeader,
    RequiredClaim,
    Retry,
    SetBackend,
    TokenLimit,
    named_value,
    status_is,
)


def _parse(document: PolicyDocument) -> ET.Element:
    return ET.fromstring(document.render())


def test_sections_inherit_base_first():
    root = _parse(PolicyDocument(inbound=(SetBackend("pool"),)))
    assert root.tag == "policies"
    assert [s.tag for s in root] == ["inbound", "backend", "outbound", "on-error"]
    for section in root:
        assert section[0].tag == "base", section.tag
    assert root.find("inbound/set-backend-service").get("backend-id") == "pool"


def test_a_backend_section_that_forwards_replaces_base():
    retry = Retry(status_is(429), count=2, then=(ForwardRequest(buffer_request_body=True),))
    backend = _parse(PolicyDocument(backend=(retry,))).find("backend")
    assert [e.tag for e in backend] == ["retry"]
    element = backend.find("retry")
    assert element.attrib == {
        "condition": "@(context.Response != null && (context.Response.StatusCode == 429))",
        "count": "2",
        "interval": "0",
        "first-fast-retry": "true",
    }
    assert element.find("forward-request").get("buffer-request-body") == "true"


def test_expressions_survive_escaping():
    expression = '@(context.Request.Headers.GetValueOrDefault("x-a", "") == "<&>")'
    xml = PolicyDocument(inbound=(TokenLimit(counter_key=expression, tokens_per_minute=5),)).render()
    assert "&amp;" in xml and "&quot;" in xml and "&lt;" in xml
    assert ET.fromstring(xml).find("inbound/llm-token-limit").get("counter-key") == expression


def test_azure_ad_token_validation():
    policy = AzureAdTokenValidation(
        tenant_id=named_value("tenant"),
        client_application_ids=("app-1", "app-2"),
        audiences=("api://gateway",),
        required_claims=(RequiredClaim("roles", ("Agent.Invoke",)),),
        output_token_variable_name="jwt",
    )
    element = _parse(PolicyDocument(inbound=(policy,))).find("inbound/validate-azure-ad-token")
    assert element.get("tenant-id") == "{{tenant}}"
    assert element.get("header-name") == "Authorization"
    assert element.get("failed-validation-httpcode") == "401"
    assert element.get("output-token-variable-name") == "jwt"
    assert [e.text for e in element.findall("client-application-ids/application-id")] == ["app-1", "app-2"]
    assert [e.text for e in element.findall("audiences/audience")] == ["api://gateway"]
    claim = element.find("required-claims/claim")
    assert claim.attrib == {"name": "roles", "match": "any"}
    assert [v.text for v in claim.findall("value")] == ["Agent.Invoke"]
    assert [c.tag for c in element] == ["client-application-ids", "audiences", "required-claims"]


def test_token_validation_needs_a_client_application():
    with pytest.raises(ValueError, match="client application"):
        AzureAdTokenValidation(tenant_id="t", client_application_ids=())


def test_token_limit_rate_and_quota():
    element = TokenLimit(tokens_per_minute=1000, token_quota=50_000, token_quota_period="Daily").element()
    assert element.tag == "llm-token-limit"
    assert element.attrib == {
        "counter-key": SUBSCRIPTION_ID,
        "tokens-per-minute": "1000",
        "token-quota": "50000",
        "token-quota-period": "Daily",
        "estimate-prompt-tokens": "true",
        "remaining-tokens-header-name": "x-ratelimit-remaining-tokens",
        "tokens-consumed-header-name": "x-tokens-consumed",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "tokens_per_minute, token_quota, or both"),
        ({"tokens_per_minute": 0}, "at least 1, got 0"),
        ({"token_quota": 10}, "set together"),
        ({"token_quota": 10, "token_quota_period": "Fortnightly"}, "one of Hourly"),
    ],
)
def test_token_limit_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenLimit(**kwargs)


def test_emit_token_metric_dimensions():
    element = EmitTokenMetric(
        "agentstage", (Dimension("API ID"), Dimension("agent", "@(context.Api.Id)"))
    ).element()
    assert element.tag == "llm-emit-token-metric"
    assert element.get("namespace") == "agentstage"
    assert [d.attrib for d in element.findall("dimension")] == [
        {"name": "API ID"},
        {"name": "agent", "value": "@(context.Api.Id)"},
    ]


@pytest.mark.parametrize("count", [0, 6])
def test_emit_token_metric_takes_one_to_five_dimensions(count):
    with pytest.raises(ValueError, match="1 to 5 dimensions"):
        EmitTokenMetric("ns", tuple(Dimension(f"d{i}") for i in range(count)))


def test_managed_identity_auth_and_header_removal():
    auth = ManagedIdentityAuth("https://cognitiveservices.azure.com", client_id="{{id}}").element()
    assert auth.tag == "authentication-managed-identity"
    assert auth.attrib == {"resource": "https://cognitiveservices.azure.com", "client-id": "{{id}}"}
    assert RemoveHeader("api-key").element().attrib == {"name": "api-key", "exists-action": "delete"}


def test_retry_count_is_bounded():
    with pytest.raises(ValueError, match="between 1 and 50"):
        Retry(status_is(429), count=0, then=())
