"""The runtime's composition root: the long-lived clients and stores one process shares.

Everything here is built once per process (connection pools, the model client, the stores) and reused by
every request; nothing is constructed per request. The API opens it at startup, or on the first request
when a host does not run ASGI lifespan events.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from agent_runtime.agents import AgentCatalog
from agent_runtime.auth import Authenticator, build_authenticator
from agent_runtime.errors import ConfigurationError
from agent_runtime.gateway import ModelGateway
from agent_runtime.governance.budget_admission import check_admission, spec_bytes_of
from agent_runtime.governance.budget_rules import parse_prices, parse_rules
from agent_runtime.governance.budgets import Budgets
from agent_runtime.governance.guardrails import Guardrails
from agent_runtime.governance.ledger import Ledger, open_ledger
from agent_runtime.governance.redaction import install_log_redaction
from agent_runtime.governance.setup import build_guardrails, build_redactor
from agent_runtime.knowledge.factory import KnowledgeAccess, check_knowledge_settings
from agent_runtime.llm import ChatModel, create_model
from agent_runtime.memory.base import ConversationStore, VectorStore
from agent_runtime.orchestrator.queues import check_agent_queues
from agent_runtime.orchestrator.runner import OrchestratingRunner
from agent_runtime.resilience import Resilience, RetryPolicy
from agent_runtime.runner import AgentRunner, Runner
from agent_runtime.settings import Settings
from agent_runtime.tasks.factory import SharedTaskService
from agent_runtime.telemetry import Telemetry
from agent_runtime.tools import ToolRegistry
from agent_runtime.tools.executor import ToolExecutor

StoreOpener = Callable[[Settings], Awaitable[tuple[ConversationStore, VectorStore]]]


@dataclass(frozen=True)
class Assembly:
    """What can be built and checked without an event loop, so configuration errors surface at import."""

    settings: Settings
    registry: ToolRegistry
    catalog: AgentCatalog
    llm: ChatModel
    http: httpx.AsyncClient
    auth: Authenticator
    open_stores: StoreOpener
    telemetry: Telemetry
    guardrails: Guardrails
    resilience: Resilience

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        registry: ToolRegistry,
        open_stores: StoreOpener,
        telemetry: Telemetry | None = None,
    ) -> Assembly:
        """``telemetry`` defaults to the exporters the settings choose (tests pass in-memory providers)."""
        import_tool_modules(settings)
        catalog = AgentCatalog.from_settings(settings, registry)
        check_knowledge_settings(settings, (tool for agent in catalog for tool in agent.tools))
        check_agent_queues(settings.agent_queues, (agent.name for agent in catalog))
        # Budgets are used once the ledger opens; check them now so a typo, or a budget that could never
        # admit a call, fails at import.
        check_admission(
            parse_rules(settings.budgets),
            parse_prices(settings.model_prices),
            catalog,
            spec_bytes_of(registry),
            settings.budget_prompt_bytes_per_token,
        )
        redactor = build_redactor(settings)
        install_log_redaction(redactor)
        telemetry = telemetry or Telemetry(settings, redactor)
        # httpx binds to the event loop on first use, so the shared client can be built here. Its hook
        # puts the current trace context on every request tools make.
        http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            event_hooks={"request": [telemetry.inject]},
        )
        guardrails = build_guardrails(settings, http, redactor)
        resilience = Resilience(
            RetryPolicy(settings.llm_max_retries, settings.retry_base_seconds, settings.retry_max_seconds),
            failure_threshold=settings.breaker_failure_threshold,
            reset_seconds=settings.breaker_reset_seconds,
            observer=telemetry,
        )
        return cls(
            settings,
            registry,
            catalog,
            create_model(settings, [telemetry.inject_headers]),
            http,
            build_authenticator(settings, http),
            open_stores,
            telemetry,
            guardrails,
            resilience,
        )

    async def close(self) -> None:
        await asyncio.gather(self.llm.close(), self.http.aclose())
        self.telemetry.shutdown()


@dataclass(frozen=True)
class Services:
    """The opened runtime: stores, model client, the agent runner and the tasks, shared by every request.

    ``runner`` runs orchestrator agents itself and hands every other agent to the plain
    :class:`AgentRunner` (one attribute check per run). ``tasks`` opens on first use.
    """

    settings: Settings
    catalog: AgentCatalog
    conversations: ConversationStore
    vectors: VectorStore
    runner: Runner
    auth: Authenticator
    ledger: Ledger
    tasks: SharedTaskService
    knowledge: KnowledgeAccess
    models: ModelGateway

    @classmethod
    async def open(cls, assembly: Assembly) -> Services:
        settings = assembly.settings
        conversations, vectors = await assembly.open_stores(settings)
        try:
            ledger = await open_ledger(settings, conversations)
        except BaseException:
            await asyncio.gather(conversations.close(), vectors.close())
            raise
        gateway = ModelGateway(
            assembly.llm,
            Budgets.from_settings(settings, ledger, assembly.telemetry),
            assembly.resilience,
            assembly.telemetry,
            call_timeout=settings.llm_timeout_seconds,
            redact=assembly.guardrails.redactor.redact,
        )
        tools = ToolExecutor(
            assembly.registry,
            timeout_seconds=settings.tool_timeout_seconds,
            ledger=ledger,
            idempotency_ttl=settings.idempotency_ttl_seconds,
        )
        knowledge = KnowledgeAccess(settings)  # opens on first search: see agent_runtime.knowledge.factory
        agents = AgentRunner(
            settings=settings,
            catalog=assembly.catalog,
            llm=assembly.llm,
            gateway=gateway,
            guardrails=assembly.guardrails,
            telemetry=assembly.telemetry,
            conversations=conversations,
            vectors=vectors,
            knowledge=knowledge,
            tools=tools,
            http=assembly.http,
        )
        tasks = SharedTaskService(settings, assembly.catalog)
        runner = OrchestratingRunner(agents, tasks)
        return cls(
            settings,
            assembly.catalog,
            conversations,
            vectors,
            runner,
            assembly.auth,
            ledger,
            tasks,
            knowledge,
            gateway,
        )

    async def close(self) -> None:
        await asyncio.gather(
            self.conversations.close(),
            self.vectors.close(),
            self.ledger.close(),
            self.tasks.close(),
            self.knowledge.close(),
        )


class Lifecycle:
    """Opens :class:`Services` once (at startup or on first use) and closes them at shutdown."""

    def __init__(self, assembly: Assembly) -> None:
        self.assembly = assembly
        self._services: Services | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Services:
        if self._services is None:
            async with self._lock:
                if self._services is None:
                    self._services = await Services.open(self.assembly)
        return self._services

    async def close(self) -> None:
        """Close the stores (if opened) and the shared clients; the app is done after this."""
        if self._services is not None:
            services, self._services = self._services, None
            await services.close()
        await self.assembly.close()


def import_tool_modules(settings: Settings) -> None:
    """Import the modules of ``AGENTSTAGE_TOOL_MODULES`` so their ``@tool`` decorators register tools."""
    for name in settings.tool_modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ConfigurationError(f"AGENTSTAGE_TOOL_MODULES: cannot import '{name}': {error}") from error
