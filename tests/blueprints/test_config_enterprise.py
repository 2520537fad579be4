"""StackConfig for stage 3: the enterprise keys on Azure and on a cluster you already run."""

from __future__ import annotations

import pytest

from core.config import StackConfig, StackConfigError, parse_stack_config
from tests.blueprints.test_config import SOURCE, valid_config

# In the registry the stack creates (agsdevcrregistry + 5 hex digits of the subscription): the only one its
# kubelet may pull from.
IMAGE = "agsdevcrregistry12345.azurecr.io/agentstage-runtime@sha256:" + "a" * 64
FOUNDATION_KEYS: dict[str, object] = {
    "orchestrator": {"instructions": "Route.", "model": "chat", "tokenBudget": 1000},
    "gateway": {"sku": "StandardV2", "publisherEmail": "ops@example.com"},
    "messaging": {"sku": "Premium"},
    "vectorSearch": {"sku": "basic"},
}
ENTERPRISE_KEYS: dict[str, object] = {
    **FOUNDATION_KEYS,
    "kubernetes": {"image": IMAGE, "agents": ["assistant"]},
    "network": {},
    "budget": {"amount": 1000, "contactEmails": ["ops@example.com"]},
}


def enterprise(**overrides: object) -> dict[str, str]:
    return valid_config(blueprint="enterprise", **{**ENTERPRISE_KEYS, **overrides})


def parse(raw: dict[str, str]) -> StackConfig:
    return parse_stack_config(raw, SOURCE)


def error_for(raw: dict[str, str]) -> str:
    with pytest.raises(StackConfigError) as caught:
        parse(raw)
    return str(caught.value)


def test_enterprise_on_azure_parses_with_defaults() -> None:
    config = parse(enterprise())
    assert config.kubernetes is not None and config.kubernetes.agents == ("assistant",)
    assert config.kubernetes.system_pool.vm_size == "Standard_D2ds_v5"
    assert config.network is not None and config.network.address_space == "10.40.0.0/16"
    assert config.budget is not None and config.budget.thresholds == (50, 80, 100)
    assert config.alerts is None and config.policy is None


@pytest.mark.parametrize("missing", ["kubernetes", "network", "budget", "orchestrator"])
def test_enterprise_on_azure_names_each_missing_key(missing: str) -> None:
    raw = enterprise()
    del raw[f"agentstage:{missing}"]
    assert f"the enterprise blueprint on azure needs agentstage:{missing}" in error_for(raw)


@pytest.mark.parametrize("key", ["kubernetes", "network", "budget", "alerts", "policy"])
def test_enterprise_keys_are_refused_on_earlier_stages(key: str) -> None:
    raw = valid_config(blueprint="foundation", **FOUNDATION_KEYS, **{key: ENTERPRISE_KEYS.get(key, {})})
    message = error_for(raw)
    assert f"agentstage:{key} applies to enterprise on azure" in message
    assert "not foundation on azure; remove it or change agentstage:blueprint" in message


def test_kubernetes_agents_must_be_configured_agents() -> None:
    message = error_for(enterprise(kubernetes={"image": IMAGE, "agents": ["assistant", "ghost"]}))
    assert "agentstage:kubernetes.agents: ghost not in agentstage:agents" in message


@pytest.mark.parametrize(
    "image",
    ["agentstage-runtime", "registry.example.com/runtime", "registry.example.com/runtime@sha256:abc"],
)
def test_image_must_name_a_registry_and_a_tag_or_digest(image: str) -> None:
    message = error_for(enterprise(kubernetes={"image": image, "agents": ["assistant"]}))
    assert "agentstage:kubernetes.image" in message


def test_own_cluster_settings_are_refused_on_azure() -> None:
    kubernetes = {"image": IMAGE, "agents": ["assistant"], "settingsSecret": "runtime-env"}
    message = error_for(enterprise(kubernetes=kubernetes))
    assert "agentstage:kubernetes.settingsSecret applies to the kubernetes cloud" in message


def test_node_pool_bounds_are_checked() -> None:
    kubernetes = {"image": IMAGE, "agents": ["assistant"], "userPool": {"minCount": 5, "maxCount": 2}}
    assert "minCount (5) is above maxCount (2)" in error_for(enterprise(kubernetes=kubernetes))


def test_own_vnet_needs_every_subnet_role() -> None:
    vnet = "/subscriptions/s/resourceGroups/hub/providers/Microsoft.Network/virtualNetworks/spoke"
    message = error_for(enterprise(network={"existingVnetId": vnet, "existingSubnetIds": {"aks": "x"}}))
    assert (
        "existingVnetId needs existingSubnetIds for every role; missing: endpoints, functions, gateway"
        in message
    )


def test_budget_needs_a_contact() -> None:
    assert "agentstage:budget.contactEmails" in error_for(
        enterprise(budget={"amount": 10, "contactEmails": []})
    )


RUNTIME_SETTINGS = {
    "environment": "k8s",
    "llm_provider": "openai",
    "llm_endpoint": "https://llm.example.com/v1",
    "llm_auth": "api_key",
    "auth_mode": "jwt",
    "telemetry_exporter": "otlp",
    "bus_backend": "sqs",
    "aws_region": "eu-central-1",
}


