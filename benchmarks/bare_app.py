"""The cold-start baseline: a bare FastAPI app that imports openai (what any agent service pays)."""

import openai  # noqa: F401  (imported for its cost, as a real service would)
from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
