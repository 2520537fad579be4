"""The ingestion worker inside the runtime: document events in, the knowledge index kept exact.

:class:`DocumentEvents` applies one queue message with the process's opened services: the index (the
worker opens it with ``knowledge_manage_index``), the document source, and embeddings on the governed
model path, counted against the ``knowledge-ingest`` agent's budgets like any agent's calls (and against no
tenant's: the calls are the runtime's own, :data:`~agent_runtime.caller.SYSTEM_TENANT`). Hosts feed it:

- pushed by the platform (the Functions Service Bus trigger, Lambda's SQS source): :class:`PushedDocuments`
  raises :class:`~agent_runtime.hosting.PoisonMessage` for a malformed event or a poison document, so the
  platform dead-letters it once the queue's delivery count is spent — the reason is logged with the
  document; any other failure (the model, the index) is retried by redelivery;
- pulled (``agentstage dev``, containers, tests on Azurite and moto): :class:`IngestWorker` completes,
  dead-letters with the reason, or releases each message itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from agent_runtime.bus.base import MessageBus, ReceivedMessage
from agent_runtime.caller import SYSTEM_TENANT, Caller
from agent_runtime.knowledge.events import DocumentIdOf, MalformedEvent, parse_events
from agent_runtime.knowledge.factory import open_source
from agent_runtime.knowledge.ingest import IngestOptions, Ingestor, Outcome, PoisonDocument
from agent_runtime.services import Lifecycle, Services
from agent_runtime.settings import Settings

INGEST_AGENT = "knowledge-ingest"
"""The name ingestion's embeddings are budgeted and traced under."""

RETRY_DELAY_SECONDS = 5.0

log = logging.getLogger("agentstage.knowledge")


class DocumentEvents:
    """One queue message's document events applied to the index, each document at most once."""

    def __init__(self, ingestor: Ingestor, document_id_of: DocumentIdOf) -> None:
        self.ingestor = ingestor
        self._document_id_of = document_id_of

    @classmethod
    async def open(cls, services: Services) -> DocumentEvents:
        settings = services.settings
        source, document_id_of = open_source(settings)
        caller = Caller(INGEST_AGENT, tenant=SYSTEM_TENANT, application=INGEST_AGENT)
        loop = asyncio.get_running_loop()

        async def embed(texts: Sequence[str]) -> list[list[float]]:
            return await services.models.embed(
                caller,
                INGEST_AGENT,
                texts,
                model=settings.embedding_model,
                dimensions=settings.embedding_dimensions,
                deadline=loop.time() + settings.deadline_seconds,
            )

        index = await services.knowledge.get()
        return cls(Ingestor(source, index, embed, ingest_options(settings)), document_id_of)

    async def handle(self, body: object) -> list[Outcome]:
        """Refresh every document the message names; raises :class:`MalformedEvent` or
        :class:`PoisonDocument` for what no retry can fix."""
        events = parse_events(body, self._document_id_of)
        outcomes = []
        for document_id in dict.fromkeys(event.document_id for event in events):
            outcome = await self.ingestor.refresh(document_id)
            log.info(
                "document %s: %s (%d chunks)%s",
                outcome.document_id,
                outcome.action,
                outcome.chunks,
                f": {outcome.reason}" if outcome.reason else "",
            )
            outcomes.append(outcome)
        return outcomes

    async def close(self) -> None:
        await self.ingestor.source.close()


def ingest_options(settings: Settings) -> IngestOptions:
    return IngestOptions(
        chunk_tokens=settings.knowledge_chunk_tokens,
        overlap_tokens=settings.knowledge_overlap_tokens,
        embedding_model=settings.embedding_model,
        dimensions=settings.embedding_dimensions,
        default_readers=frozenset(settings.knowledge_default_readers),
        max_document_bytes=settings.knowledge_max_document_bytes,
    )


class PushedDocuments:
    """Document events pushed by the platform, applied with the API's opened services (one per process)."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle
        self._events: DocumentEvents | None = None
        self._lock = asyncio.Lock()

    async def handle(self, message: ReceivedMessage) -> list[Outcome]:
        from agent_runtime.hosting import PoisonMessage

        events = await self._get()
        try:
            return await events.handle(message.body)
        except (MalformedEvent, PoisonDocument) as error:
            log.error("document event %s cannot be ingested: %s", message.message_id, error)
            raise PoisonMessage(f"message {message.message_id}: {error}") from error

    async def _get(self) -> DocumentEvents:
        if self._events is None:
            async with self._lock:
                if self._events is None:
                    self._events = await DocumentEvents.open(await self._lifecycle.get())
        return self._events


class IngestWorker:
    """Pulls document events from ``queue`` until :meth:`stop`, settling each message itself."""

    def __init__(self, events: DocumentEvents, bus: MessageBus, queue: str) -> None:
        self._events = events
        self._bus = bus
        self.queue = queue
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self, *, wait_seconds: float = 1.0) -> None:
        while not self._stopping.is_set():
            for message in await self._bus.receive(self.queue, max_messages=10, wait_seconds=wait_seconds):
                await self.settle(message)

    async def settle(self, message: ReceivedMessage) -> None:
        """Apply one message: complete it, dead-letter it with the reason, or leave it for redelivery."""
        try:
            await self._events.handle(message.body)
        except (MalformedEvent, PoisonDocument) as error:
            log.error("document event %s dead-lettered: %s", message.message_id, error)
            await self._bus.dead_letter(message, reason=str(error))
        except Exception as error:  # noqa: BLE001 - the model, the index or the source failing: retry later
            log.warning(
                "document event %s failed, retrying: %s: %s", message.message_id, type(error).__name__, error
            )
            await self._bus.release(message, delay_seconds=RETRY_DELAY_SECONDS)
        else:
            await self._bus.complete(message)
