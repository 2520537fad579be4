"""Agents that Azure would give one name (its names are shortened, storage account names lose their hyphens)
are refused before anything is created, naming both: otherwise two Pulumi resources manage one account, plan
or app. The names are the components' own, computed before the subscription's suffix is known."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from blueprints.azure_names import Named, refuse_shared_names
from blueprints.enterprise import enterprise_names
from blueprints.foundation import stage_names
from components.azure.naming import SUFFIX_PLACEHOLDER, name_shape
from core.config import StackConfig, StackConfigError, parse_stack_config
from core.engine import build_graph
from core.errors import AgentstageError
from core.graph import ResourceGraph
from core.stacks import load_stack_config
from tests.blueprints.test_config import SOURCE, valid_config
from tests.blueprints.test_config_enterprise import enterprise
from tests.blueprints.test_config_newcomer import plan_with

AGENT = {"instructions": "Help.", "model": "chat", "tokenBudget": 1000}
ORCHESTRATOR = {"instructions": "Route.", "model": "chat", "tokenBudget": 1000}


def foundation(*names: str, **overrides: object) -> StackConfig:
    raw = valid_config(
        blueprint="foundation",
        agents=[{**AGENT, "name": name} for name in names],
        orchestrator=ORCHESTRATOR,
        gateway={"publisherEmail": "ops@example.com"},
        messaging={},
        vectorSearch={},
        **overrides,
    )
    return parse_stack_config(raw, SOURCE)


def refused(config: StackConfig, named: list[Named]) -> str:
    with pytest.raises(StackConfigError) as caught:
        refuse_shared_names(config, named)
    return str(caught.value)


@pytest.mark.parametrize(
    ("first", "second", "account"),
    [
        ("research-team-eu", "research-team-us", "agsdevstresearchtea"),
        ("re-search", "research", "agsdevstresearch"),
    ],
)
def test_agents_sharing_a_storage_account_name_are_refused_naming_both(
    first: str, second: str, account: str
) -> None:
    config = foundation(first, second)
    message = refused(config, stage_names(config))
    assert message.startswith(
        f"agentstage:agents[0].name '{first}' and agentstage:agents[1].name '{second}' would get the same storage "
        f"account name, {account}<suffix> (Azure takes at most 24 lowercase letters and digits there, so "
        f"agentstage keeps the first 11 lowercase letters and digits, without hyphens, of '{first}'): two "
        "resources would manage one storage account; rename one of them"
    )


def test_agents_differing_within_what_azure_keeps_are_accepted() -> None:
    config = foundation("research-eu", "research-us", "analyst")
    refuse_shared_names(config, stage_names(config))


def test_app_service_plan_names_are_checked_at_their_own_length() -> None:
    """40 characters: 22 of an agent's name are kept after ags-dev-asp- and before the suffix. (Agents whose
    plans share a name share a storage account name first; the plan's own rule is checked here alone.)"""
    config = foundation("assistant")
    a, b = "agentstage:agents[0].name 'a'", "agentstage:agents[1].name 'b'"
    shared = "customer-support-agent"  # 22 characters
    assert refused(
        config, [Named(a, "function_plan", f"{shared}-eu"), Named(b, "function_plan", f"{shared}-us")]
    ) == (
        f"{a} and {b} would get the same App Service plan name, ags-dev-asp-{shared}-<suffix> (Azure takes at "
        f"most 40 characters there, so agentstage keeps the first 22 characters of '{shared}-eu'): two resources "
        f"would manage one App Service plan; rename one of them"
    )
    refuse_shared_names(
        config,
        [Named(a, "function_plan", "customer-support-eu"), Named(b, "function_plan", "customer-support-us")],
    )


def test_an_agent_named_like_a_block_of_the_stage_is_refused() -> None:
    config = foundation("documents")
    assert refused(config, stage_names(config)).startswith(
        "the knowledge documents (documents) and agentstage:agents[0].name 'documents' would be the same storage "
        "account, agsdevstdocuments<suffix>; rename agentstage:agents[0].name 'documents'"
    )


