"""Gateway on its own: API Management with keyless model access, GenAI policies, pool and breakers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from components.azure.apim_backends import ModelBackendArgs
from components.azure.apim_policies import TokenLimit
from components.azure.gateway import Gateway, GatewayArgs
from components.azure.gateway_policies import CALLER_APP, JwtArgs
from components.azure.models import ModelDeploymentArgs, Models, ModelsArgs
from core.graph import ResourceGraph

SERVICE = "azure-native:apimanagement:ApiManagementService"
BACKEND = "azure-native:apimanagement:Backend"
API = "azure-native:apimanagement:Api"
POLICY = "azure-native:apimanagement:ApiPolicy"
NAMED_VALUE = "azure-native:apimanagement:NamedValue"
CHAT = (ModelDeploymentArgs(name="chat", model="gpt-4o-mini", version="2024-07-18", capacity=30),)
APP_INSIGHTS_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/components/appi"
GATEWAY_SUBNET = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/snet-gateway"
)


def _args(context, identity, **overrides) -> GatewayArgs:
    primary = Models("primary", context, ModelsArgs(deployments=CHAT))
    fallback = Models("fallback", context, ModelsArgs(deployments=CHAT))
    settings = {
        "publisher_name": "Platform",
        "publisher_email": "platform@example.com",
        "identity": identity,
        "app_insights_id": APP_INSIGHTS_ID,
        "app_insights_connection_string": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
        "jwt": JwtArgs(
            audience="api://agentstage",
            client_application_ids=(identity.client_id,),
            required_role="Agent.Invoke",
        ),
        "models": (ModelBackendArgs("primary", primary), ModelBackendArgs("fallback", fallback, priority=2)),
        "agents": {"orchestrator": "https://func-orchestrator.azurewebsites.net/api"},
    }
    return GatewayArgs(**(settings | overrides))


def _factory(**overrides):
    def factory(context, identity):
        gateway = Gateway("gateway", context, _args(context, identity, **overrides))
        return {
            "url": gateway.url,
            "serviceId": gateway.service_id,
            "serviceName": gateway.service_name,
            "policies": gateway.policies,
        }

    return factory


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    return build(_factory())


@pytest.fixture(scope="module")
def consumption(build) -> ResourceGraph:
    return build(_factory(sku="Consumption", token_limit=None))


def _policy(graph: ResourceGraph, api_id: str) -> ET.Element:
    [policy] = [p for p in graph.of_type(POLICY) if p.get("apiId") == api_id]
    assert policy.get("format") == "xml", policy.urn
    return ET.fromstring(policy.get("value"))


def test_service_uses_the_user_assigned_identity_and_basic_v2(graph, only):
    service = only(graph, SERVICE)
    identity = only(graph, "azure-native:managedidentity:UserAssignedIdentity")
    assert service.get("sku") == {"name": "BasicV2", "capacity": 1}, service.urn
    assert service.get("identity.type") == "UserAssigned", service.urn
    assert list(service.get("identity.userAssignedIdentities")) == [identity.mock_id], service.urn
    assert service.get("serviceName") == "agst-test-apim-gateway-abcde", service.urn
    assert service.get("publicNetworkAccess") == "Enabled", service.urn
    assert service.get("virtualNetworkType") == "None", service.urn
    assert service.get("virtualNetworkConfiguration") is None, service.urn


def test_weak_protocols_are_off_on_both_sides(graph, only):
    properties = only(graph, SERVICE).get("customProperties")
    prefix = "Microsoft.WindowsAzure.ApiManagement.Gateway.Security."
    for side in ("", "Backend."):
        for protocol in ("Tls10", "Tls11", "Ssl30"):
            assert properties[f"{prefix}{side}Protocols.{protocol}"] == "False", f"{side}{protocol}"
    assert not [k for k in properties if ".Ciphers." in k], "v2/Consumption tiers refuse cipher changes"


def test_models_policy_carries_the_genai_chain(graph):
    inbound = _policy(graph, "openai").find("inbound")
    tags = [e.tag for e in inbound]
    assert tags == [
        "base",
        "validate-azure-ad-token",
        "set-header",
        "llm-token-limit",
        "llm-emit-token-metric",
        "authentication-managed-identity",
        "set-backend-service",
    ]
    jwt = inbound.find("validate-azure-ad-token")
    assert jwt.get("tenant-id") == "{{entra-tenant-id}}"
    assert [e.text for e in jwt.findall("audiences/audience")] == ["{{gateway-audience}}"]
    assert [v.text for v in jwt.findall("required-claims/claim[@name='roles']/value")] == ["Agent.Invoke"]
    limit = inbound.find("llm-token-limit")
    # Counted per calling application, read from the validated token: no subscription key exists.
    assert (limit.get("counter-key"), limit.get("tokens-per-minute")) == (CALLER_APP, "10000")
    assert '"azp"' in CALLER_APP and '"appid"' in CALLER_APP
    metric = inbound.find("llm-emit-token-metric")
    assert metric.get("namespace") == "agentstage"
    assert [d.get("name") for d in metric.findall("dimension")] == [
        "API ID",
        "Backend ID",
        "Agent",
    ]
    auth = inbound.find("authentication-managed-identity")
    assert auth.attrib == {
        "resource": "https://cognitiveservices.azure.com",
        "client-id": "{{gateway-identity-client-id}}",
    }
    assert inbound.find("set-backend-service").get("backend-id") == "models-pool"


def test_no_key_reaches_the_models(graph):
    policy = _policy(graph, "openai")
    removed = policy.find("inbound/set-header")
    assert removed.attrib == {"name": "api-key", "exists-action": "delete"}
    for backend in graph.of_type(BACKEND):
        assert backend.get("credentials") is None, f"{backend.urn} sends credentials"
    assert "subscription-key" not in ET.tostring(policy, encoding="unicode").lower()


def test_429_is_retried_on_the_next_backend(graph):
    retry = _policy(graph, "openai").find("backend/retry")
    assert "StatusCode == 429" in retry.get("condition")
    assert (retry.get("count"), retry.get("interval"), retry.get("first-fast-retry")) == ("1", "0", "true")
    assert retry.find("forward-request").get("buffer-request-body") == "true"


def test_model_backends_have_a_breaker_and_form_a_priority_pool(graph):
    backends = {b.get("backendId"): b for b in graph.of_type(BACKEND)}
    primary, fallback, pool = backends["model-primary"], backends["model-fallback"], backends["models-pool"]
    assert primary.get("url") == "https://agst-test-oai-primary-abcde.openai.azure.com/openai", primary.urn
    for backend in (primary, fallback):
        [rule] = backend.get("circuitBreaker.rules")
        assert rule["failureCondition"]["statusCodeRanges"] == [
            {"min": 429, "max": 429},
            {"min": 500, "max": 599},
        ]
        assert rule["acceptRetryAfter"] is True, backend.urn
        assert backend.get("tls") == {"validateCertificateChain": True, "validateCertificateName": True}
    assert pool.get("type") == "Pool", pool.urn
    assert pool.get("pool.services") == [
        {"id": primary.mock_id, "priority": 1, "weight": 1},
        {"id": fallback.mock_id, "priority": 2, "weight": 1},
    ], pool.urn


def test_agent_api_validates_tokens_and_forwards_to_its_backend(graph):
    api = next(a for a in graph.of_type(API) if a.get("apiId") == "agent-orchestrator")
    assert api.get("path") == "agents/orchestrator", api.urn
    assert api.get("protocols") == ["https"] and api.get("subscriptionRequired") is False, api.urn
    inbound = _policy(graph, "agent-orchestrator").find("inbound")
    assert [e.tag for e in inbound] == ["base", "validate-azure-ad-token", "set-backend-service"]
    assert inbound.find("set-backend-service").get("backend-id") == "agent-orchestrator"
    operations = [
        o
        for o in graph.of_type("azure-native:apimanagement:ApiOperation")
        if o.get("apiId") == api.get("apiId")
    ]
    assert {o.get("method") for o in operations} == {"GET", "POST", "PUT", "PATCH", "DELETE"}


def test_models_api_exposes_only_inference(graph):
    operations = [
        o for o in graph.of_type("azure-native:apimanagement:ApiOperation") if o.get("apiId") == "openai"
    ]
    assert sorted(o.get("urlTemplate") for o in operations) == [
        "/deployments/{deployment-id}/chat/completions",
        "/deployments/{deployment-id}/embeddings",
    ]


def test_policies_wait_for_the_named_values_they_reference(graph):
    named = {n.get("namedValueId"): n for n in graph.of_type(NAMED_VALUE)}
    assert set(named) == {
        "gateway-identity-client-id",
        "entra-tenant-id",
        "gateway-audience",
        "gateway-client-app-0",
    }
    assert named["entra-tenant-id"].get("value") == "00000000-0000-0000-0000-0000000000aa"
    for policy in graph.of_type(POLICY):
        for value in named.values():
            assert value.urn in policy.dependencies, f"{policy.urn} does not wait for {value.urn}"


def test_product_needs_no_subscription_key_and_links_every_api(graph, only):
    product = only(graph, "azure-native:apimanagement:Product")
    assert product.get("subscriptionRequired") is False, f"{product.urn}: callers would need a key"
    assert all(api.get("subscriptionRequired") is False for api in graph.of_type(API))
    links = graph.of_type("azure-native:apimanagement:ProductApiLink")
    apis = {a.mock_id for a in graph.of_type(API)}
    assert {link.get("apiId") for link in links} == apis


def test_telemetry_logger_uses_the_identity(graph, only):
    logger = only(graph, "azure-native:apimanagement:Logger")
    assert logger.get("loggerType") == "applicationInsights", logger.urn
    assert logger.get("resourceId") == APP_INSIGHTS_ID, logger.urn
    assert set(logger.get("credentials")) == {"connectionString", "identityClientId"}, logger.urn
    diagnostic = only(graph, "azure-native:apimanagement:Diagnostic")
    assert diagnostic.get("loggerId") == logger.mock_id and diagnostic.get("metrics") is True, diagnostic.urn


def test_diagnostics_go_to_the_workspace(graph, only, build, assert_diagnostics):
    assert_diagnostics(graph, only(graph, SERVICE), build.workspace_id)


def test_outputs_are_known_before_deployment(graph, only, outputs):
    service = only(graph, SERVICE)
    values = outputs(graph)
    assert values["url"] == "https://agst-test-apim-gateway-abcde.azure-api.net"
    assert (values["serviceId"], values["serviceName"]) == (service.mock_id, "agst-test-apim-gateway-abcde")
    assert set(values["policies"]) == {"openai", "agent-orchestrator"}
    deployed = {p.get("apiId"): p.get("value") for p in graph.of_type(POLICY)}
    assert values["policies"] == deployed, "the policies output is not the XML deployed"


def test_consumption_has_no_breaker_and_no_capacity(consumption, only):
    assert only(consumption, SERVICE).get("sku") == {"name": "Consumption", "capacity": 0}
    for backend in consumption.of_type(BACKEND):
        assert backend.get("circuitBreaker") is None, backend.urn
    assert _policy(consumption, "openai").find("inbound/llm-token-limit") is None


def test_consumption_refuses_a_token_limit(build):
    with pytest.raises(Exception, match="no llm-token-limit"):
        build(_factory(sku="Consumption", token_limit=TokenLimit(tokens_per_minute=1)))


def test_isolated_standard_v2_reaches_backends_through_the_vnet_and_stays_public(build, only):
    graph = build(_factory(sku="StandardV2", subnet_id=GATEWAY_SUBNET), isolated=True)
    service = only(graph, SERVICE)
    assert service.get("sku") == {"name": "StandardV2", "capacity": 1}, service.urn
    assert service.get("virtualNetworkType") == "External", service.urn
    assert service.get("virtualNetworkConfiguration") == {"subnetResourceId": GATEWAY_SUBNET}, service.urn
    assert service.get("publicNetworkAccess") == "Enabled", f"{service.urn}: the gateway is the front door"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sku": "BasicV2"}, "set agentstage:gateway.sku to StandardV2"),
        ({"sku": "Consumption", "token_limit": None}, "set agentstage:gateway.sku to StandardV2"),
        ({"sku": "StandardV2"}, "GatewayArgs.subnet_id is required"),
    ],
)
def test_isolated_stages_need_standard_v2_and_a_subnet(build, overrides, message):
    with pytest.raises(Exception, match=message):
        build(_factory(**overrides), isolated=True)


def test_vnet_integration_is_refused_below_standard_v2(build):
    with pytest.raises(Exception, match="subnet_id needs the StandardV2 tier"):
        build(_factory(sku="BasicV2", subnet_id=GATEWAY_SUBNET))
