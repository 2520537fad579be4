"""CPython's cyclic garbage collector, paused for work whose heap lives until the work ends.

Recording a stack's graph builds a large heap that lives until the recording ends (the SDKs' modules and
types, the resources, their outputs), and every full collection walks all of it again without freeing
anything: measured on a 184-resource stack, a third of ``agentstage plan``'s time went to the collector,
for 1% of its memory. Reference counting still frees everything acyclic while the collector is paused.

The cycles left behind (a failed program's futures and tracebacks, the resources' back references) are
collected as the outermost pause ends: their finalizers run there, at a known point. Left to the next
automatic collection they would run inside whatever code happens to allocate next - and a finalizer that
logs (an asyncio future's "exception was never retrieved") formats a traceback, which parses source with
``ast``; inside another ``ast.parse`` that corrupts CPython 3.11's parser state ("AST constructor
recursion depth mismatch", seen in the test suite).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block; the outermost pause collects what the block left (the
    youngest generation: everything allocated while paused) and restores the collector. A nested pause,
    or one entered with the collector already off, leaves it off and collects nothing."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.collect(0)
            gc.enable()
