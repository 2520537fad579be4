"""Reading stack files and Pulumi.yaml: every mistake in them is exit 2 with one line naming the file (and
the line or key), never an internal error; the document read is the one Pulumi reads, and reading it costs
no more than its size."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agentstage.cli import main
from agentstage.console import Console
from core.stacks import read_stack_config

PILOT = "stacks/Pulumi.pilot-dev.yaml"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), console=Console(out, err))
    return status, out.getvalue(), err.getvalue()


def usage_error(project: Path, *argv: str) -> str:
    """The one error line of a command that must stop at a user's mistake (exit 2)."""
    status, _out, err = run(*argv, "--project-dir", str(project))
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1, err
    return errors[0].removeprefix("error: ")


def plan_error(project: Path, stack: str = "bad") -> str:
    return usage_error(project, "plan", "--stack", stack)


def write_stack(project: Path, text: str | bytes, stack: str = "bad") -> None:
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))


def pilot_with(project: Path, old: str, new: str) -> str:
    """The pilot-dev stack file with ``old`` replaced by ``new``."""
    text = (project / PILOT).read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


# --- aliases: refused before anything expands them ----------------------------------------------------------


def nested_aliases(levels: int) -> str:
    """A few lines whose aliases expand to 9**levels values: the "billion laughs"."""
    lines = ['  other:a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  other:a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_aliases_are_refused_even_under_another_namespace(project: Path) -> None:
    write_stack(project, pilot_with(project, "config:\n", "config:\n" + nested_aliases(3)))
    assert plan_error(project) == (
        "stacks/Pulumi.bad.yaml, line 4, column 13: this value is repeated by an alias (*): write it out in full "
        "where it is needed, anchors (&) and aliases are not supported here"
    )


def test_an_alias_in_pulumi_yaml_is_refused(project: Path) -> None:
    (project / "Pulumi.yaml").write_text("name: &n agentstage\ndescription: *n\nruntime: python\n")
    assert plan_error(project, "pilot-dev").startswith(
        "Pulumi.yaml, line 1, column 7: this value is repeated"
    )


def test_values_of_other_namespaces_that_are_not_text_are_not_serialized(project: Path) -> None:
    """Their providers do not run offline: what nothing reads costs nothing."""
    write_stack(
        project, "config:\n  aws:region: eu-west-1\n  aws:defaultTags: {tags: {a: b}}\n  agentstage:n: 3\n"
    )
    config, _secret_keys = read_stack_config(project / "stacks" / "Pulumi.bad.yaml")
    assert config == {"aws:region": "eu-west-1", "agentstage:n": "3"}


# --- duplicate keys: Pulumi refuses them, so the plan does too -----------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            "  agentstage:environment: dev\n",
            "  agentstage:environment: dev\n  agentstage:environment: prod\n",
            "line 9, column 3: duplicate key 'agentstage:environment' (first on line 8)",
        ),
        (
            "    owner: platform-team\n",
            "    owner: platform-team\n    owner: someone-else\n",
            "line 11, column 5: duplicate key 'owner' (first on line 10)",
        ),
    ],
)
def test_a_key_given_twice_is_refused_with_both_lines(project: Path, old: str, new: str, where: str) -> None:
    write_stack(project, pilot_with(project, old, new))
    assert (
        plan_error(project) == f"stacks/Pulumi.bad.yaml, {where}: Pulumi refuses a key given twice; keep one"
    )


def test_a_key_given_twice_in_pulumi_yaml_is_refused(project: Path) -> None:
    (project / "Pulumi.yaml").write_text("name: agentstage\nruntime: python\nname: other\n")
    assert plan_error(project, "pilot-dev") == (
        "Pulumi.yaml, line 3, column 1: duplicate key 'name' (first on line 1): Pulumi refuses a key given "
        "twice; keep one"
    )


# --- blank values: empty text, as Pulumi hands them to a program, never the word "null" --------------------


@pytest.mark.parametrize("key", ["environment", "namePrefix", "memory"])
def test_a_blank_value_is_reported_for_its_key_not_read_as_null(project: Path, key: str) -> None:
    text = (project / PILOT).read_text(encoding="utf-8")
    start = text.index(f"  agentstage:{key}:")
    end = text.index("\n  agentstage:", start + 1)
    write_stack(project, text[:start] + f"  agentstage:{key}:" + text[end:])
    message = plan_error(project)
    assert message.startswith(f"stacks/Pulumi.bad.yaml: agentstage:{key}: "), message
    assert "null" not in message


