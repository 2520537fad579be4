"""``agentstage ingest PATH``: fill the local knowledge index that ``agentstage dev`` searches.

Every file under PATH is extracted, chunked, embedded (by the scripted model server's local embedder,
unless a real model is configured, as in ``dev``) and written to the knowledge index of the same
settings ``dev`` uses: ``.agentstage/state.db`` (``.agentstage/STACK/state.db`` with ``--stack``), or
whatever ``AGENTSTAGE_KNOWLEDGE_BACKEND`` names. Re-running it after editing or removing files updates
exactly what changed: unchanged documents cost one hash comparison, removed ones lose their chunks.

Readers: ``PATH/readers.yaml`` maps paths or globs to groups (``"hr/*": [hr]``); ``--readers`` gives the
readers of documents it does not cover (``--readers '*'``: every caller). A document with neither is
skipped and reported, never indexed readable by everyone by accident.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

from agentstage.commands import add_project_dir
from agentstage.commands.dev import (
    build_runtime,
    import_tools_from_here,
    real_model_configured,
    runtime_overrides,
    start_model_server,
)
from agentstage.console import Console, Progress
from core.errors import AgentstageError

BAR_WIDTH = 24


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", type=Path, metavar="PATH", help="folder of documents (.md, .txt, .html, .pdf)"
    )
    parser.add_argument(
        "--readers",
        default=None,
        metavar="GROUPS",
        help="comma-separated readers of documents readers.yaml does not cover ('*': every caller)",
    )
    parser.add_argument(
        "--stack", help="fill the index `agentstage dev --stack STACK` uses (its embedding settings)"
    )
    add_project_dir(parser)


def run(args: argparse.Namespace, console: Console) -> int:
    if not args.path.is_dir():
        raise AgentstageError(f"{args.path}: no such folder of documents; give the folder to ingest")
    overrides, _ = runtime_overrides(args.stack, args.project_dir, None)
    overrides["knowledge_source"] = str(args.path)
    overrides["knowledge_manage_index"] = "true"  # the writer: it creates the index where it is missing
    if args.readers is not None:
        overrides["knowledge_default_readers"] = args.readers
    import_tools_from_here()
    with contextlib.ExitStack() as stack:
        if not real_model_configured():
            model_settings, _ = start_model_server("openai", stack)
            overrides |= model_settings
        settings, app = build_runtime(overrides)
        if settings.knowledge_backend == "none":
            raise AgentstageError("AGENTSTAGE_KNOWLEDGE_BACKEND=none: there is no index to fill")
        with console.progress() as progress:
            outcomes = asyncio.run(_ingest(app.state.lifecycle, progress))
    _summarise(console, outcomes, settings)
    return 0


async def _ingest(lifecycle: Any, progress: Progress) -> list[Any]:
    from agent_runtime.knowledge.folder_source import ReadersFileError
    from agent_runtime.knowledge.service import DocumentEvents
    from agent_runtime.memory.common import DimensionMismatchError

    try:
        events = await DocumentEvents.open(await lifecycle.get())
    except ReadersFileError as error:
        raise AgentstageError(str(error)) from None
    except DimensionMismatchError as error:
        raise AgentstageError(
            f"{error}: set AGENTSTAGE_EMBEDDING_DIMENSIONS back, or give the index a fresh file "
            "(AGENTSTAGE_SQLITE_PATH) and ingest everything again"
        ) from None
    try:
        total = len([document async for document in events.ingestor.source.document_ids()])
        done: Counter[str] = Counter()

        def advance(outcome: Any) -> None:
            done["documents"] += 1
            done["chunks"] += outcome.chunks if outcome.action == "indexed" else 0
            filled = BAR_WIDTH * done["documents"] // max(total, 1)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            progress.doing(f"[{bar}] {done['documents']} documents, {done['chunks']} chunks embedded")

        return await events.ingestor.sync(advance)
    finally:
        await events.close()
        await lifecycle.close()


def _summarise(console: Console, outcomes: list[Any], settings: Any) -> None:
    counts = Counter(outcome.action for outcome in outcomes)
    chunks = sum(outcome.chunks for outcome in outcomes if outcome.action == "indexed")
    console.print(
        f"{len(outcomes)} documents: {counts['indexed']} indexed ({chunks} chunks), "
        f"{counts['unchanged']} unchanged, {counts['removed']} removed, {counts['skipped']} skipped"
    )
    for outcome in sorted(outcomes, key=lambda item: item.document_id):
        if outcome.action == "skipped":
            console.print(f"  skipped {outcome.document_id}: {outcome.reason}")
    where = settings.sqlite_path if settings.knowledge_backend == "sqlite" else settings.knowledge_backend
    console.print(f"knowledge index: {where}; agents search it with the knowledge_search tool")
