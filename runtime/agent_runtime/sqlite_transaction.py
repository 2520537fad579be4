"""One SQLite transaction around a function, shared by the embedded SQLite stores."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_transaction(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], begin: str = "BEGIN IMMEDIATE"
) -> T:
    """Run ``fn`` inside one transaction: committed if it returns, rolled back if it raises.

    ``BEGIN IMMEDIATE`` takes the write lock up front, so concurrent writers queue on SQLite's busy
    timeout instead of failing midway with a lock upgrade conflict.
    """
    conn.execute(begin)
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
