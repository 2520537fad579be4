"""``python -m agent_runtime.testing --port 8400 [--host 127.0.0.1] [--script rules.json]``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import uvicorn

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
    parser.add_argument("--script", type=Path, help="JSON rules (default: calculator questions, else echo)")
    args = parser.parse_args(argv)
    script = Script.from_json(json.loads(args.script.read_text())) if args.script else default_script()
    # The socket comes from bind_socket, for its TCP_NODELAY: without it each request of a keep-alive
    # client waits for a delayed ACK and the "model" adds milliseconds that no real endpoint would.
    server = uvicorn.Server(uvicorn.Config(create_model_app(script), log_level="warning", access_log=False))
    server.run(sockets=[bind_socket(args.host, args.port)])


if __name__ == "__main__":
    main()
