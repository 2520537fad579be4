"""What the delivery lanes need to know of each stack: its order, its cloud and region, the image it runs.

The infrastructure workflow previews and deploys every stack file in ``stacks/`` - computed here, so adding
a stack file puts it into the pipeline with no workflow edit. Stacks go out in environment order
(development, test, staging, anything else, production), by name within one environment.

Stacks that run containers name their image by digest. The shipped examples carry a placeholder digest
(all zeros) until the agent-build lane pushes an image; a placeholder may be planned and checked, never
deployed (``agentstage check --deploy`` refuses it, and the pipeline pins the pushed digest first).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.config import StackConfig
from core.stacks import available_stacks, load_stack_config

PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
"""The digest the example stack files carry until a build publishes a real one."""
IMAGE_KEY = "agentstage:kubernetes.image"
"""The stack setting that names the runtime image (``pulumi config set --path`` takes it as is)."""

_ORDER = ((re.compile(r"^dev"), 0), (re.compile(r"^(test|qa)"), 1), (re.compile(r"^(stag|stg|uat|pre)"), 2))
_PRODUCTION = re.compile(r"^(prod|prd|live)")
_OTHER_RANK, _PRODUCTION_RANK = 3, 4


@dataclass(frozen=True)
class StackDelivery:
    """One stack as the pipeline sees it (the fields of one matrix entry)."""

    stack: str
    cloud: str
    blueprint: str
    environment: str
    region: str
    image_repository: str
    """``<registry>/<repository>`` of the runtime image, or "" when the stack runs no containers."""
    image_digest: str
    """The digest pinned in the stack file ("" for none or a tag)."""
    kube_context: str
    """``kubernetes.kubeconfigContext`` of a stack on a cluster you run ("" otherwise): the name the
    pipeline gives the cluster's credentials."""

    @property
    def placeholder_image(self) -> bool:
        return self.image_digest == PLACEHOLDER_DIGEST


def environment_rank(environment: str) -> int:
    """0 development (dev*), 1 test (test*, qa*), 2 staging (stag*, stg*, uat*, pre*), 3 anything else,
    4 production (prod*, prd*, live*)."""
    if _PRODUCTION.match(environment):
        return _PRODUCTION_RANK
    return next((rank for pattern, rank in _ORDER if pattern.match(environment)), _OTHER_RANK)


def delivery_of(stack: str, config: StackConfig) -> StackDelivery:
    repository, digest = split_image(config.kubernetes.image if config.kubernetes else "")
    return StackDelivery(
        stack=stack,
        cloud=config.cloud,
        blueprint=config.blueprint,
        environment=config.environment,
        region=config.location,
        image_repository=repository,
        image_digest=digest,
        kube_context=(config.kubernetes.kubeconfig_context or "") if config.kubernetes else "",
    )


def delivery_order(project_dir: Path) -> list[StackDelivery]:
    """Every stack of the project, validated, in the order the pipeline deploys them."""
    stacks = [
        delivery_of(stack, load_stack_config(stack, project_dir)[0])
        for stack in available_stacks(project_dir)
    ]
    return sorted(stacks, key=lambda s: (environment_rank(s.environment), s.stack))


def split_image(image: str) -> tuple[str, str]:
    """``registry/repo@sha256:…`` -> (``registry/repo``, ``sha256:…``); a tag gives (``registry/repo``, "")."""
    if not image:
        return "", ""
    repository, _, digest = image.partition("@")
    if not digest:
        last = repository.rsplit("/", 1)[-1]
        if ":" in last:
            repository = repository[: len(repository) - len(last)] + last.split(":", 1)[0]
    return repository, digest


def github_matrix(stacks: list[StackDelivery]) -> dict[str, Any]:
    """The ``strategy.matrix`` of the preview and deploy jobs: ``{"include": [one entry per stack]}``."""
    return {"include": [asdict(stack) for stack in stacks]}