def own_cluster(**overrides: object) -> dict[str, str]:
    keys: dict[str, object] = {
        "cloud": "kubernetes",
        "kubernetes": {
            "image": IMAGE,
            "agents": ["assistant"],
            "settingsSecret": "runtime-env",
            "serviceAccountAnnotations": {
                "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/agents"
            },
        },
        "runtimeSettings": RUNTIME_SETTINGS,
    }
    return valid_config(blueprint="enterprise", **{**keys, **overrides})


def test_own_cluster_needs_only_the_workloads_and_their_settings() -> None:
    config = parse(own_cluster())
    assert config.runtime_settings == RUNTIME_SETTINGS
    assert config.gateway is None and config.network is None


def test_runtime_settings_must_be_names_of_the_runtime_contract() -> None:
    message = error_for(own_cluster(runtimeSettings={**RUNTIME_SETTINGS, "llm_endpont": "y"}))
    assert "agentstage:runtimeSettings: unknown runtime setting(s) llm_endpont" in message


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("trace_sample_ratio", "2", "Input should be less than or equal to 1"),
        ("trace_sample_ratio", "one in ten", "Input should be a valid number"),
        (
            "telemetry_exporter",
            "zipkin",
            "Input should be 'none', 'console', 'otlp', 'azure_monitor' or 'emf'",
        ),
        ("max_steps", "0", "Input should be greater than 0"),
    ],
)
def test_runtime_settings_values_are_checked_as_the_runtime_reads_them(
    name: str, value: str, reason: str
) -> None:
    """A value the runtime would refuse at start fails the plan, naming the setting, the value and why."""
    message = error_for(own_cluster(runtimeSettings={**RUNTIME_SETTINGS, name: value}))
    assert f"agentstage:runtimeSettings.{name}: {value!r} is refused: {reason}" in message


def test_runtime_settings_list_values_are_read_as_the_runtime_reads_them() -> None:
    settings = {**RUNTIME_SETTINGS, "tool_modules": "my_tools, more_tools", "jwt_algorithms": '["RS256"]'}
    assert parse(own_cluster(runtimeSettings=settings)).runtime_settings == settings


@pytest.mark.parametrize(
    "name", ["llm_api_key", "api_keys", "redis_url", "postgres_dsn", "storage_queue_connection_string"]
)
def test_secrets_are_refused_in_runtime_settings(name: str) -> None:
    """Every setting the runtime's contract holds secret (typed SecretStr, or marked secret)."""
    message = error_for(own_cluster(runtimeSettings={**RUNTIME_SETTINGS, name: "sk-live-value"}))
    assert (
        f"runtimeSettings.{name} is a secret: put it in the Secret named by agentstage:kubernetes.settingsSecret"
        in message
    )
    assert "sk-live-value" not in message


@pytest.mark.parametrize("key", ["gateway", "network", "budget"])
def test_azure_only_keys_are_refused_on_your_own_cluster(key: str) -> None:
    value = {**ENTERPRISE_KEYS, "network": {}}[key]
    message = error_for(own_cluster(**{key: value}))
    assert f"agentstage:{key} applies to " in message and "not enterprise on kubernetes" in message


def test_runtime_settings_only_for_your_own_cluster() -> None:
    raw = enterprise(runtimeSettings={"llm_endpoint": "x"})
    assert (
        "agentstage:runtimeSettings applies to enterprise on kubernetes, not enterprise on azure"
        in error_for(raw)
    )


def test_runtime_settings_must_be_complete_for_a_deployed_agent() -> None:
    settings = {k: v for k, v in RUNTIME_SETTINGS.items() if k != "llm_endpoint"}
    assert "agentstage:runtimeSettings needs llm_endpoint for a deployed agent" in error_for(
        own_cluster(runtimeSettings=settings)
    )


def test_per_agent_settings_are_the_blueprints() -> None:
    message = error_for(own_cluster(runtimeSettings={**RUNTIME_SETTINGS, "task_queue": "q"}))
    assert "agentstage:runtimeSettings.task_queue is set by the blueprint for each agent" in message


def test_workers_on_a_cluster_need_a_shared_bus() -> None:
    message = error_for(own_cluster(runtimeSettings={**RUNTIME_SETTINGS, "bus_backend": "sqlite"}))
    assert "runtimeSettings.bus_backend must be one of sqs, servicebus, storage_queue" in message


def test_the_queue_scaler_needs_the_buses_identity() -> None:
    settings = {
        **RUNTIME_SETTINGS,
        "bus_backend": "servicebus",
        "servicebus_namespace": "agents-ns.servicebus.windows.net",
    }
    message = error_for(own_cluster(runtimeSettings=settings))
    assert "kubernetes.serviceAccountAnnotations needs 'azure.workload.identity/client-id'" in message


def test_the_queue_scaler_needs_where_the_queue_is() -> None:
    settings = {k: v for k, v in RUNTIME_SETTINGS.items() if k != "aws_region"}
    assert "agentstage:runtimeSettings.aws_region is needed with bus_backend 'sqs'" in error_for(
        own_cluster(runtimeSettings=settings)
    )
