"""A newcomer's mistakes in a stack file: each one is a single line, exit status 2, naming the stack file
(``stacks/Pulumi.<stack>.yaml``), the key as written there (``agentstage:...``) and what is allowed, in words.

The command-line tests run ``agentstage plan`` on a copy of the project with one mistake edited in; the
others parse a config directly, one class of mistake each.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentstage.cli import main
from agentstage.console import Console
from core.config import parse_stack_config
from core.config.azure import registry_host
from core.config.regions import regions
from core.errors import AgentstageError
from core.graph import ResourceGraph
from core.stacks import PROJECT_DIR, available_stacks, load_stack_config, read_stack_config, stack_file
from tests.blueprints.test_config import SOURCE, error_for, valid_config
from tests.blueprints.test_config_aws import aws
from tests.blueprints.test_config_enterprise import IMAGE, enterprise, own_cluster

# --- the command line: one clear line, exit 2 --------------------------------------------------------------


def plan_with(project: Path, stack: str, edit: Callable[[str], str]) -> str:
    """``agentstage plan`` of ``stack`` after ``edit`` of its file: the one error line (exit status 2)."""
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    text = path.read_text(encoding="utf-8")
    edited = edit(text)
    assert edited != text, "the edit must change the stack file"
    path.write_text(edited, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    status = main(["plan", "--stack", stack, "--project-dir", str(project)], console=Console(out, err))
    errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    assert status == 2, err.getvalue()
    assert "Traceback" not in err.getvalue() and "internal error" not in err.getvalue()
    assert len(errors) == 1, errors
    prefix = f"error: stacks/Pulumi.{stack}.yaml: "
    assert errors[0].startswith(prefix), errors[0]
    return errors[0].removeprefix(prefix)


ZEROS = "0" * 64
PROD_IMAGE = f"agsprodcrregistry4730c.azurecr.io/agentstage-runtime@sha256:{ZEROS}"


@pytest.mark.parametrize("image", ["agentstage-runtime:latest", "agentstage-runtime"])
def test_an_unpinned_image_says_how_to_pin_it(project: Path, image: str) -> None:
    line = plan_with(
        project,
        "enterprise-prod",
        lambda t: t.replace(PROD_IMAGE, f"agsprodcrregistry4730c.azurecr.io/{image}"),
    )
    assert line.startswith("agentstage:kubernetes.image: must be pinned to a version tag (<registry>/")
    assert ":1.4.2) or a digest (<registry>/<repository>@sha256:<64 hex digits>)" in line


def test_standard_messaging_on_the_enterprise_stage_says_why_premium(project: Path) -> None:
    line = plan_with(project, "enterprise-prod", lambda t: t.replace("sku: Premium", "sku: Standard"))
    assert line.startswith(
        "agentstage:messaging.sku: 'Standard' cannot serve the enterprise blueprint, which needs Premium: "
    )
    assert "only Premium offers private endpoints; the foundation blueprint takes Standard or Premium" in line


def test_a_misspelled_tool_suggests_the_closest(project: Path) -> None:
    line = plan_with(project, "pilot-dev", lambda t: t.replace("tools: [calculator,", "tools: [calculater,"))
    assert line == (
        "agentstage:agents[0].tools[0]: 'calculater' is not a tool of the runtime; did you mean calculator? "
        "(built-in tools: calculator, http_get, knowledge_search, memory_search)"
    )


def test_an_unknown_region_lists_a_few_close_names(project: Path) -> None:
    line = plan_with(
        project, "pilot-dev", lambda t: t.replace("location: swedencentral", "location: swedencentrl")
    )
    assert line.startswith("agentstage:location: 'swedencentrl' is not an Azure region name; did you mean ")
    assert "swedencentral" in line and line.count(",") <= 3


def test_a_malformed_audience_says_what_entra_accepts(project: Path) -> None:
    line = plan_with(
        project,
        "pilot-dev",
        lambda t: t.replace(
            "  agentstage:logRetentionDays: 30",
            "  agentstage:logRetentionDays: 30\n  agentstage:api:\n    audience: not-a-uri",
        ),
    )
    assert line.startswith("agentstage:api.audience: 'not-a-uri' is not an Entra ID audience; expected ")
    assert "api://<name>" in line and "GUID" in line


def test_an_image_outside_the_stacks_registry_names_the_registry(project: Path) -> None:
    line = plan_with(
        project,
        "enterprise-prod",
        lambda t: t.replace("agsprodcrregistry4730c.azurecr.io/", "ghcr.io/acme/"),
    )
    assert line.startswith(
        f"agentstage:kubernetes.image: 'ghcr.io/acme/agentstage-runtime@sha256:{ZEROS}' is not in the registry "
        "this stack creates; the cluster's kubelet may pull only from agsprodcrregistry<5 hex digits>.azurecr.io"
    )


def test_a_misspelled_config_key_is_one_line(project: Path) -> None:
    line = plan_with(project, "pilot-dev", lambda t: t.replace("\nconfig:\n", "\nconfg:\n"))
    assert line.startswith("unknown top-level key 'confg' (did you mean config?); a stack file holds its")
    assert "secretsprovider, encryptedkey" in line


def test_a_section_of_a_later_stage_is_reported_before_its_contents(project: Path) -> None:
    line = plan_with(project, "pilot-dev", lambda t: t + "  agentstage:gateway:\n    sku: BasicV2\n")
    assert line == (
        "agentstage:gateway applies to foundation on azure, enterprise on azure, not pilot on azure; remove it "
        "or change agentstage:blueprint / agentstage:cloud"
    )


def test_a_pattern_is_said_in_words(project: Path) -> None:
    line = plan_with(project, "pilot-dev", lambda t: t.replace("namePrefix: ags", "namePrefix: AGS"))
    assert line == (
        "agentstage:namePrefix: expected 2-8 lowercase letters or digits, starting with a letter (e.g. ags) "
        "(got 'AGS')"
    )


def test_an_unquoted_yaml_boolean_at_the_top_level_gets_a_hint_too() -> None:
    message = error_for(valid_config(cloud="true"))
    assert message.startswith(f"{SOURCE}: agentstage:cloud: Input should be 'azure', 'aws' or 'kubernetes' ")
    assert message.endswith('quote the value ("Off", "yes") to keep it text')


def test_an_unquoted_yaml_boolean_gets_a_hint(project: Path) -> None:
    line = plan_with(project, "pilot-dev", lambda t: t.replace("owner: platform-team", "owner: Off"))
    assert line.startswith("agentstage:tags.owner: Input should be a valid string (got False); YAML reads ")
    assert 'quote the value ("Off", "yes")' in line


def test_the_commands_that_load_a_stack_name_its_file_under_stacks(project: Path) -> None:
    path = project / "stacks" / "Pulumi.pilot-dev.yaml"
    path.write_text(path.read_text().replace("tokenBudget: 8000", "tokenBudget: plenty"))
    with pytest.raises(AgentstageError, match=r"^stacks/Pulumi\.pilot-dev\.yaml: agentstage:agents\[0\]\."):
        load_stack_config("pilot-dev", project)


def test_invalid_yaml_names_the_file_under_stacks(project: Path) -> None:
    (project / "stacks" / "Pulumi.broken.yaml").write_text("config: [unclosed\n")
    with pytest.raises(AgentstageError, match=r"^stacks/Pulumi\.broken\.yaml is not valid YAML"):
        read_stack_config(project / "stacks" / "Pulumi.broken.yaml")


# --- 1. images ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("agsdevcrregistry12345.azurecr.io/runtime:latest", "must be pinned to a version tag"),
        ("agsdevcrregistry12345.azurecr.io/runtime", "must be pinned to a version tag"),
        ("agsdevcrregistry12345.azurecr.io/runtime@sha256:abc", "a digest is sha256: and 64 lowercase hex"),
        ("agentstage-runtime:1.4.2", "expected <registry host>/<repository> in lowercase"),
        (
            "agsdevcrregistry12345.azurecr.io/Runtime:1.4.2",
            "expected <registry host>/<repository> in lowercase",
        ),
    ],
)
def test_images_must_name_a_registry_and_be_pinned(image: str, words: str) -> None:
    message = error_for(enterprise(kubernetes={"image": image, "agents": ["assistant"]}))
    assert message.startswith(f"{SOURCE}: agentstage:kubernetes.image: ")
    assert words in message and f"(got '{image}')" in message


def test_a_version_tag_is_accepted() -> None:
    image = "agsdevcrregistry12345.azurecr.io/runtime:1.4.2"
    config = parse_stack_config(enterprise(kubernetes={"image": image, "agents": ["assistant"]}), SOURCE)
    assert config.kubernetes is not None and config.kubernetes.image == image


# --- 2. tiers the enterprise stage needs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "needs"),
    [
        ("messaging", {"sku": "Standard"}, "Premium"),
        ("messaging", {}, "Premium"),
        ("gateway", None, "StandardV2"),
    ],
)
def test_the_enterprise_stage_needs_private_tiers(key: str, value: dict | None, needs: str) -> None:
    value = value if value is not None else {"sku": "BasicV2", "publisherEmail": "ops@example.com"}
    message = error_for(enterprise(**{key: value}))
    assert (
        f"agentstage:{key}.sku: '" in message
        and f"cannot serve the enterprise blueprint, which needs {needs}" in message
    )


def test_the_foundation_stage_takes_standard_messaging() -> None:
    from tests.blueprints.test_config_enterprise import FOUNDATION_KEYS

    raw = valid_config(blueprint="foundation", **{**FOUNDATION_KEYS, "messaging": {"sku": "Standard"}})
    assert parse_stack_config(raw, SOURCE).messaging is not None


# --- 3. tools ----------------------------------------------------------------------------------------------

TOOL_MODULE = "agentstage_newcomer_tools"
TOOL = "newcomer_weather"


@pytest.fixture
def tool_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An importable module registering one custom tool; unregistered and unimported afterwards."""
    (tmp_path / f"{TOOL_MODULE}.py").write_text(
        "from pydantic import BaseModel\n"
        "from agent_runtime.tools import tool\n\n"
        "class Args(BaseModel):\n    city: str\n\n"
        "@tool()\n"
        f"async def {TOOL}(args: Args, ctx) -> str:\n"
        '    """The weather."""\n'
        "    return 'sunny'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield TOOL_MODULE
    from agent_runtime.tools import default_registry

    default_registry._tools.pop(TOOL, None)
    sys.modules.pop(TOOL_MODULE, None)


def agent_with_tools(*tools: str) -> dict[str, object]:
    return {
        "name": "assistant",
        "instructions": "Help.",
        "model": "chat",
        "tokenBudget": 1000,
        "tools": list(tools),
    }


def own_cluster_with_tools(tools: list[str], modules: list[str] | str | None) -> dict[str, str]:
    from tests.blueprints.test_config_enterprise import RUNTIME_SETTINGS

    settings = dict(RUNTIME_SETTINGS)
    if modules is not None:
        settings["tool_modules"] = modules if isinstance(modules, str) else json.dumps(modules)
    return own_cluster(agents=[agent_with_tools(*tools)], runtimeSettings=settings)


def test_built_in_tools_are_accepted_everywhere() -> None:
    parse_stack_config(
        valid_config(agents=[agent_with_tools("calculator", "http_get", "memory_search")]), SOURCE
    )


def test_a_custom_tool_is_refused_where_no_tool_modules_can_be_named() -> None:
    message = error_for(valid_config(agents=[agent_with_tools("calculator", "weather")]))
    assert (
        "agentstage:agents[0].tools[1]: 'weather' is not a tool of the runtime (built-in tools: " in message
    )


def test_a_tool_of_an_importable_tool_module_is_accepted(tool_module: str) -> None:
    config = parse_stack_config(own_cluster_with_tools([TOOL, "calculator"], [tool_module]), SOURCE)
    assert config.agents[0].tools == (TOOL, "calculator")


def test_a_misspelled_custom_tool_suggests_the_modules_tool(tool_module: str) -> None:
    message = error_for(own_cluster_with_tools(["newcomer_wether"], [tool_module]))
    assert f"'newcomer_wether' is not a tool of the runtime; did you mean {TOOL}?" in message
    assert f"with those of agentstage:runtimeSettings.tool_modules ({tool_module})" in message


def test_a_tool_module_that_cannot_be_imported_is_explained() -> None:
    message = error_for(own_cluster_with_tools(["weather"], ["acme_missing_tools"]))
    assert (
        "'weather' is not a built-in tool (calculator, http_get, knowledge_search, memory_search), and the tools of "
        in message
    )
    assert "cannot import acme_missing_tools (ModuleNotFoundError: " in message
    assert "install those modules where agentstage runs" in message


def test_tool_modules_may_be_separated_by_commas(tool_module: str) -> None:
    parse_stack_config(own_cluster_with_tools([TOOL], f"calendar, {tool_module}"), SOURCE)


def test_tool_modules_in_brackets_must_be_a_json_list() -> None:
    message = error_for(own_cluster_with_tools(["weather"], "[acme_tools"))
    # The runtime's own reading of the setting, so the plan refuses exactly what the pods would.
    assert "agentstage:runtimeSettings.tool_modules: '[acme_tools' is refused" in message
    assert 'write a comma-separated list such as a,b or a JSON list such as ["a", "b"]' in message


# --- 4. regions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "start", "suggested"),
    [
        (valid_config(location="atlantis"), "'atlantis' is not an Azure region name; e.g. swedencentral", ""),
        (
            valid_config(location="West Europe"),
            "'West Europe' is not an Azure region name; did you mean ",
            "westeurope",
        ),
        (aws(location="eu-west1"), "'eu-west1' is not an AWS region name; did you mean ", "eu-west-1"),
        (
            own_cluster(location="eu-centrl-1"),
            "'eu-centrl-1' is not an Azure or AWS region name",
            "eu-central-1",
        ),
    ],
)
def test_a_region_is_checked_against_the_clouds_list(raw: dict[str, str], start: str, suggested: str) -> None:
    message = error_for(raw)
    assert message.startswith(f"{SOURCE}: agentstage:location: {start}")
    assert suggested in message
    assert len(message) < 300, "a few close names, never the whole list"


