"""checkov's command line, run by a warm interpreter: import first, then wait for the arguments.

Started by :class:`policies.checkov.runner.WarmCheckov` with ``.venv-checkov/bin/python`` before
agentstage plans the stack, so that checkov's seconds of imports overlap the plan. It prints
:data:`READY` once checkov is imported - the parent's proof that the driver started - then reads
checkov's arguments as a JSON list from stdin and runs exactly what the ``checkov`` script runs,
so stdout and the exit status are the command line's. Runs inside checkov's environment: it may
import only checkov and the standard library.
"""

import atexit
import contextlib
import json
import os
import sys
import warnings

READY = "agentstage-checkov-driver: ready"


def main() -> int | None:
    warnings.simplefilter("ignore", category=SyntaxWarning)  # as the checkov script does
    with contextlib.redirect_stdout(sys.stderr):  # nothing printed while importing may precede READY
        from checkov.main import Checkov
    print(READY, flush=True)
    arguments = json.loads(sys.stdin.read())
    sys.argv = ["checkov", *arguments]  # checkov also reads sys.argv (config file lookup, run metadata)
    return Checkov(arguments).run()


def exit_now(status: int | None) -> None:
    """Exit without tearing down checkov's thousands of modules, which takes a second or more.

    Nothing is lost: the exit handlers run and the output is flushed, as in a normal exit.
    """
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status or 0)


if __name__ == "__main__":
    exit_now(main())
