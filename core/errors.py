"""Errors the command line turns into one clear line and a documented exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit codes of every ``agentstage`` command."""

    OK = 0
    POLICY_FAILED = 1  # the command ran and found mandatory failures (agentstage check)
    USAGE = 2  # bad arguments, unknown stack, invalid stack configuration
    INTERNAL = 3  # a bug in agentstage: rerun with --debug and report it


class AgentstageError(Exception):
    """A mistake the user can fix; its message says what and how. Never shown with a traceback."""

    exit_status = ExitStatus.USAGE
