"""Reading a budget ledger after the answers it is settled for.

The runtime writes a request's settlement once its answer is sent (``agent_runtime.answer_first``), so a
ledger read right after the last answer of a storm may come before the last settlements: a test waits for
them, as a caller checking its spending would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def once_settled(read: Callable[[], T], settled: Callable[[T], bool], seconds: float = 10) -> T:
    """``read()`` once ``settled`` holds of it, or its last value after ``seconds`` (a reader that asserts,
    say that no hold is left, is read again until then, and its assertion raised after)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = read()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        else:
            if settled(value) or time.monotonic() >= deadline:
                return value
        time.sleep(0.02)
