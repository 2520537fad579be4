"""Stack files: where a project keeps them, reading one as the Pulumi engine would, and validating it.

A stack file is ``<stackConfigDir>/Pulumi.<stack>.yaml`` (``stackConfigDir`` from ``Pulumi.yaml``). Its
``config`` values reach the program as strings (structured values JSON-encoded), secure values as a
redacted marker: exactly what a real run hands the program, minus what only decryption could know.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.reader import ReaderError

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

PULUMI_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
"""What Pulumi accepts as a stack or project name; a stack's name is also part of its file's name."""


class UnsupportedYamlError(yaml.MarkedYAMLError):
    """Valid YAML that a stack file or Pulumi.yaml must not use (see :class:`ProjectYamlLoader`)."""


class ProjectYamlLoader(SAFE_LOADER):
    """The safe loader, refusing what would make the offline plan read another document than Pulumi does,
    or cost far more than the file's size: a key given twice in one mapping (Pulumi's parser refuses it,
    PyYAML keeps the last), an alias (a few lines of nested aliases expand to gigabytes, and Pulumi's config
    needs none) and the tags JSON cannot carry. A date stays the text it is written as, as Pulumi reads it."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # Only an alias reaches a node a second time (or, recursive, while it is being built).
        if node in self.constructed_objects or node in self.recursive_objects:
            raise UnsupportedYamlError(
                problem="this value is repeated by an alias (*): write it out in full where it is needed, "
                "anchors (&) and aliases are not supported here",
                problem_mark=node.start_mark,
            )
        return super().construct_object(node, deep)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[str, int] = {}
        for key, _value in node.value:
            if isinstance(key, ScalarNode):  # compared as written, as Pulumi does: 1 and "1" are one key
                if key.value in first_lines:
                    raise UnsupportedYamlError(
                        problem=f"duplicate key '{key.value}' (first on line {first_lines[key.value]}): "
                        "Pulumi refuses a key given twice; keep one",
                        problem_mark=key.start_mark,
                    )
                first_lines[key.value] = key.start_mark.line + 1
        return super().construct_mapping(node, deep)

    def refuse_tag(self, node: Node) -> NoReturn:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise UnsupportedYamlError(
            problem=f"{tag} has no JSON equivalent, and config reaches the program as JSON: write the value "
            "as text, a list or a mapping",
            problem_mark=node.start_mark,
        )


ProjectYamlLoader.add_constructor("tag:yaml.org,2002:binary", ProjectYamlLoader.refuse_tag)
ProjectYamlLoader.add_constructor("tag:yaml.org,2002:set", ProjectYamlLoader.refuse_tag)
ProjectYamlLoader.add_constructor("tag:yaml.org,2002:timestamp", ProjectYamlLoader.construct_yaml_str)


def read_yaml(path: Path) -> Any:
    """A stack file or Pulumi.yaml, or one clear error naming the file and the line."""
    shown = shown_path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AgentstageError(f"cannot read {shown}: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise AgentstageError(
            f"{shown} is not UTF-8 text (line {line}: byte 0x{data[error.start]:02x}): save it as UTF-8"
        ) from None
    try:
        return yaml.load(text, Loader=ProjectYamlLoader)
    except UnsupportedYamlError as error:  # the loader marks each where it is
        mark = error.problem_mark
        raise AgentstageError(
            f"{shown}, line {mark.line + 1}, column {mark.column + 1}: {error.problem}"
        ) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise AgentstageError(f"{shown} is not valid YAML{where}: {error.problem}") from None
    except ReaderError as error:  # a character YAML does not allow, such as a control character
        line = data.count(b"\n", 0, error.position) + 1
        raise AgentstageError(
            f"{shown} is not valid YAML (line {line}): {str(error).splitlines()[0]}"
        ) from None


