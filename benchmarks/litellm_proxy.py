"""LiteLLM's proxy as the comparison point: its own virtualenv, made on first use, and the command to run it.

LiteLLM lives in ``benchmarks/.venv-litellm``, never in the project's environment: it brings its own openai,
fastapi and pydantic, and the comparison is fair only when each side runs with the dependencies a user would
install for it. The version is pinned so that figures taken months apart compare the same proxy, and because
an unpinned install takes whatever PyPI serves that day. 1.108.7 is the newest whose ``[proxy]`` extra
resolves from PyPI here (later ones pin ``litellm-proxy``/``litellm-proxy-extras``/``litellm-enterprise``
releases it does not serve); pip's own resolver picks it for an unpinned ``litellm[proxy]``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-litellm"
CONFIG_TEMPLATE = HERE / "litellm_proxy.yaml"
REQUIREMENT = "litellm[proxy]==1.108.7"
ENV = {
    # The packaged cost map: else the proxy first tries to fetch it from the network at start.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",  # its log (kept to say why it failed, if it does) holds errors only
}


class Unavailable(RuntimeError):
    """LiteLLM could not be installed here: the benchmark reports why and measures the rest."""


def ensure_installed() -> Path:
    """The ``litellm`` executable, creating the virtualenv and installing ``REQUIREMENT`` if needed."""
    executable = VENV / "bin" / "litellm"
    if executable.exists() and _installed_requirement() == REQUIREMENT:
        return executable
    print(f"installing {REQUIREMENT} into {VENV} (first use only) ...", file=sys.stderr, flush=True)
    _run([sys.executable, "-m", "venv", "--clear", str(VENV)], "creating the virtualenv")
    _run([str(VENV / "bin" / "pip"), "install", "--quiet", REQUIREMENT], f"pip install '{REQUIREMENT}'")
    (VENV / "requirement.txt").write_text(REQUIREMENT + "\n")
    return executable


def write_config(path: Path, api_base: str, master_key: str) -> Path:
    """The proxy's config at ``path``: model ``bench`` routed to ``api_base``, ``master_key`` for auth."""
    text = Template(CONFIG_TEMPLATE.read_text()).substitute(api_base=api_base, master_key=master_key)
    path.write_text(text)
    return path


def proxy_command(executable: Path, config: Path, port: int) -> list[str]:
    """One worker, as the runtime's one-worker figure it is compared with."""
    return [str(executable), "--config", str(config), "--port", str(port), "--num_workers", "1"]


def _installed_requirement() -> str:
    marker = VENV / "requirement.txt"
    return marker.read_text().strip() if marker.exists() else ""


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        reasons = [line for line in lines if line.startswith("ERROR")] or lines[-3:]  # not pip's warnings
        raise Unavailable(f"{what} failed (exit {done.returncode}): {' | '.join(reasons)}")