@pytest.mark.parametrize("location", ["westeurope", "eu-central-1"])
def test_your_own_cluster_runs_in_an_azure_or_aws_region(location: str) -> None:
    assert parse_stack_config(own_cluster(location=location), SOURCE).location == location


@pytest.mark.parametrize("cloud", ["azure", "aws"])
def test_region_lists_are_documented_lowercase_names(cloud: str) -> None:
    text = (PROJECT_DIR / "core" / "config" / f"{cloud}-regions.txt").read_text()
    assert "# Source:" in text and re.search(r"20\d\d-\d\d", text), "say where the names come from, and when"
    names = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(names) == len(set(names)) == len(regions(cloud))
    assert all(re.fullmatch(r"[a-z0-9-]+", name) for name in names)


@pytest.mark.parametrize("stack", available_stacks())
def test_every_shipped_location_is_listed(stack: str) -> None:
    config, _ = load_stack_config(stack)
    clouds = ("azure", "aws") if config.cloud == "kubernetes" else (config.cloud,)
    assert any(config.location in regions(cloud) for cloud in clouds)


# --- 5. audiences ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "audience",
    ["api://agentstage-dev", "https://api.example.com/agents", "11111111-2222-3333-4444-555555555555"],
)
def test_entra_audiences(audience: str) -> None:
    assert parse_stack_config(valid_config(api={"audience": audience}), SOURCE).api_audience == audience


