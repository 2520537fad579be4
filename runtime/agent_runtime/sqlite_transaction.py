"""SQLite transactions shared by the embedded SQLite stores: one function in one transaction, or a group of
independent operations sharing one commit."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one operation of a group came to: its result, or the exception it raised (and was rolled back)."""

    result: Any = None
    error: Exception | None = None


def commit_group(
    conn: sqlite3.Connection, operations: Sequence[Callable[[sqlite3.Connection], object]]
) -> list[Outcome]:
    """Run ``operations`` in order inside the transaction the caller began, then commit them together.

    A commit costs more than the few rows an operation writes, so independent callers share one. Each
    operation runs in a savepoint of its own: one that raises is rolled back alone and its exception becomes
    its outcome, while the others' writes stay. If the group itself fails (the commit, or an error that
    aborts the whole transaction, such as a full disk), everything is rolled back and the error raised: then
    no operation of the group happened. A group of one - every operation of a lone request - needs no
    savepoint: the transaction is rolled back if it raises.
    """
    try:
        if len(operations) == 1:
            return [_alone(conn, operations[0])]
        outcomes = [_in_savepoint(conn, operation) for operation in operations]
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # some errors have already made SQLite roll back
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _alone(conn: sqlite3.Connection, operation: Callable[[sqlite3.Connection], object]) -> Outcome:
    """The transaction of one operation: committed, or rolled back whole if the operation raises."""
    try:
        result = operation(conn)
    except Exception as error:  # noqa: BLE001 - the operation's caller gets it
        if conn.in_transaction:  # some errors have already made SQLite roll back
            conn.execute("ROLLBACK")
        return Outcome(error=error)
    conn.execute("COMMIT")
    return Outcome(result)


def _in_savepoint(conn: sqlite3.Connection, operation: Callable[[sqlite3.Connection], object]) -> Outcome:
    conn.execute("SAVEPOINT operation")
    try:
        result = operation(conn)
    except Exception as error:  # noqa: BLE001 - the operation's caller gets it, the group goes on
        conn.execute("ROLLBACK TO operation")
        conn.execute("RELEASE operation")
        return Outcome(error=error)
    conn.execute("RELEASE operation")
    return Outcome(result)
