"""Which blueprint builds which stage on which cloud, and the program's single entry point."""

from __future__ import annotations

from collections.abc import Callable

import pulumi

from blueprints.config import StackConfig, StackConfigError, parse_stack_config

Blueprint = Callable[[StackConfig], None]

# (blueprint, cloud) -> "module:function". Imported lazily so a stack only loads the SDKs it uses.
_BUILT: dict[tuple[str, str], str] = {
    ("pilot", "azure"): "blueprints.pilot:deploy_azure",
    ("foundation", "azure"): "blueprints.foundation:deploy_azure",
    ("enterprise", "azure"): "blueprints.enterprise:deploy_azure",
    ("enterprise", "kubernetes"): "blueprints.own_cluster:deploy_kubernetes",
}


class BlueprintNotAvailableError(StackConfigError):
    """The stack asks for a blueprint/cloud combination that is not built yet."""


def resolve(config: StackConfig, source: str) -> Blueprint:
    """The function that builds ``config``'s blueprint on its cloud, or a clear error."""
    target = _BUILT.get((config.blueprint, config.cloud))
    if target is None:
        raise BlueprintNotAvailableError(
            f"{source}: agentstage:cloud '{config.cloud}' is not built yet for blueprint "
            f"'{config.blueprint}'; available: {available()}"
        )
    module_name, function_name = target.split(":")
    module = __import__(module_name, fromlist=[function_name])
    return getattr(module, function_name)


def available() -> str:
    return ", ".join(f"{blueprint} on {cloud}" for blueprint, cloud in sorted(_BUILT))


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
        blueprint = resolve(config, source)
    except StackConfigError as error:
        raise pulumi.RunError(str(error)) from None
    blueprint(config)