@pytest.mark.parametrize("audience", ["not-a-uri", "api://", "agentstage dev"])
def test_what_entra_refuses(audience: str) -> None:
    message = error_for(valid_config(api={"audience": audience}))
    assert f"agentstage:api.audience: '{audience}' is not an Entra ID audience; expected the API's" in message


@pytest.mark.parametrize("audience", ["4vkd8s1l2m3n4o5p6q7r8s9t0u", "agentstage-dev", "api://agentstage"])
def test_cognito_and_oidc_audiences(audience: str) -> None:
    assert parse_stack_config(aws(api={**aws_api(), "audience": audience}), SOURCE).api_audience == audience


@pytest.mark.parametrize("audience", ["not a uri", "client/id"])
def test_what_api_gateway_refuses(audience: str) -> None:
    message = error_for(aws(api={**aws_api(), "audience": audience}))
    assert f"agentstage:api.audience: '{audience}' is not a token audience API Gateway can match" in message
    assert "app client id (letters, digits, '.', '_', '-'" in message


def aws_api() -> dict[str, str]:
    return {"issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc"}


# --- 6. the registry the enterprise stack creates ----------------------------------------------------------


def test_the_shipped_image_is_in_the_registry_the_plan_creates(
    stack_graph: Callable[[str], ResourceGraph],
) -> None:
    config, _ = load_stack_config("enterprise-prod")
    assert config.kubernetes is not None
    [registry] = [r for r in stack_graph("enterprise-prod").resources if r.type.endswith(":Registry")]
    assert config.kubernetes.image.split("/")[0] == f"{registry.inputs['registryName']}.azurecr.io"
    assert (
        registry_host("ags", "prod", "00000000-0000-0000-0000-000000000000")
        == config.kubernetes.image.split("/")[0]
    )