def test_an_agent_named_like_another_agents_queue_reader_is_refused() -> None:
    raw = enterprise(agents=[{**AGENT, "name": "research"}, {**AGENT, "name": "research-scaler"}])
    raw["agentstage:kubernetes"] = raw["agentstage:kubernetes"].replace('"assistant"', '"research"')
    config = parse_stack_config(raw, SOURCE)
    assert config.kubernetes is not None
    assert refused(config, enterprise_names(config, config.kubernetes)) == (
        "agentstage:agents[1].name 'research-scaler' and the queue reader of agentstage:agents[0].name 'research' "
        "would be the same managed identity, ags-dev-id-research-scaler-<suffix>; rename "
        "agentstage:agents[1].name 'research-scaler'"
    )


def test_a_prefix_and_environment_that_leave_no_room_are_refused() -> None:
    """8 + 10 characters and 'st' fill a storage account name with its suffix: every account would be one."""
    config = foundation("assistant", namePrefix="agentstg", environment="production")
    assert refused(config, stage_names(config)) == (
        "the knowledge ingestion worker (ingest) and the knowledge documents (documents) would get the same "
        "storage account name, agentstgproductions<suffix>: Azure takes at most 24 lowercase letters and digits "
        "there, and agentstage:namePrefix and agentstage:environment leave 0 for what it is named after; "
        "shorten them"
    )


# --- the names are the ones the stacks get ----------------------------------------------------------------

NAME_INPUTS = {
    "azure-native:managedidentity:UserAssignedIdentity": ("identity", "resourceName"),
    "azure-native:storage:StorageAccount": ("storage", "accountName"),
    "azure-native:web:AppServicePlan": ("function_plan", "name"),
    "azure-native:web:WebApp": ("function_app", "name"),
    "azure-native:network:PrivateEndpoint": ("private_endpoint", "privateEndpointName"),
}
DATA_SERVICE_ENDPOINTS = {
    "models-account",
    "secrets-vault",
    "state-sql",
    "search-searchservice",
    "documents-blob",
    "bus-namespace",
    "registry-registry",
}
"""Private endpoints of the enterprise stage's data services: named after no agent, each once, and short
enough never to be shortened, so they cannot share a name with an agent's."""


def _shapes_in(graph: ResourceGraph) -> set[tuple[str, str]]:
    """(kind, name with its suffix as the placeholder) of every resource of the kinds the check covers."""
    return {
        (kind, resource.inputs[key][: -len(SUFFIX_PLACEHOLDER)] + SUFFIX_PLACEHOLDER)
        for type_, (kind, key) in NAME_INPUTS.items()
        for resource in graph.of_type(type_)
    }


@pytest.mark.parametrize(
    ("stack", "names"),
    [
        ("foundation-staging", lambda config: stage_names(config)),
        ("enterprise-prod", lambda config: enterprise_names(config, config.kubernetes)),
    ],
)
def test_the_checked_names_are_the_names_the_stack_gets(
    stack: str, names: Callable[[StackConfig], list[Named]], stack_graph: Callable[[str], ResourceGraph]
) -> None:
    config, _ = load_stack_config(stack)
    checked = {
        (n.kind, name_shape(config.name_prefix, config.environment, n.kind, n.purpose)) for n in names(config)
    }
    created = _shapes_in(stack_graph(stack))
    data_services = {
        ("private_endpoint", name_shape(config.name_prefix, config.environment, "private_endpoint", key))
        for key in DATA_SERVICE_ENDPOINTS
    }
    assert checked == created - data_services


def test_a_plan_of_colliding_agents_fails_before_any_resource(project: Path) -> None:
    line = plan_with(
        project,
        "foundation-staging",
        lambda text: text.replace("- name: research\n", "- name: research-team-eu\n").replace(
            "- name: analyst\n", "- name: research-team-us\n"
        ),
    )
    assert line.startswith(
        "agentstage:agents[0].name 'research-team-eu' and agentstage:agents[1].name 'research-team-us' would get "
        "the same storage account name, agsstgstresearchtea<suffix>"
    )
    registered: list[object] = []
    with pytest.raises(AgentstageError):
        build_graph("foundation-staging", project, on_resource=registered.append)
    assert registered == []
