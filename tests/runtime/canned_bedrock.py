"""A stand-in ``bedrock-runtime`` client for :class:`~agent_runtime.llm_bedrock.BedrockModel`: answers of any
shape, as botocore's parser would pass them through, without a server."""

from __future__ import annotations

from typing import Any


class CannedBedrock:
    """Answers every Converse call with ``response`` and every ConverseStream call with ``events``."""

    def __init__(
        self, response: dict[str, Any] | None = None, events: list[dict[str, Any]] | None = None
    ) -> None:
        self._response, self._events = response, events or []

    def converse(self, **request: Any) -> dict[str, Any] | None:
        return self._response

    def converse_stream(self, **request: Any) -> dict[str, Any]:
        return {"stream": _EventStream(self._events)}

    def close(self) -> None:
        pass


class _EventStream(list[dict[str, Any]]):
    """botocore's ``EventStream``: iterable, and closed by its reader."""

    def close(self) -> None:
        pass
