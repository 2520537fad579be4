"""Which blueprint builds which stage on which cloud, and the program's single entry point."""

from __future__ import annotations

from collections.abc import Callable

import pulumi

from core.config import StackConfig, StackConfigError, parse_stack_config

Blueprint = Callable[[StackConfig], None]

# (blueprint, cloud) -> "module:function", for every pair of core.config's BUILT (the stack model refuses
# any other). Imported lazily so a stack only loads the SDKs it uses.
FUNCTIONS: dict[tuple[str, str], str] = {
    ("pilot", "azure"): "blueprints.pilot:deploy_azure",
    ("foundation", "azure"): "blueprints.foundation:deploy_azure",
    ("enterprise", "azure"): "blueprints.enterprise:deploy_azure",
    ("enterprise", "kubernetes"): "blueprints.own_cluster:deploy_kubernetes",
    ("pilot", "aws"): "blueprints.aws_pilot:deploy_aws",
    ("foundation", "aws"): "blueprints.aws_foundation:deploy_aws_foundation",
    ("enterprise", "aws"): "blueprints.aws_enterprise:deploy_aws_enterprise",
}


def resolve(config: StackConfig) -> Blueprint:
    """The function that builds ``config``'s blueprint on its cloud."""
    module_name, function_name = FUNCTIONS[(config.blueprint, config.cloud)].split(":")
    module = __import__(module_name, fromlist=[function_name])
    return getattr(module, function_name)


def current_stack_config() -> tuple[StackConfig, str]:
    """Read and validate the running stack's ``agentstage:`` config (as ``pulumi up`` passes it)."""
    source = f"stacks/Pulumi.{pulumi.get_stack()}.yaml"
    return parse_stack_config(_all_config(), source), source


def _all_config() -> dict[str, str]:
    # pulumi.Config cannot enumerate keys, and unknown keys must be reported: read the runtime's map
    # (set by the engine through PULUMI_CONFIG, or by set_all_config under mocks).
    from pulumi.runtime import config as runtime_config

    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def deploy() -> None:
    """Build the stack's blueprint. Config mistakes end the run with one clear message, no traceback."""
    try:
        config, source = current_stack_config()
        blueprint = resolve(config)
    except StackConfigError as error:
        raise pulumi.RunError(str(error)) from None
    try:
        blueprint(config)
    except StackConfigError as error:
        # What only the blueprint can tell, from the names and settings it derives (names Azure shortens, a
        # Lambda's environment), is the stack file's mistake too; blueprints say so before creating anything
        # it concerns.
        raise pulumi.RunError(f"{source}: {error}") from None
