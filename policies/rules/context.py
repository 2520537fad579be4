"""The stack-specific facts rules need: the stage, the log retention minimum and the waivers.

They come from the stack file (``stacks/Pulumi.<stack>.yaml``). A saved graph whose stack file is
gone, or a CrossGuard run outside the project, falls back to the strictest stage's defaults: a check
that cannot know the stage must not pass a stack by assuming the most lenient one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import StackConfig, WaiverConfig
from core.stacks import PROJECT_DIR, StackNotFoundError, load_stack_config
from policies.rules.model import Stage

MIN_LOG_RETENTION_DAYS = StackConfig.model_fields["log_retention_days"].default
"""Retention assumed when the stack file is unknown: the platform minimum (the stack file's default)."""


@dataclass(frozen=True)
class StackContext:
    """What the rules know about the stack besides its resources.

    ``source`` says where these facts came from, for the report: the stack file, or why defaults
    were used instead. ``stack_file`` is the file, when there is one (SARIF points its results there).
    """

    stage: Stage
    log_retention_days: int
    waivers: tuple[WaiverConfig, ...]
    source: str
    stack_file: Path | None = None

    @property
    def isolated(self) -> bool:
        """Isolated stages keep data services off the public internet (private endpoints only)."""
        return self.stage >= Stage.ENTERPRISE

    @classmethod
    def from_config(cls, config: StackConfig, path: Path | None = None) -> StackContext:
        """The context of a stack's validated config; a waiver of a rule that does not exist is refused."""
        # Imported here: the registry imports every rule module, and they import this one.
        from policies.rules.waivers import refuse_unknown_rules

        source = str(path) if path else "stack configuration"
        refuse_unknown_rules(config.waivers, source)
        return cls(
            stage=Stage.from_blueprint(config.blueprint),
            log_retention_days=config.log_retention_days,
            waivers=config.waivers,
            source=source,
            stack_file=path,
        )

    @classmethod
    def strictest(cls, reason: str) -> StackContext:
        """Defaults of the strictest stage, no waivers; ``reason`` says why the stack file was not used."""
        return cls(
            stage=Stage.ENTERPRISE,
            log_retention_days=MIN_LOG_RETENTION_DAYS,
            waivers=(),
            source=f"defaults of the strictest stage ({Stage.ENTERPRISE.label}): {reason}",
        )


def load_context(stack: str, project_dir: Path = PROJECT_DIR) -> StackContext:
    """The context of ``stack`` from its stack file, or the strictest defaults when there is no file.

    An invalid stack file is the user's mistake and raises :class:`AgentstageError`: falling back to
    defaults would silently drop the file's waivers and stage.
    """
    try:
        config, shown = load_stack_config(stack, project_dir)
    except StackNotFoundError:
        return StackContext.strictest(f"no stack file for stack '{stack}' in {project_dir}")
    return StackContext.from_config(config, shown)