def test_a_named_subscription_pins_the_exact_registry() -> None:
    subscription = "11111111-2222-3333-4444-555555555555"
    expected = registry_host("ags", "dev", subscription)
    raw = {**enterprise(), "azure-native:subscriptionId": subscription}
    message = error_for(raw)
    assert f"the cluster's kubelet may pull only from {expected} (from azure-native:subscriptionId" in message
    assert f"use {expected}/agentstage-runtime@sha256:" in message
    image = IMAGE.replace(IMAGE.split("/")[0], expected)
    raw = {
        **enterprise(kubernetes={"image": image, "agents": ["assistant"]}),
        "azure-native:subscriptionId": subscription,
    }
    assert parse_stack_config(raw, SOURCE).kubernetes is not None


@pytest.mark.parametrize(
    "image",
    [f"ghcr.io/acme/agentstage-runtime@sha256:{'a' * 64}", "registry.internal:5000/agents/runtime:v2"],
)
def test_your_own_cluster_pulls_from_any_registry(image: str) -> None:
    kubernetes = json.loads(own_cluster()["agentstage:kubernetes"])
    config = parse_stack_config(own_cluster(kubernetes={**kubernetes, "image": image}), SOURCE)
    assert config.kubernetes is not None and config.kubernetes.image == image


# --- 7. the stack file's top level -------------------------------------------------------------------------


