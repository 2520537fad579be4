"""Ingestion's embeddings take the governed model path: budgets reserve and settle, retries and the breaker
apply, and each attempt is an ``embeddings`` span with token metrics."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from otel_helpers import Otel

from agent_runtime.api import create_app
from agent_runtime.caller import Caller
from agent_runtime.errors import QuotaExceeded
from agent_runtime.knowledge.service import INGEST_AGENT
from agent_runtime.services import Services
from agent_runtime.settings import Settings
from agent_runtime.testing import Faults, ScriptedModelServer
from agent_runtime.testing.server import embed

MODEL = "text-embedding-3-small"
TEXTS = ["the leave policy", "expense receipts above forty euros"]
BUDGET = {
    "name": "ingest-tokens",
    "scope": "agent",
    "match": INGEST_AGENT,
    "window_seconds": 3600,
    "tokens": 120,
}


def embed_through_services(
    model: ScriptedModelServer, tmp_path: Path, otel: Otel, calls: int, **overrides: Any
) -> list[Any]:
    """``calls`` governed embedding calls of TEXTS; each result or the exception it raised."""
    settings = Settings(
        **{
            "llm_endpoint": model.base_url,
            "llm_auth": "none",
            "sqlite_path": str(tmp_path / "state.db"),
            "api_key": "k" * 20,
            "budgets": json.dumps([BUDGET]),
            "retry_base_seconds": 0.01,
        }
        | overrides
    )
    app = create_app(settings, **otel.app_options)

    async def scenario() -> list[Any]:
        services: Services = await app.state.lifecycle.get()
        outcomes: list[Any] = []
        try:
            for _ in range(calls):
                try:
                    outcomes.append(
                        await services.models.embed(
                            Caller(INGEST_AGENT),
                            INGEST_AGENT,
                            TEXTS,
                            model=MODEL,
                            dimensions=settings.embedding_dimensions,
                            deadline=asyncio.get_running_loop().time() + 5,
                        )
                    )
                except QuotaExceeded as refused:
                    outcomes.append(refused)
        finally:
            await app.state.lifecycle.close()
        return outcomes

    return asyncio.run(scenario())


def test_embeddings_are_budgeted_traced_and_measured(
    model: ScriptedModelServer, tmp_path: Path, otel: Otel
) -> None:
    first, second, third = embed_through_services(model, tmp_path, otel, calls=3)
    assert first == [embed(text, 384) for text in TEXTS] == second
    assert (
        isinstance(third, QuotaExceeded) and third.budget["name"] == "ingest-tokens"
    )  # 2 x 50 of 120 tokens spent
    spans = [span for span in otel.spans.get_finished_spans() if span.name == f"embeddings {MODEL}"]
    assert len(spans) == 2
    assert spans[0].attributes["gen_ai.operation.name"] == "embeddings"
    assert spans[0].attributes["gen_ai.agent.name"] == INGEST_AGENT
    assert spans[0].attributes["gen_ai.usage.input_tokens"] == 50  # settled at the estimate: 50 bytes
    points = otel.metric_points("gen_ai.client.token.usage")
    assert {point.attributes["gen_ai.operation.name"] for point in points} == {"embeddings"}
    assert sum(point.sum for point in points) == 100


def test_a_throttled_embeddings_call_is_retried(
    model: ScriptedModelServer, tmp_path: Path, otel: Otel
) -> None:
    model.faults[MODEL] = Faults(rate_429=0.5, retry_after=0.01, seed=1)  # seed 1: a 429, then none
    [vectors] = embed_through_services(model, tmp_path, otel, calls=1, llm_max_retries=3, budgets="[]")
    assert vectors == [embed(text, 384) for text in TEXTS]
    statuses = [
        span.status.is_ok for span in otel.spans.get_finished_spans() if span.name == f"embeddings {MODEL}"
    ]
    assert statuses == [False, True]
