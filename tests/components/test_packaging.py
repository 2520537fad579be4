"""The deployment package: deterministic, lean offline, and -- vendored -- able to run on its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from components import packaging
from components.packaging import FUNCTIONS, LAMBDA, PackagingError, build_package, vendoring_needed
from core.engine import record

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"


@pytest.fixture()
def runtime_copy(tmp_path: Path) -> Path:
    """A private copy of ``runtime/`` (with some clutter that must never be shipped)."""
    copy = tmp_path / "runtime"
    shutil.copytree(RUNTIME, copy, ignore=shutil.ignore_patterns("__pycache__", ".agentstage"))
    (copy / "agent_runtime" / "__pycache__").mkdir()
    (copy / "agent_runtime" / "__pycache__" / "settings.cpython-311.pyc").write_bytes(b"\0")
    (copy / "agent_runtime" / "tests").mkdir()
    (copy / "agent_runtime" / "tests" / "test_x.py").write_text("")
    return copy


def _names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def test_lean_package_holds_the_host_and_the_runtime_only(runtime_copy: Path, tmp_path: Path) -> None:
    package = build_package(runtime_copy, tmp_path / "out", FUNCTIONS, vendor_dependencies=False)
    names = _names(package.path)
    assert {
        "function_app.py",
        "host.json",
        "requirements.txt",
        "requirements-core.txt",
        "requirements-azure.txt",
    } <= set(names)
    assert "agent_runtime/settings.py" in names and "agent_runtime/api/app.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n], names
    assert not [n for n in names if n.startswith(("agent_runtime/testing/", ".python_packages/"))]
    assert not [n for n in names if n.startswith(("lambda_handler", "Dockerfile", "requirements-lambda"))]
    assert names == sorted(names)
    assert package.vendored is False and package.python_version == "3.11"


def test_the_lambda_layout_has_its_handler_its_architecture_and_no_azure_sdks(
    runtime_copy: Path, tmp_path: Path
) -> None:
    package = build_package(
        runtime_copy, tmp_path / "out", LAMBDA.for_architecture("arm64"), vendor_dependencies=False
    )
    names = set(_names(package.path))
    assert {"lambda_handler.py", "requirements-lambda.txt", "requirements-core.txt"} <= names
    # boto3 comes with Lambda's runtime; the Azure host and SDK requirements stay out.
    assert not names & {"function_app.py", "host.json", "requirements.txt", "requirements-azure.txt"}
    assert (package.path.name, package.platform) == ("lambda-arm64-lean.zip", "manylinux2014_aarch64")
    assert LAMBDA.for_architecture("x86_64").platform == "manylinux2014_x86_64"
    assert LAMBDA.site_packages == "", (
        "Lambda puts the package root on sys.path: dependencies sit beside the handler"
    )


def test_same_content_gives_the_same_bytes_whatever_the_timestamps(
    runtime_copy: Path, tmp_path: Path
) -> None:
    first = build_package(runtime_copy, tmp_path / "a", FUNCTIONS, vendor_dependencies=False)
    (runtime_copy / "function_app.py").touch()
    second = build_package(runtime_copy, tmp_path / "b", FUNCTIONS, vendor_dependencies=False)
    assert first.sha256 == second.sha256
    with zipfile.ZipFile(second.path) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_changed_source_changes_the_hash(runtime_copy: Path, tmp_path: Path) -> None:
    before = build_package(runtime_copy, tmp_path / "out", FUNCTIONS, vendor_dependencies=False)
    with (runtime_copy / "agent_runtime" / "settings.py").open("a") as source:
        source.write("\n# changed\n")
    after = build_package(runtime_copy, tmp_path / "out", FUNCTIONS, vendor_dependencies=False)
    assert before.sha256 != after.sha256


def test_an_unchanged_package_is_reused_not_compressed_again(runtime_copy: Path, tmp_path: Path) -> None:
    first = build_package(runtime_copy, tmp_path / "out", FUNCTIONS, vendor_dependencies=False)
    written = first.path.stat().st_ino
    again = build_package(runtime_copy, tmp_path / "out", FUNCTIONS, vendor_dependencies=False)
    assert again == first
    assert again.path.stat().st_ino == written  # the same file, not a rewrite moved into place


def test_a_package_altered_since_it_was_built_is_rebuilt(runtime_copy: Path, tmp_path: Path) -> None:
    first = build_package(runtime_copy, tmp_path / "out", FUNCTIONS, vendor_dependencies=False)
    original = first.path.read_bytes()
    first.path.write_bytes(b"not the package")
    again = build_package(runtime_copy, tmp_path / "out", FUNCTIONS, vendor_dependencies=False)
    assert again.sha256 == first.sha256
    assert again.path.read_bytes() == original


def test_not_a_runtime_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="'function_app.py' is missing"):
        build_package(tmp_path, tmp_path / "out", FUNCTIONS, vendor_dependencies=False)


def test_dependency_without_a_wheel_is_named(
    runtime_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip runs for real, against an empty local index, so no wheel exists for anything."""
    (runtime_copy / "requirements.txt").write_text("sdist-only-package==1.0\n")
    empty_index = tmp_path / "index"
    empty_index.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty_index))
    with pytest.raises(
        PackagingError, match=r"requirement 'sdist-only-package==1.0' has no wheel for manylinux2014"
    ):
        build_package(runtime_copy, tmp_path / "out", FUNCTIONS, vendor_dependencies=True)


def test_offline_plan_builds_lean_packages() -> None:
    seen: list[bool] = []
    record(lambda: seen.append(vendoring_needed()))
    assert seen == [False], "under mocks nothing is deployed, so nothing needs vendoring"


@pytest.mark.slow
def test_vendored_package_runs_with_nothing_but_itself(
    runtime_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Build from PyPI for the Flex platform, then import ``function_app`` in an isolated interpreter
    whose only third-party path is the zip's own site-packages: the proof the package answers."""
    out = tmp_path / "out"
    package = build_package(runtime_copy, out, FUNCTIONS, vendor_dependencies=True)
    assert package.vendored
    unzipped = tmp_path / "wwwroot"
    with zipfile.ZipFile(package.path) as archive:
        archive.extractall(unzipped)
    site_packages = unzipped / FUNCTIONS.site_packages
    assert (site_packages / "azure" / "functions").is_dir() and not (site_packages / "bin").exists()
    probe = (
        "import site, sys\n"
        f"site.addsitedir({str(site_packages)!r}); sys.path.insert(0, {str(unzipped)!r})\n"
        "import function_app, azure.functions, fastapi, openai, pydantic_core\n"
        "assert all(m.__file__.startswith(sys.path[0]) for m in (azure.functions, fastapi, openai, pydantic_core))\n"
        "assert len(function_app.app.get_functions()) == 1\n"
    )
    # -I: ignore PYTHON* variables and the user site; -S: not even this venv's site-packages.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "AGENTSTAGE_SQLITE_PATH": str(tmp_path / "state.db")},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr

    # A rebuild reuses the cached site-packages: no pip, same bytes.
    monkeypatch.setattr(packaging, "_pip_install", lambda *_: pytest.fail("pip ran again"))
    assert build_package(runtime_copy, out, FUNCTIONS, vendor_dependencies=True).sha256 == package.sha256