def project_dir(given: Path | None = None) -> Path:
    """The project to plan: the one given, else the working directory's, else agentstage's own."""
    if given is not None:
        if not (given / "Pulumi.yaml").is_file():
            raise AgentstageError(f"--project-dir {given}: no Pulumi.yaml there")
        return given.resolve()
    cwd = Path.cwd()
    return cwd if (cwd / "Pulumi.yaml").is_file() else PROJECT_DIR


def project_settings(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """The project's Pulumi.yaml: a mapping with the project's name (every URN carries it)."""
    path = project_dir / "Pulumi.yaml"
    settings = read_yaml(path)
    if not isinstance(settings, dict):
        raise AgentstageError(
            f"{shown_path(path)}: expected the project's settings as a mapping "
            "(name:, runtime:, as pulumi new writes them)"
        )
    name = settings.get("name")
    if not isinstance(name, str) or not PULUMI_NAME.fullmatch(name):
        raise AgentstageError(
            f"{shown_path(path)}: name: {json.dumps(name)} is not a project name; "
            "Pulumi takes 1-100 letters, digits, '-', '_' or '.' (e.g. name: agentstage)"
        )
    return settings


def stack_config_dir(project_dir: Path = PROJECT_DIR) -> Path:
    """Where the stack files are: ``stackConfigDir``, a folder inside the project relative to Pulumi.yaml."""
    folder = project_settings(project_dir).get("stackConfigDir", ".")
    root = os.path.normpath(project_dir)  # lexically: a symlinked folder inside the project is inside it
    if not isinstance(folder, str) or not Path(os.path.normpath(project_dir / folder)).is_relative_to(root):
        raise AgentstageError(
            f"{shown_path(project_dir / 'Pulumi.yaml')}: stackConfigDir: {json.dumps(folder)} is not a "
            "folder inside the project; give the stack files' folder relative to Pulumi.yaml "
            "(stackConfigDir: stacks)"
        )
    return project_dir / folder


def stack_file(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    """The stack's file, or a clear error listing the stacks that exist."""
    if not PULUMI_NAME.fullmatch(stack):
        raise StackNotFoundError(
            f"unknown stack '{stack}': a Pulumi stack name is 1-100 letters, digits, '-', '_' or '.'"
        )
    path = stack_config_dir(project_dir) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(available_stacks(project_dir)) or "none"
        raise StackNotFoundError(
            f"unknown stack '{stack}': {path.relative_to(project_dir)} does not exist (stacks: {known})"
        )
    return path


def available_stacks(project_dir: Path = PROJECT_DIR) -> list[str]:
    """The stacks with a stack file (a folder, or a name Pulumi would refuse, is not one)."""
    names = (
        p.name[len("Pulumi.") : -len(".yaml")]
        for p in stack_config_dir(project_dir).glob("Pulumi.*.yaml")
        if p.is_file()
    )
    return sorted(name for name in names if PULUMI_NAME.fullmatch(name))


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
    """Config as the Pulumi engine hands it to a program: strings, structured values as JSON, a blank value
    as empty text. Other namespaces' values that are not text are left out: they are their providers', which
    do not run offline, and nothing here reads them.

    Secure (encrypted) values cannot be decrypted offline; they are passed as a redacted marker and
    flagged secret, exactly where a real run would see a secret. A top-level key other than
    :data:`TOP_LEVEL_KEYS` (a misspelled ``config:``) is one clear error, not a list of missing settings.
    """
    shown = shown_path(path)
    document = read_yaml(path) or {}
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
    from core.config import NAMESPACE

    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        if not isinstance(key, str) or ":" not in key:
            raise AgentstageError(
                f"{shown}: config key {json.dumps(key)} has no namespace; Pulumi takes namespace:name keys "
                f"(e.g. {NAMESPACE}:environment)"
            )
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = SECRET
            secret_keys.append(key)
        elif isinstance(value, str):
            config[key] = value
        elif key.partition(":")[0] == NAMESPACE:
            # Pulumi reads a blank value into a string first: empty text, not "null".
            config[key] = "" if value is None else json.dumps(value)
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