# --- what a stack file holds that JSON cannot, or that is not text -----------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"config:\n  agentstage:cloud: caf\xe9\n",
            " is not UTF-8 text (line 2: byte 0xe9): save it as UTF-8",
        ),
        (b"\xc3\x28\x91\x00\xff garbage", " is not UTF-8 text (line 1: byte 0xc3): save it as UTF-8"),
        ("config: {}\n".encode("utf-16"), " is not UTF-8 text (line 1: byte 0xff): save it as UTF-8"),
        (
            b"config:\n  agentstage:blueprint: !!binary aGVsbG8=\n",
            ", line 2, column 25: !!binary has no JSON equivalent, and config reaches the program as JSON",
        ),
        (
            b"config:\n  agentstage:blueprint: pilot\n  5: x\n",
            ": config key 5 has no namespace; Pulumi takes namespace:name keys (e.g. agentstage:environment)",
        ),
        (b"config:\n  a: \x07\n", " is not valid YAML (line 2): unacceptable character #x0007"),
    ],
)
def test_a_stack_file_pulumi_cannot_read_is_one_line(project: Path, content: bytes, message: str) -> None:
    write_stack(project, content)
    assert plan_error(project).startswith(f"stacks/Pulumi.bad.yaml{message}")


def test_an_unquoted_date_is_the_text_it_is_written_as(project: Path) -> None:
    write_stack(
        project, pilot_with(project, "agentstage:blueprint: pilot", "agentstage:blueprint: 2024-01-01")
    )
    message = plan_error(project)
    assert message.startswith("stacks/Pulumi.bad.yaml: agentstage:blueprint: ") and "'2024-01-01'" in message
    write_stack(project, pilot_with(project, "owner: platform-team", "owner: 2024-01-01"))
    config, _secret_keys = read_stack_config(project / "stacks" / "Pulumi.bad.yaml")
    assert json.loads(config["agentstage:tags"])["owner"] == "2024-01-01"


def test_a_stack_name_pulumi_would_refuse_is_an_unknown_stack(project: Path) -> None:
    assert plan_error(project, "a" * 300) == (
        f"unknown stack '{'a' * 300}': a Pulumi stack name is 1-100 letters, digits, '-', '_' or '.'"
    )


# --- Pulumi.yaml ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", ": expected the project's settings as a mapping (name:, runtime:, as pulumi new writes them)"),
        (b"- a\n", ": expected the project's settings as a mapping"),
        (b"name: [a\n", " is not valid YAML (line 2, column 1): did not find expected ',' or ']'"),
        (b"name: caf\xe9\n", " is not UTF-8 text (line 1: byte 0xe9): save it as UTF-8"),
        (b"runtime: python\n", ": name: null is not a project name; Pulumi takes 1-100 letters"),
        (b"name: [a]\n", ': name: ["a"] is not a project name'),
        (b"name: x\nstackConfigDir: /etc\n", ': stackConfigDir: "/etc" is not a folder inside the project'),
        (b"name: x\nstackConfigDir: ../x\n", ': stackConfigDir: "../x" is not a folder inside the project'),
        (b"name: x\nstackConfigDir: 5\n", ": stackConfigDir: 5 is not a folder inside the project"),
        (b"name: x\nstackConfigDir: [a]\n", ': stackConfigDir: ["a"] is not a folder inside the project'),
    ],
)
@pytest.mark.parametrize("command", [("plan", "--stack", "pilot-dev"), ("stacks",)])
def test_a_pulumi_yaml_that_cannot_be_read_is_one_line(
    project: Path, content: bytes, message: str, command: tuple[str, ...]
) -> None:
    (project / "Pulumi.yaml").write_bytes(content)
    assert usage_error(project, *command).startswith(f"Pulumi.yaml{message}")


# --- one bad stack file among good ones -----------------------------------------------------------------------


@pytest.mark.parametrize("command", [("stacks",), ("check", "--all", "--no-checkov")])
def test_one_bad_stack_file_is_named_by_the_commands_over_every_stack(
    project: Path, command: tuple[str, ...]
) -> None:
    write_stack(project, b"config:\n  agentstage:cloud: caf\xe9\n", stack="a-bad")
    assert usage_error(project, *command) == (
        "stacks/Pulumi.a-bad.yaml is not UTF-8 text (line 2: byte 0xe9): save it as UTF-8"
    )
