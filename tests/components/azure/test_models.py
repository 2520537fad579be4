"""Models on its own: a keyless OpenAI account, its content filter, and deployments created one at a time."""

from __future__ import annotations

import itertools

import pytest

from components.azure.models import ContentFilterArgs, ModelDeploymentArgs, Models, ModelsArgs
from components.azure.role_ids import BUILTIN_ROLES
from core.graph import ResourceGraph

ACCOUNT = "azure-native:cognitiveservices:Account"
POLICY = "azure-native:cognitiveservices:RaiPolicy"
DEPLOYMENT = "azure-native:cognitiveservices:Deployment"
DEPLOYMENTS = (
    ModelDeploymentArgs(name="chat", model="gpt-4o-mini", version="2024-07-18", capacity=30),
    ModelDeploymentArgs(
        name="embed", model="text-embedding-3-small", version="1", capacity=50, sku="Standard"
    ),
    ModelDeploymentArgs(name="reason", model="o4-mini", version="2025-04-16", capacity=10),
)


def _factory(filter_args: ContentFilterArgs):
    def factory(context, identity):
        models = Models("models", context, ModelsArgs(deployments=DEPLOYMENTS, content_filter=filter_args))
        grant = models.grant_inference(identity)
        return {
            "grant": grant.id,
            "accountId": models.account_id,
            "accountName": models.account_name,
            "endpoint": models.endpoint,
            "contentFilterName": models.content_filter_name,
            "deploymentNames": models.deployment_names,
        }

    return factory


@pytest.fixture(scope="module")
def graph(build) -> ResourceGraph:
    return build(_factory(ContentFilterArgs()))


@pytest.fixture(scope="module")
def isolated(build) -> ResourceGraph:
    return build(
        _factory(ContentFilterArgs(severity_threshold="Low", block_prompt_attacks=False, asynchronous=True)),
        isolated=True,
    )


def test_account_is_openai_with_subdomain_and_no_keys(graph, only):
    account = only(graph, ACCOUNT)
    assert account.get("kind") == "OpenAI", account.urn
    assert account.get("sku.name") == "S0", account.urn
    assert account.get("properties.disableLocalAuth") is True, account.urn
    assert (
        account.get("properties.customSubDomainName")
        == account.get("accountName")
        == "agst-test-oai-models-abcde"
    ), account.urn
    assert account.get("properties.publicNetworkAccess") == "Enabled", account.urn
    assert account.get("properties.networkAcls") is None, account.urn


def test_isolated_turns_public_access_off(isolated, only):
    account = only(isolated, ACCOUNT)
    assert account.get("properties.publicNetworkAccess") == "Disabled", account.urn
    assert account.get("properties.networkAcls") == {"defaultAction": "Deny"}, account.urn


def test_content_filter_covers_every_harm_both_ways_and_blocks_attacks(graph, only):
    policy = only(graph, POLICY)
    assert policy.get("properties.basePolicyName") == "Microsoft.DefaultV2", policy.urn
    assert policy.get("properties.mode") == "Default", policy.urn
    filters = {(f["name"], f["source"]): f for f in policy.get("properties.contentFilters")}
    for category in ("Hate", "Sexual", "Violence", "Selfharm"):
        for source in ("Prompt", "Completion"):
            rule = filters[(category, source)]
            assert rule == {
                "name": category,
                "source": source,
                "enabled": True,
                "blocking": True,
                "severityThreshold": "Medium",
            }, policy.urn
    for name, source in (
        ("Jailbreak", "Prompt"),
        ("Indirect Attack", "Prompt"),
        ("Protected Material Text", "Completion"),
        ("Protected Material Code", "Completion"),
    ):
        assert filters[(name, source)]["blocking"] is True, f"{policy.urn}: {name}"


def test_content_filter_follows_its_args(isolated, only):
    policy = only(isolated, POLICY)
    assert policy.get("properties.mode") == "Asynchronous_filter", policy.urn
    filters = {(f["name"], f["source"]): f for f in policy.get("properties.contentFilters")}
    assert filters[("Hate", "Prompt")]["severityThreshold"] == "Low", policy.urn
    assert filters[("Jailbreak", "Prompt")] == {
        "name": "Jailbreak",
        "source": "Prompt",
        "enabled": True,
        "blocking": False,
    }, policy.urn


def test_every_deployment_uses_the_content_filter(graph, only):
    policy = only(graph, POLICY)
    deployments = graph.of_type(DEPLOYMENT)
    assert [d.get("deploymentName") for d in deployments] == ["chat", "embed", "reason"]
    for deployment in deployments:
        assert deployment.get("properties.raiPolicyName") == policy.get("raiPolicyName"), deployment.urn


def test_deployments_carry_model_and_capacity(graph):
    by_name = {d.get("deploymentName"): d for d in graph.of_type(DEPLOYMENT)}
    embed = by_name["embed"]
    assert embed.get("properties.model") == {
        "format": "OpenAI",
        "name": "text-embedding-3-small",
        "version": "1",
    }, embed.urn
    assert embed.get("sku") == {"name": "Standard", "capacity": 50}, embed.urn
    assert by_name["chat"].get("sku.name") == "GlobalStandard", by_name["chat"].urn


def test_deployments_are_created_one_after_another(graph, only):
    chain = [only(graph, POLICY), *graph.of_type(DEPLOYMENT)]
    for before, after in itertools.pairwise(chain):
        assert before.urn in after.dependencies, f"{after.urn} does not wait for {before.urn}"


def test_diagnostics_go_to_the_workspace(graph, only, build, assert_diagnostics):
    assert_diagnostics(graph, only(graph, ACCOUNT), build.workspace_id)


def test_grant_inference_is_openai_user_on_the_account(graph, only, outputs, assert_grant):
    assignment = only(graph, "azure-native:authorization:RoleAssignment")
    assert_grant(assignment, BUILTIN_ROLES["Cognitive Services OpenAI User"], only(graph, ACCOUNT))
    assert outputs(graph)["grant"] == assignment.mock_id, f"grant_inference did not return {assignment.urn}"


def test_outputs_are_known_before_deployment(graph, only, outputs):
    account, policy = only(graph, ACCOUNT), only(graph, POLICY)
    assert outputs(graph) | {"grant": None} == {
        "grant": None,
        "accountId": account.mock_id,
        "accountName": "agst-test-oai-models-abcde",
        "endpoint": "https://agst-test-oai-models-abcde.openai.azure.com/",
        "contentFilterName": policy.get("raiPolicyName"),
        "deploymentNames": ["chat", "embed", "reason"],
    }


def test_tags_propagate(graph, build):
    for resource in (*graph.of_type(ACCOUNT), *graph.of_type(POLICY), *graph.of_type(DEPLOYMENT)):
        assert resource.get("tags") == build.tags, resource.urn


def test_duplicate_deployment_names_are_refused():
    with pytest.raises(ValueError, match="repeated: chat"):
        ModelsArgs(deployments=(DEPLOYMENTS[0], DEPLOYMENTS[0]))
