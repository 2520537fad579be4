"""Stack files: where a project keeps them, reading one as the Pulumi engine would, and validating it.

A stack file is ``<stackConfigDir>/Pulumi.<stack>.yaml`` (``stackConfigDir`` from ``Pulumi.yaml``). Its
``config`` values reach the program as strings (structured values JSON-encoded), secure values as a
redacted marker: exactly what a real run hands the program, minus what only decryption could know.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from core.errors import AgentstageError
from core.graph import SECRET

if TYPE_CHECKING:
    from core.config import StackConfig

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""agentstage's own project (its Pulumi.yaml and stacks/): the default when no project is given."""


class StackNotFoundError(AgentstageError):
    """The stack has no stack file."""


SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it (its wheels are): the same documents and errors, ten
times faster than the pure-Python one - a plan reads the stack file several times."""


def project_dir(given: Path | None = None) -> Path:
    """The project to plan: the one given, else the working directory's, else agentstage's own."""
    if given is not None:
        if not (given / "Pulumi.yaml").is_file():
            raise AgentstageError(f"--project-dir {given}: no Pulumi.yaml there")
        return given.resolve()
    cwd = Path.cwd()
    return cwd if (cwd / "Pulumi.yaml").is_file() else PROJECT_DIR


def project_settings(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    with open(project_dir / "Pulumi.yaml", encoding="utf-8") as handle:
        return yaml.load(handle, Loader=SAFE_LOADER)


def stack_file(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    """The stack's file, or a clear error listing the stacks that exist."""
    config_dir = project_dir / project_settings(project_dir).get("stackConfigDir", ".")
    path = config_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(available_stacks(project_dir)) or "none"
        raise StackNotFoundError(
            f"unknown stack '{stack}': {path.relative_to(project_dir)} does not exist (stacks: {known})"
        )
    return path


def available_stacks(project_dir: Path = PROJECT_DIR) -> list[str]:
    config_dir = project_dir / project_settings(project_dir).get("stackConfigDir", ".")
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in config_dir.glob("Pulumi.*.yaml"))


TOP_LEVEL_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")
"""What a stack file may hold at the top: ``config``, and what Pulumi itself writes there (the secrets
provider and its key or salt, and the Pulumi ESC environments the stack imports)."""


def shown_path(path: Path) -> str:
    """``path`` as messages name it: relative to its project (``stacks/Pulumi.dev.yaml``), else as given."""
    for folder in path.resolve().parents:
        if (folder / "Pulumi.yaml").is_file():
            return path.resolve().relative_to(folder).as_posix()
    return str(path)


def read_stack_config(path: Path) -> tuple[dict[str, str], list[str]]:
    """Config as the Pulumi engine hands it to a program: strings, structured values as JSON.

    Secure (encrypted) values cannot be decrypted offline; they are passed as a redacted marker and
    flagged secret, exactly where a real run would see a secret. A top-level key other than
    :data:`TOP_LEVEL_KEYS` (a misspelled ``config:``) is one clear error, not a list of missing settings.
    """
    shown = shown_path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.load(handle, Loader=SAFE_LOADER) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise AgentstageError(
            f"{shown} is not valid YAML{where}: {getattr(error, 'problem', error)}"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise AgentstageError(f"{shown}: expected a mapping with a 'config' mapping at the top level")
    unknown = [key for key in document if key not in TOP_LEVEL_KEYS]
    if unknown:
        key = unknown[0]
        match = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1, cutoff=0.6)
        raise AgentstageError(
            f"{shown}: unknown top-level key '{key}'"
            + (f" (did you mean {match[0]}?)" if match else "")
            + "; a stack file holds its settings under config:, beside only what Pulumi writes there ("
            + ", ".join(TOP_LEVEL_KEYS[1:])
            + ")"
        )
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = SECRET
            secret_keys.append(key)
        elif isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    return config, secret_keys


def load_stack_config(stack: str, project_dir: Path = PROJECT_DIR) -> tuple[StackConfig, Path]:
    """The stack file, validated, and where it is (relative to the project when inside it, for messages)."""
    from core.config import StackConfigError, parse_stack_config

    path = stack_file(stack, project_dir)
    raw, _secret_keys = read_stack_config(path)
    try:
        config = parse_stack_config(raw, shown_path(path))
    except StackConfigError as error:
        raise AgentstageError(str(error)) from None
    return config, path.relative_to(project_dir) if path.is_relative_to(project_dir) else path
