"""Pass Dockerfiles through to checkov's ``dockerfile`` framework.

A Dockerfile is not in the resource graph (an image is built before any resource references it), so
each one stands for itself: its findings are attributed to a pseudo-resource of type ``Dockerfile``
named by the path given, which is also the name a waiver uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from core.graph import Resource
from policies.export.base import Export

FRAMEWORK = "dockerfile"
RESOURCE_TYPE = "Dockerfile"


def export_dockerfiles(paths: Iterable[Path]) -> Export:
    """Copy each Dockerfile under a name checkov recognises (``NN-<dir>.Dockerfile``)."""
    export = Export(FRAMEWORK)
    for index, path in enumerate(paths):
        file_name = f"{index:02d}-{path.resolve().parent.name or 'root'}.Dockerfile"
        export.files[file_name] = path.read_text(encoding="utf-8")
        export.owners[file_name] = dockerfile_resource(path)
        export.expected += 1
    return export


def dockerfile_resource(path: Path) -> Resource:
    """The pseudo-resource a Dockerfile's findings and waivers refer to."""
    return Resource(urn=f"file:{path}", type=RESOURCE_TYPE, name=str(path), custom=True)
