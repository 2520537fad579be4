"""The agent runtime's deployment packages: one deterministic zip per host, built from ``runtime/``.

Layouts (:data:`FUNCTIONS` for Azure Functions, :data:`LAMBDA` for AWS Lambda)::

    function_app.py  host.json  requirements*.txt   lambda_handler.py  requirements*.txt   the host (no logic)
    agent_runtime/                                   agent_runtime/                         the runtime package
    .python_packages/lib/site-packages/              <the zip's root>                       the dependencies

The Python worker of Azure Functions puts ``.python_packages/lib/site-packages`` on ``sys.path``; Lambda
puts the package's root there, so its dependencies sit beside the handler. Lambda's own runtime provides
boto3, which its requirements leave out.

Why dependencies are vendored. A Flex Consumption app runs the package it is given as is: we publish
with OneDeploy *without* a remote build (no Oryx/SCM build on Flex, no ``SCM_DO_BUILD_DURING_DEPLOYMENT``),
so every dependency must already be in the zip, built for the platform (Linux x86_64, CPython 3.11), under
``.python_packages/lib/site-packages`` -- the folder the Python worker puts on ``sys.path`` ("Install local
packages", learn.microsoft.com/azure/azure-functions/functions-reference-python). ``pip install --target
... --platform manylinux2014_x86_64 --implementation cp --python-version 3.11 --only-binary=:all:`` builds
that folder from any machine; a dependency without such a wheel fails the build, naming the requirement.

Offline plan versus ``pulumi up``. The package's hash is an input of the deployment, so ``pulumi preview``
and ``pulumi up`` must build the same package: vendoring cannot depend on ``is_dry_run()``. It depends on
whether a real engine is on the other end (:func:`vendoring_needed`): ``agentstage plan`` and the tests
run the program under Pulumi's mocks, where nothing is ever deployed, so they build the lean package
(sources only: milliseconds, no download); ``pulumi preview`` and ``pulumi up`` both build the vendored
one, so the preview shows the very hash that ``up`` publishes. The first vendored build downloads the
wheels (tens of MB); later builds reuse ``<out_dir>/site-packages-<key>``, keyed by the requirements and
the target platform. ``ServerlessAgent`` refuses a lean package when a real engine runs, so a package
without its dependencies can never reach the cloud.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import get_monitor

RUNTIME_PACKAGE = "agent_runtime"
PYTHON_VERSION = "3.11"


@dataclass(frozen=True)
class Layout:
    """What one host needs in its zip: its files, its requirements, where dependencies go, for which CPU.

    ``platform`` is a pip platform tag: ``manylinux2014_x86_64`` (Linux x86_64, glibc >= 2.17: Azure
    Functions Flex Consumption, Lambda x86_64) or ``manylinux2014_aarch64`` (Lambda arm64, Graviton).
    """

    name: str
    host_files: tuple[str, ...]
    requirements: str
    site_packages: str
    platform: str = "manylinux2014_x86_64"

    def for_architecture(self, architecture: str) -> Layout:
        """This layout for a Lambda ``architecture`` (``arm64`` or ``x86_64``)."""
        platform = "manylinux2014_aarch64" if architecture == "arm64" else "manylinux2014_x86_64"
        return dataclasses.replace(self, name=f"{self.name}-{architecture}", platform=platform)


FUNCTIONS = Layout(
    "function-app", ("function_app.py", "host.json"), "requirements.txt", ".python_packages/lib/site-packages"
)
LAMBDA = Layout(
    "lambda",
    ("lambda_handler.py", "aws_authorizer.py", "aws_database_bootstrap.py"),
    "requirements-lambda.txt",
    "",
)
"""One package for every AWS function: the agents' host, the gateway's token authorizer and the knowledge
database's bootstrap (one build, one hash; each function names its handler)."""

