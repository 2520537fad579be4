"""What every agentstage building block has in common, whatever the cloud."""

from __future__ import annotations

import pulumi


class Component(pulumi.ComponentResource):
    """A building block: a ``ComponentResource`` of type ``agentstage:<cloud>:<Block>``.

    Children are created with :meth:`child` options so every resource hangs under its block in the
    graph, the diagram and ``pulumi stack`` output. Subclasses call ``register_outputs`` last.
    """

    def __init__(self, cloud: str, block: str, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"agentstage:{cloud}:{block}", name, None, opts)

    def child(self, **options: object) -> pulumi.ResourceOptions:
        """Options for a child resource: parented to this component, plus any extra options."""
        return pulumi.ResourceOptions(parent=self, **options)  # type: ignore[arg-type]
