"""``agentstage <verb>``: one module per verb in agentstage/commands/.

Every verb module exposes ``configure(parser)`` and ``run(args, console) -> int``; its one-line help is
in :data:`VERBS`. Only the verb being run is imported: ``plan`` need not load the runtime or the report
writers, which keeps the command's start close to the Pulumi program's own.
User mistakes (:class:`AgentstageError`) print one line and exit 2; anything else is a bug and prints
a one-line hint, with the traceback only under ``--debug`` (given before or after the verb).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from agentstage.console import Console
from core.collector import collector_paused
from core.errors import AgentstageError, ExitStatus

VERBS: dict[str, str] = {
    "plan": "show every resource a stack would create (offline: no cloud account or Pulumi CLI needed)",
    "check": "check stacks against agentstage's policy rules and checkov (offline); exit 1 on a blocking failure",
    "cost": "estimate what a stack costs a month: fixed (idle) and usage, from list prices (offline)",
    "report": "write one self-contained HTML page of a stack: architecture, policy verdict, cost, components",
    "stacks": "list every stack in delivery order (development -> production), as the pipeline deploys them",
    "dev": "run the agent runtime locally (scripted model unless AGENTSTAGE_LLM_ENDPOINT is set)",
    "ingest": "fill the local knowledge index that `agentstage dev` searches from a folder of documents",
}

BATCH_VERBS = frozenset({"plan", "check", "cost", "report", "stacks"})
"""Verbs that record stack graphs and exit. They run with the cyclic garbage collector paused
(:mod:`core.collector`; ``check --all`` peaks ~15% higher, 2.7 s sooner), and the console script ends
them without tearing their heap down object by object (:func:`entry`). ``dev`` and ``ingest`` run as long
as their input and keep both."""


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the full options of ``verb`` (the others are listed with their help only)."""
    parser = argparse.ArgumentParser(prog="agentstage", description="Blueprint kit for deploying AI agents.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, help_text in VERBS.items():
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        # Also after the verb; SUPPRESS keeps a --debug given before the verb from being reset to False.
        sub.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks of internal errors",
        )
        if name == verb:
            module = importlib.import_module(f"agentstage.commands.{name}")
            module.configure(sub)
            sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    console = console or Console()
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = _verb(argv)
    with collector_paused() if verb in BATCH_VERBS else contextlib.nullcontext():
        return _run(verb, argv, console)


def _run(verb: str | None, argv: list[str], console: Console) -> int:
    args = build_parser(verb if verb in VERBS else None).parse_args(argv)
    try:
        return int(args.handler(args, console))
    except AgentstageError as error:
        console.error(str(error))
        return int(error.exit_status)
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130
    except Exception as error:  # noqa: BLE001 - the last line of defence against tracebacks
        if args.debug:
            console.info(traceback.format_exc())
        console.error(f"internal error: {type(error).__name__}: {error} (rerun with --debug and report it)")
        return int(ExitStatus.INTERNAL)


def entry() -> None:
    """The ``agentstage`` console script: :func:`main`, then the exit.

    A batch verb's output is written and closed by then (files by their ``with`` blocks, the streams
    flushed here), and no thread or exit handler of ours has work left; what remains is the interpreter
    freeing millions of SDK and graph objects one by one - a second of CPU after a plan, more wall time.
    The process skips that; every other verb exits normally.
    """
    batch = _verb(sys.argv[1:]) in BATCH_VERBS
    if batch:
        gc.disable()  # for the process: main's pause then finds it off, and collects nothing at the end
        # An offline verb loads no third-party pydantic plugin into its stack models (they may report to a
        # service), and skips their discovery: a scan of every installed distribution's metadata, ~10 ms
        # of a plan beside the Pulumi SDKs. A value set in the environment is kept.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    status = main()
    if batch:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    raise SystemExit(status)


def _verb(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


if __name__ == "__main__":
    entry()
