"""What every part of the stack model shares: the namespace, names, strict camelCase models, and errors
that name the stack file, the key as written there and what is allowed - in words, never a regex."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

NAMESPACE = "agentstage"

_PATTERN_WORDS: dict[str, str] = {}


def pattern(regex: str, words: str) -> str:
    """``regex`` for a field's ``pattern``, remembered with what it allows in words: a value that does not
    match is reported with the words (``expected 2-8 lowercase letters or digits``), never the regex."""
    _PATTERN_WORDS[regex] = words
    return regex


GUID = pattern(
    r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$",
    "a GUID (8-4-4-4-12 hexadecimal digits, e.g. 11111111-2222-3333-4444-555555555555)",
)
"""An Entra ID object, application (client) or tenant id."""

Name = Annotated[
    str,
    Field(
        pattern=pattern(
            r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$",
            "2-32 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen",
        )
    ),
]


class Strict(BaseModel):
    """camelCase keys as written in the stack file; unknown keys rejected."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True, populate_by_name=False)


class StackConfigError(ValueError):
    """A stack file says something agentstage cannot use; the message says where and how to fix it."""


YAML_BOOLEAN_HINT = (
    'YAML reads unquoted yes/no/on/off/true/false as a boolean: quote the value ("Off", "yes") '
    "to keep it text"
)


def describe_validation_error(
    error: ValidationError, source: str, root: type[BaseModel], prefix: str = ""
) -> str:
    """One line per problem: file, key path as written in the file, what is wrong, what was given.

    ``root`` is the model the file was validated against (it lists the keys allowed where one is
    unknown); ``prefix`` goes before a top-level key (``agentstage:`` in a stack file).
    """
    lines = []
    problems = error.errors(include_url=False)
    for problem in problems:
        if problem["type"] == "too_short" and _has_problem_below(problem["loc"], problems):
            continue  # a list whose items were rejected: the items' own errors say why
        location = _key_path(problem["loc"], prefix)
        if problem["type"] == "extra_forbidden":
            parent = _key_path(problem["loc"][:-1], prefix)
            allowed = _allowed_under(problem["loc"][:-1], root)
            lines.append(
                f"{source}: unknown key '{location}'"
                + (f"; allowed keys under {parent}: {allowed}" if parent else f"; allowed keys: {allowed}")
                + did_you_mean(str(problem["loc"][-1]), allowed.split(", "))
            )
            continue
        message = _in_words(problem)
        given = problem.get("input")
        # A string (or one of some words) given an unquoted YAML boolean, nested (a bool) or at the top
        # level (the engine passes it as "true"/"false"): say why, and how to keep the text.
        boolean = isinstance(given, bool) or given in ("true", "false")
        hint = f"; {YAML_BOOLEAN_HINT}" if boolean and not problem["type"].startswith("bool") else ""
        if problem["type"] == "missing":
            lines.append(f"{source}: missing required key '{location}'")
        elif location:
            shown = "" if isinstance(given, dict | list) else f" (got {_shown(given)})"
            lines.append(f"{source}: {location}: {message}{shown}{hint}")
        else:
            lines.append(f"{source}: {message}{hint}")
    return "\n".join(lines)


_SHOWN_LENGTH = 80


def _shown(given: Any) -> str:
    """``given`` as a message shows it: a long text (a value over a length limit) by its start and length."""
    if isinstance(given, str) and len(given) > _SHOWN_LENGTH:
        return f"{given[:_SHOWN_LENGTH]!r}... ({len(given):,} characters)"
    return repr(given)


def _in_words(problem: Any) -> str:
    """pydantic's message, with a pattern replaced by what it allows in words."""
    if problem["type"] == "string_pattern_mismatch":
        words = _PATTERN_WORDS.get(problem.get("ctx", {}).get("pattern", ""))
        return f"expected {words}" if words else "not in the form this key allows"
    return problem["msg"].removeprefix("Value error, ")


def _has_problem_below(loc: tuple[int | str, ...], problems: list[Any]) -> bool:
    return any(len(p["loc"]) > len(loc) and tuple(p["loc"][: len(loc)]) == tuple(loc) for p in problems)


def _key_path(loc: tuple[int | str, ...], prefix: str) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else f"{prefix}{part}")
    return path


def _allowed_under(loc: tuple[int | str, ...], root: type[BaseModel]) -> str:
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            continue  # a key of a mapping (an agent's name): its values are the model already found
        annotation = field.annotation
        model = next(
            (a for a in _flatten(annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
        if model is None:
            return "(not a mapping)"
    return ", ".join(sorted(f.alias or n for n, f in model.model_fields.items()))


def _flatten(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if not args:
        return [annotation]
    return [a for arg in args for a in _flatten(arg)]


def require_unique(key: str, names: list[str]) -> None:
    """``key`` as the stack file writes it (``agentstage:agents``)."""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{key}: names must be unique; repeated: {', '.join(duplicates)}")


def closest(given: str, known: Iterable[str], count: int = 1) -> list[str]:
    """The names of ``known`` that ``given`` most likely misspells, best first (none when nothing is close)."""
    return difflib.get_close_matches(given, list(known), n=count, cutoff=0.6)


def did_you_mean(given: str, known: Iterable[str]) -> str:
    """``"; did you mean calculator?"`` when a known name is close to ``given``, else ``""``."""
    match = closest(given, known)
    return f"; did you mean {match[0]}?" if match else ""