_CACHES = frozenset({"__pycache__"})
# Never shipped from our sources: caches, tests, and agent_runtime.testing (the scripted model server, a
# development aid that needs uvicorn and serves no deployed agent).
_SOURCE_ONLY = frozenset({"__pycache__", "tests", "testing", ".venv", ".pytest_cache"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no build time leaks into the hash
_INCLUDE = re.compile(r"^\s*-r\s+(\S+)")
_NO_WHEEL = re.compile(r"No matching distribution found for ([^\s]+)")


class PackagingError(Exception):
    """The deployment package could not be built; the message says what to fix."""


@dataclass(frozen=True)
class Package:
    """A built deployment package.

    ``sha256`` identifies its content (entries, bytes and names; never timestamps), so the same sources
    and dependencies always give the same hash. ``vendored`` is true when the dependencies for
    ``platform`` / ``python_version`` are inside.
    """

    path: Path
    sha256: str
    vendored: bool
    python_version: str = PYTHON_VERSION
    platform: str = FUNCTIONS.platform


def vendoring_needed() -> bool:
    """Whether the running Pulumi program can deploy: true under a real engine, false under mocks."""
    return not isinstance(get_monitor(), MockMonitor)


def build_package(runtime_dir: Path, out_dir: Path, layout: Layout, *, vendor_dependencies: bool) -> Package:
    """Zip ``runtime_dir``'s host files and ``agent_runtime/`` (plus, if asked, its dependencies) into
    ``out_dir`` in the host's ``layout``."""
    runtime_dir = runtime_dir.resolve()
    for name in (*layout.host_files, layout.requirements, RUNTIME_PACKAGE):
        if not (runtime_dir / name).exists():
            raise PackagingError(f"{runtime_dir} is not a runtime directory: '{name}' is missing")
    out_dir.mkdir(parents=True, exist_ok=True)
    requirements = _requirement_files(runtime_dir, layout.requirements)
    entries: dict[str, Path] = {name: runtime_dir / name for name in (*layout.host_files, *requirements)}
    entries.update(_tree(runtime_dir / RUNTIME_PACKAGE, RUNTIME_PACKAGE, _SOURCE_ONLY))
    if vendor_dependencies:
        site_packages = _vendored_site_packages(runtime_dir, requirements, out_dir, layout)
        entries.update(_tree(site_packages, layout.site_packages, _CACHES))
    flavour = "vendored" if vendor_dependencies else "lean"
    return _write_zip(
        entries,
        out_dir / f"{layout.name}-{flavour}.zip",
        vendored=vendor_dependencies,
        platform=layout.platform,
    )


def _requirement_files(runtime_dir: Path, name: str) -> list[str]:
    """``name`` and every file it includes with ``-r``, relative to ``runtime_dir``, in include order."""
    path = runtime_dir / name
    if not path.is_file():
        raise PackagingError(f"requirements file '{name}' (included from the runtime) does not exist")
    found = [name]
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _INCLUDE.match(line)
        if match:
            found += [f for f in _requirement_files(runtime_dir, match.group(1)) if f not in found]
    return found


def _tree(root: Path, prefix: str, excluded_dirs: frozenset[str]) -> Iterator[tuple[str, Path]]:
    """Archive names and files under ``root``, skipping ``excluded_dirs`` and bytecode."""
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in excluded_dirs]
        for filename in filenames:
            if filename.endswith(_EXCLUDED_SUFFIXES):
                continue
            path = Path(directory, filename)
            name = path.relative_to(root).as_posix()
            yield (f"{prefix}/{name}" if prefix else name), path


def _vendored_site_packages(
    runtime_dir: Path, requirements: list[str], out_dir: Path, layout: Layout
) -> Path:
    """The platform's site-packages for ``requirements``, installed once per content and reused after."""
    digest = hashlib.sha256(f"{layout.platform} cp{PYTHON_VERSION}\n".encode())
    for name in requirements:
        digest.update(name.encode() + b"\0" + (runtime_dir / name).read_bytes())
    cached = out_dir / f"site-packages-{digest.hexdigest()[:16]}"
    if cached.is_dir():
        return cached
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".building-") as building:
        target = Path(building, "site-packages")
        _pip_install(runtime_dir / layout.requirements, target, layout.platform)
        shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts, with this machine's shebangs
        target.rename(cached)
    return cached


def _pip_install(requirements: Path, target: Path, platform: str) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
        "--no-compile", "--target", str(target),
        "--platform", platform, "--implementation", "cp", "--python-version", PYTHON_VERSION,
        "--only-binary=:all:", "-r", requirements.name,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=requirements.parent, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return
    missing = _NO_WHEEL.search(result.stderr)
    if missing:
        raise PackagingError(
            f"requirement '{missing.group(1)}' has no wheel for {platform} / CPython {PYTHON_VERSION}; "
            "pin a version that publishes one, or replace the dependency"
        )
    raise PackagingError(f"pip could not install {requirements}:\n{result.stderr.strip()}")


def _write_zip(entries: dict[str, Path], path: Path, *, vendored: bool, platform: str) -> Package:
    """Write ``entries`` sorted, with fixed timestamps and modes, so equal content gives equal bytes.

    The zip is written under a name of this process's own and moved into place, so processes planning at
    the same time (a diff's base and head, parallel test workers) never read or clobber a half-written one.
    Beside it, ``<zip>.sources`` records the digest of the entries it was built from and the zip's own
    hash: when both still match, the zip is reused instead of compressed again (most of the packaging
    time of a plan); any other content, or a zip replaced since, is rebuilt.
    """
    contents = {entry: entries[entry].read_bytes() for entry in sorted(entries)}
    sources = _sources_digest(contents)
    reused = _reusable(path, sources)
    if reused is not None:
        return Package(path=path, sha256=reused, vendored=vendored, platform=platform)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".partial")
    os.close(handle)
    partial = Path(name)
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for entry, data in contents.items():
                info = zipfile.ZipInfo(entry, date_time=_FIXED_TIMESTAMP)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o100644 << 16
                archive.writestr(info, data)
        sha256 = hashlib.sha256(partial.read_bytes()).hexdigest()
        partial.chmod(0o644)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    _atomic_write(_sources_file(path), f"{sources} {sha256}\n")
    return Package(path=path, sha256=sha256, vendored=vendored, platform=platform)


def _sources_digest(contents: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for entry, data in contents.items():
        digest.update(f"{entry}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _sources_file(path: Path) -> Path:
    return path.with_name(f"{path.name}.sources")


def _reusable(path: Path, sources: str) -> str | None:
    """The zip's hash if it was built from ``sources`` and is unchanged since, else None."""
    try:
        recorded_sources, recorded_sha256 = _sources_file(path).read_text(encoding="utf-8").split()
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None
    return sha256 if recorded_sources == sources and recorded_sha256 == sha256 else None


def _atomic_write(path: Path, text: str) -> None:
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".partial")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    Path(name).replace(path)
