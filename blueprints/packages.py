"""The runtime's deployment package for each host, built from this kit's ``runtime/``: lean under the
offline plan, vendored when a real engine deploys (see components/packaging.py)."""

from __future__ import annotations

import functools
from pathlib import Path

from components.packaging import Layout, Package, build_package, vendoring_needed

PROJECT_DIR = Path(__file__).resolve().parent.parent


@functools.cache
def runtime_package(layout: Layout) -> Package:
    """Built once per program: every function of a stage deploys the same package (one zip, one hash)."""
    return build_package(
        PROJECT_DIR / "runtime", PROJECT_DIR / "build", layout, vendor_dependencies=vendoring_needed()
    )
