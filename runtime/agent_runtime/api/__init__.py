"""The runtime's HTTP API (FastAPI)."""

from agent_runtime.api.app import create_app, serve_app

__all__ = ["create_app", "serve_app"]
