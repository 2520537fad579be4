"""How every host starts the runtime on its settings, and says in one line why it cannot.

The hosts - the container's server (:func:`agent_runtime.api.serve_app`), the task worker, the Lambda and
Function App modules - read the settings and assemble the runtime when they start. A mistake there (a
value that does not parse, settings that contradict each other, an agent naming an unknown tool, a
settings secret that cannot be used) must reach the operator as one line that names the variable and what
is wrong, and never a secret's value. An exception that escapes is printed by the host with everything it
chains, and pydantic's own message quotes the settings it was given
(``input_value={'llm_api_key': 'sk-...', ...}``): the Lambda and Functions runtimes would put that in the
function's log. :func:`configured` turns those errors into a :class:`StartupError` that carries nothing but
the line.

It imports neither the settings reader nor the runtime's services, so the Lambda host can run the settings
secret's loading through it before the settings module (which fixes the settings directory) is imported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import SettingsError

from agent_runtime.errors import ConfigurationError
from agent_runtime.settings_contract import SETTINGS_DIR_VARIABLE, SettingsContract, env_name, secret_fields
from agent_runtime.settings_secret import SettingsSecretError, without_secret_values

T = TypeVar("T")


class StartupError(Exception):
    """The runtime cannot start as configured. The message is one line that names the setting (never a
    secret's value); it is raised with no cause and no context, so a host that prints it prints nothing
    else."""


def configured(build: Callable[[], T]) -> T:
    """``build()`` - reading the settings, assembling the app - or the :class:`StartupError` that says why
    it cannot be done with this configuration. Any other exception is a bug and propagates unchanged."""
    try:
        return build()
    except SettingsSecretError as error:
        problem = f"settings secret: {error}"
    except (ValidationError, SettingsError) as error:
        problem = f"invalid settings: {describe_settings_error(error)}"
    except ConfigurationError as error:
        problem = f"invalid configuration: {error.message}"
    # Raised here, after the handler: an exception raised inside it would keep the original as its context.
    directory = os.environ.get(SETTINGS_DIR_VARIABLE)
    raise StartupError(without_secret_values(problem, Path(directory) if directory else None))


_SETTINGS_ERROR_FIELD = re.compile(r'field "(?P<field>\w+)"')


def describe_settings_error(error: ValidationError | SettingsError) -> str:
    """The settings' problems on one line, each naming its variable, what is wrong and the value given
    (never a secret's). Fits any model whose fields are settings of the contract (the gateway authorizer's
    too)."""
    fields = SettingsContract.model_fields
    if isinstance(error, SettingsError):
        found = _SETTINGS_ERROR_FIELD.search(str(error))
        if found and found["field"] in fields:
            return f"{env_name(found['field'])}: cannot be read: {error.__cause__ or error}"
        return str(error)
    problems = []
    for problem in error.errors(include_url=False):
        message = problem["msg"].removeprefix("Value error, ")
        loc = problem["loc"]
        field = str(loc[0]) if loc else ""
        if field not in fields:
            problems.append(message)  # a check across settings: its message names them
            continue
        item = "".join(f"[{part}]" for part in loc[1:])
        given = problem.get("input")
        shown = (
            ""
            if field in secret_fields() or not isinstance(given, str | int | float)
            else f" (got {given!r})"
        )
        problems.append(f"{env_name(field)}{item}: {message}{shown}")
    return "; ".join(problems)
