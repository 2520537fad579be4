"""Each host's requirements: complete for what the runtime imports, and never Pulumi."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[3] / "runtime"
HOSTS = {
    "requirements.txt": "azure-functions",
    "requirements-lambda.txt": "mangum",
    "requirements-container.txt": "uvicorn",
}


def _requirements(name: str) -> dict[str, str]:
    """Distribution name (normalised) -> specifier line, following ``-r`` includes."""
    found: dict[str, str] = {}
    for line in (RUNTIME / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found.update(_requirements(line[3:].strip()))
        elif line:
            found[_normalise(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0])] = line
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize(("host", "server"), HOSTS.items())
def test_each_host_has_its_server_and_no_pulumi(host: str, server: str) -> None:
    requirements = _requirements(host)
    assert server in requirements, f"{host} lacks {server}"
    assert not [name for name in requirements if name.startswith("pulumi")], f"{host} pulls in Pulumi"


def test_function_app_stays_on_azure_functions_1x_for_python_311() -> None:
    assert "<2" in _requirements("requirements.txt")["azure-functions"], (
        "azure-functions 2.x needs Python 3.13"
    )


def test_serverless_hosts_carry_only_the_sdks_their_platform_lacks() -> None:
    """The Function App brings the Azure SDKs; the Lambda package brings neither the Azure SDKs nor boto3
    (the Lambda runtime has it, checked at cold start), which keeps it under Lambda's 50 MB direct upload."""
    functions, lambda_ = _requirements("requirements.txt"), _requirements("requirements-lambda.txt")
    assert "azure-cosmos" in functions and "boto3" not in functions
    assert not [name for name in lambda_ if name.startswith(("azure", "boto"))], lambda_


def test_every_third_party_module_the_deployed_runtime_imports_is_required() -> None:
    """``agent_runtime.testing`` (the scripted model server) is a development aid and is not deployed."""
    imported: set[str] = set()
    deployed = (p for p in (RUNTIME / "agent_runtime").rglob("*.py") if "testing" not in p.parts)
    for path in deployed:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"agent_runtime", "__future__"}
    distributions = importlib.metadata.packages_distributions()
    required = _requirements("requirements-container.txt").keys()  # the host that runs on every cloud
    providers = {
        module: {_normalise(d) for d in distributions.get(module, [module])} for module in third_party
    }
    missing = {module: sorted(dists) for module, dists in providers.items() if not dists & required}
    assert not missing, f"runtime imports modules no requirement provides: {missing}"
