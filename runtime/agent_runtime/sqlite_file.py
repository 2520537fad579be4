"""Opening the runtime's SQLite file in WAL mode, however many connections open it at the same moment.

The embedded stores (conversations and memory, the budget ledger, tasks, the bus, the knowledge index) keep
their tables in one file, ``AGENTSTAGE_SQLITE_PATH``, which every store of every worker process opens.
Switching a new file to WAL needs it to itself, and SQLite refuses the switch at once ("database is
locked"), without waiting its busy timeout, while another connection writes to it: worker processes
starting together on a new file failed that way, each one that lost the race exiting at startup. So the
switch is retried, as the busy timeout retries a write, until the file is in WAL mode or the timeout ends.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

RETRY_PAUSE_SECONDS = (0.001, 0.05)
"""First and longest pause between two attempts to switch the file to WAL (doubling in between)."""

_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def connect_wal(path: str, timeout: float, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to ``path`` (its directory created) in autocommit mode, with ``timeout`` as its busy
    timeout, the file in WAL mode and ``synchronous=NORMAL`` (in WAL mode NORMAL cannot corrupt the file; a
    power cut may only lose the last commits). It may wait up to ``timeout``: call it off the event loop."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=timeout, check_same_thread=check_same_thread)
    try:
        _switch_to_wal(conn, path, timeout)
        conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _switch_to_wal(conn: sqlite3.Connection, path: str, timeout: float) -> None:
    """Put the file in WAL mode (it stays so: the mode is the file's), retrying while others hold it."""
    deadline = time.monotonic() + timeout
    pause, longest = RETRY_PAUSE_SECONDS
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF not in _BUSY:
                raise
            mode = "locked"
        if mode == "wal" or path == ":memory:":  # a database in memory has no log file: its mode is 'memory'
            return
        if time.monotonic() >= deadline:
            raise sqlite3.OperationalError(
                f"{path} could not be put in WAL mode within {timeout:g} s: other connections kept it locked "
                f"(its journal mode stayed {mode!r})"
            )
        time.sleep(pause)
        pause = min(2 * pause, longest)
