"""``agentstage <verb>``: one module per verb in agentstage/commands/.

Every verb module exposes ``HELP`` (one line), ``configure(parser)`` and ``run(args, console) -> int``.
User mistakes (:class:`AgentstageError`) print one line and exit 2; anything else is a bug and prints
a one-line hint, with the traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import traceback
from collections.abc import Sequence

from agentstage.console import Console
from agentstage.errors import AgentstageError, ExitStatus

VERBS = ("plan", "check", "dev")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentstage", description="Blueprint kit for deploying AI agents.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        module = importlib.import_module(f"agentstage.commands.{verb}")
        sub = verbs.add_parser(verb, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    console = console or Console()
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    raise SystemExit(main())