def test_what_pulumi_writes_at_the_top_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("secretsprovider: passphrase\nencryptedkey: abc\nconfig:\n  agentstage:cloud: azure\n")
    assert read_stack_config(path) == ({"agentstage:cloud": "azure"}, [])


def test_a_stack_without_agentstage_settings_is_one_line() -> None:
    message = error_for({"azure-native:location": "westeurope"})
    assert message.startswith(f"{SOURCE}: no agentstage: settings; its config: mapping needs at least ")
    assert "\n" not in message


# --- 8. keys that do not apply -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "instead"),
    [
        ("api", {"audience": "api://x"}, "runtimeSettings.jwt_issuer, jwt_audience and jwt_jwks_url"),
        ("contentFilter", {"severityThreshold": "Low"}, "runtimeSettings.llm_endpoint"),
    ],
)
def test_sections_your_own_cluster_does_not_use_say_what_does(key: str, value: dict, instead: str) -> None:
    message = error_for(own_cluster(**{key: value}))
    assert f"agentstage:{key} applies to " in message and "not enterprise on kubernetes" in message
    assert instead in message


def test_a_misplaced_section_is_reported_even_when_its_contents_are_wrong() -> None:
    message = error_for(valid_config(messaging={"sku": "Basic", "nonsense": 1}))
    assert message == (
        f"{SOURCE}: agentstage:messaging applies to foundation on azure, enterprise on azure, not pilot on "
        "azure; remove it or change agentstage:blueprint / agentstage:cloud"
    )


