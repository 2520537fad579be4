"""``python -m agent_runtime.testing --port 8400 [--host 127.0.0.1] [--script rules.json]``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from agent_runtime.testing.script import Script, default_script
from agent_runtime.testing.serve import bind_socket
from agent_runtime.testing.server import create_model_app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m agent_runtime.testing", description="Serve the scripted OpenAI-compatible model."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=8400, help="default: 8400, the runtime's default endpoint"
    )
    parser.add_argument(
        "--script",
        type=Path,
        help="JSON rules (default: calculator questions, 'call <tool> {json}', else echo)",
    )
    args = parser.parse_args(argv)
    script = _script(parser, args.script) if args.script else default_script()
    # The socket comes from bind_socket, for its TCP_NODELAY: without it each request of a keep-alive
    # client waits for a delayed ACK and the "model" adds milliseconds that no real endpoint would.
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as error:
        parser.error(f"cannot listen on {args.host}:{args.port}: {error.strerror}; choose another --port")
    sock.listen()  # before saying where: a client may connect as soon as it reads the line
    host, port = sock.getsockname()[:2]
    print(
        f"scripted model server at http://{host}:{port}/v1 "
        f"(point the runtime at it: AGENTSTAGE_LLM_ENDPOINT=http://{host}:{port}/v1 AGENTSTAGE_LLM_AUTH=none)",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(create_model_app(script), log_level="warning", access_log=False))
    server.run(sockets=[sock])


def _script(parser: argparse.ArgumentParser, path: Path) -> Script:
    """The rules in ``path``; a file that cannot be read or is not a script exits 2 saying why."""
    try:
        return Script.from_json(json.loads(path.read_text()))
    except OSError as error:
        parser.error(f"--script {path}: {error.strerror}")
    except json.JSONDecodeError as error:
        parser.error(f"--script {path}: not valid JSON: {error}")
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        parser.error(f"--script {path}: {where}: {first['msg']}")


if __name__ == "__main__":
    main()