# --- 9. patterns in words ----------------------------------------------------------------------------------

AGENT = {"name": "assistant", "instructions": "Help.", "model": "chat", "tokenBudget": 1000}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (valid_config(environment="Dev"), "expected 2-10 lowercase letters or digits"),
        (
            valid_config(agents=[{**AGENT, "name": "Assistant"}]),
            "expected 2-32 lowercase letters, digits or hyphens",
        ),
        (
            valid_config(waivers=[{"check": "ckv_azure_1", "reason": "x" * 30}]),
            "expected an agentstage rule id",
        ),
        (
            valid_config(
                runtimeBudgets=[{"name": "a b", "scope": "tenant", "windowSeconds": 60, "tokens": 1}]
            ),
            "expected 1-64 letters, digits, '.', '_' or '-'",
        ),
        (aws(api={"issuer": "http://idp.example.com"}), "expected an https:// URL without spaces"),
        (
            enterprise(budget={"amount": 1, "contactEmails": ["ops"]}),
            "expected an email address (name@example.com)",
        ),
        (enterprise(network={"addressSpace": "10.0.0.0/8"}), "expected an IPv4 range from /16 to /22"),
        (
            enterprise(kubernetes={"image": IMAGE, "agents": ["assistant"], "kubernetesVersion": "v1.30"}),
            "expected a Kubernetes version 1.<minor>[.<patch>]",
        ),
    ],
)
def test_no_message_shows_a_regular_expression(raw: dict[str, str], words: str) -> None:
    message = error_for(raw)
    assert words in message
    assert "pattern" not in message and "^" not in message and "$" not in message


# --- 11. prefixes ------------------------------------------------------------------------------------------


def test_repeated_names_name_the_key_with_its_prefix() -> None:
    assert f"{SOURCE}: agentstage:agents: names must be unique; repeated: assistant" in error_for(
        valid_config(agents=[AGENT, AGENT])
    )


def test_a_budget_without_limits_names_them_as_written() -> None:
    message = error_for(valid_config(runtimeBudgets=[{"name": "b", "scope": "tenant", "windowSeconds": 60}]))
    assert "a budget needs at least one of tokens, requests, costUsd" in message


def test_a_misspelled_key_suggests_the_closest() -> None:
    assert error_for({**valid_config(), "agentstage:agnets": "[]"}).endswith(
        "; did you mean agentstage:agents?"
    )
    message = error_for(valid_config(agents=[{**AGENT, "toolz": []}]))
    assert message.endswith("; did you mean tools?")


# --- the shipped stacks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", available_stacks())
def test_every_shipped_agent_tells_the_router_what_it_is_for(stack: str) -> None:
    raw, _ = read_stack_config(stack_file(stack))
    for agent in json.loads(raw["agentstage:agents"]):
        assert len(agent.get("description", "")) > 20, f"{stack}: agent {agent['name']} has no description"


@pytest.mark.parametrize("name", ["ingest", "gateway"])
def test_an_agent_may_not_take_the_name_of_a_block_with_its_own_identity(name: str) -> None:
    agents = [{"name": name, "instructions": "Help.", "model": "chat", "tokenBudget": 1000}]
    message = error_for(valid_config(agents=agents))
    assert f"agentstage:agents[0].name: '{name}' names the " in message and "choose another name" in message


def test_the_reserved_names_are_the_blueprints_own() -> None:
    from blueprints.aws_foundation import AUTHORIZER
    from blueprints.aws_foundation import INGEST as AWS_INGEST
    from blueprints.foundation import GATEWAY, INGEST
    from core.config.stack import BLOCK_NAMES

    assert set(BLOCK_NAMES) == {GATEWAY, INGEST, AUTHORIZER} and AWS_INGEST == INGEST
