"""Group commit on the SQLite ledger: operations queued together share one transaction, yet each is granted,
refused or failed as if it ran alone, in submission order, and answered only once committed."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from agent_runtime import sqlite_group_commit
from agent_runtime.governance.ledger import Line, Refusal, Usage
from agent_runtime.governance.ledger_sqlite import SqliteLedger
from agent_runtime.sqlite_group_commit import GroupCommit
from agent_runtime.sqlite_loop import LoopConnection

FOREVER = 2**40


def _traced(path: Path, statements: list[str]) -> sqlite3.Connection:
    """A connection as the ledger's writer needs it, recording every statement it runs."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout = 0")
    conn.set_trace_callback(statements.append)
    return conn


@contextlib.asynccontextmanager
async def _traced_ledger(path: Path) -> AsyncIterator[tuple[SqliteLedger, list[str]]]:
    """A ledger on ``path`` whose connection records its statements (``open`` creates the schema first)."""
    await (await SqliteLedger.open(str(path))).close()
    statements: list[str] = []
    ledger = SqliteLedger(LoopConnection(_traced(path, statements)))
    try:
        yield ledger, statements
    finally:
        await ledger.close()


async def _one_group(opener: Awaitable[object], *operations: Awaitable[object]) -> list[object]:
    """The results (or exceptions) of ``operations``, submitted in one turn of the loop behind ``opener``:
    it finds the writer idle and commits at once, so they queue together and share one transaction."""
    results = await asyncio.gather(opener, *operations, return_exceptions=True)
    return results[1:]


def _holds(path: Path) -> list[tuple[str, str, int]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT key, hold, amount FROM budget_holds ORDER BY key, hold").fetchall()


def test_concurrent_reservations_share_one_commit(tmp_path: Path) -> None:
    """100 reservations in one turn of the loop: the first finds the writer idle and commits at once, the
    99 others share one transaction (there used to be 100)."""

    async def scenario() -> None:
        async with _traced_ledger(tmp_path / "l.db") as (ledger, statements):
            line = Line("shared", limit=100, amount=1, expires_at=FOREVER)
            results = await asyncio.gather(*(ledger.reserve(f"h{n}", [line], 60) for n in range(100)))
            assert results == [[n] for n in range(1, 101)], "granted in submission order"
            assert statements.count("COMMIT") == 2
            assert statements.count("SAVEPOINT operation") == 99, "each in a savepoint of its own"
            assert await ledger.reserve("h100", [line], 60) == Refusal(0, settled=0, held=100)

    asyncio.run(scenario())
    assert len(_holds(tmp_path / "l.db")) == 100


def test_an_operation_that_fails_is_rolled_back_alone(tmp_path: Path) -> None:
    """A reservation that breaks midway (its hold id is taken on its second counter) leaves nothing behind,
    while the reservations queued with it commit."""

    async def scenario() -> None:
        async with _traced_ledger(tmp_path / "l.db") as (ledger, statements):
            a, b = Line("a", 10, 1, FOREVER), Line("b", 10, 1, FOREVER)
            assert await ledger.reserve("taken", [b], 60) == [1]
            before = statements.count("COMMIT")
            results = await _one_group(
                ledger.usage(["a"]),
                ledger.reserve("x", [a], 60),
                ledger.reserve("taken", [a, b], 60),  # holds a, then fails on b
                ledger.reserve("y", [b], 60),
            )
            assert results[0] == [1] and results[2] == [2]
            assert isinstance(results[1], sqlite3.IntegrityError)
            assert statements.count("COMMIT") == before + 2, "the opening read, then the group"
            assert await ledger.usage(["a", "b"]) == [Usage(0, 1), Usage(0, 2)]

    asyncio.run(scenario())
    assert _holds(tmp_path / "l.db") == [("a", "x", 1), ("b", "taken", 1), ("b", "y", 1)]


def test_a_refusal_in_a_group_holds_nothing_and_later_operations_see_earlier_ones(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _traced_ledger(tmp_path / "l.db") as (ledger, statements):
            x, y = Line("x", limit=1, amount=1, expires_at=FOREVER), Line("y", 10, 1, FOREVER)
            results = await _one_group(
                ledger.usage(["x"]),
                ledger.reserve("first", [x], 60),
                ledger.reserve("second", [y, x], 60),  # y has room, x no longer: neither is held
                ledger.reserve("third", [y], 60),
            )
            assert results == [[1], Refusal(1, settled=0, held=1), [1]]
            assert statements.count("COMMIT") == 2, "the opening read, then the group"

    asyncio.run(scenario())
    assert _holds(tmp_path / "l.db") == [("x", "first", 1), ("y", "third", 1)]


def test_a_hold_reserved_and_settled_in_one_group_settles(tmp_path: Path) -> None:
    """Operations run in the order they were submitted: the settlement finds the hold queued before it."""

    async def scenario() -> None:
        async with _traced_ledger(tmp_path / "l.db") as (ledger, statements):
            line = Line("k", limit=10, amount=4, expires_at=FOREVER)
            reserved, _ = await _one_group(
                ledger.usage(["k"]), ledger.reserve("h", [line], 60), ledger.settle("h", [("k", 3)])
            )
            assert reserved == [4]
            assert statements.count("COMMIT") == 2, "the opening read, then the group"
            assert await ledger.usage(["k"]) == [Usage(settled=3, held=0)]

    asyncio.run(scenario())


def test_a_lone_operation_waits_for_no_company(tmp_path: Path) -> None:
    """No timer: an operation alone is committed at the loop's next turn."""

    async def scenario() -> None:
        async with _traced_ledger(tmp_path / "l.db") as (ledger, _):
            reservation = asyncio.ensure_future(ledger.reserve("h", [Line("k", 10, 1, FOREVER)], 60))
            turns = 0
            while not reservation.done():
                await asyncio.sleep(0)  # one turn of the loop, no time passing
                turns += 1
            assert turns <= 4 and reservation.result() == [1]

    asyncio.run(scenario())


def test_queued_work_is_committed_when_the_ledger_closes(tmp_path: Path) -> None:
    async def scenario() -> None:
        ledger = await SqliteLedger.open(str(tmp_path / "l.db"))
        line = Line("k", limit=10, amount=1, expires_at=FOREVER)
        queued = [asyncio.ensure_future(ledger.reserve(f"h{n}", [line], 60)) for n in range(3)]
        await asyncio.sleep(0)  # the first committed at once, the two others are queued behind it
        assert [task.done() for task in queued] == [True, False, False]
        await ledger.close()
        assert [task.result() for task in queued] == [[1], [2], [3]]
        with pytest.raises(RuntimeError, match="closed"):
            await ledger.reserve("late", [line], 60)

    asyncio.run(scenario())
    assert len(_holds(tmp_path / "l.db")) == 3


def test_closing_while_another_process_holds_the_lock_fails_the_queue_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_group_commit, "BUSY_TIMEOUT_SECONDS", 0.2)

    async def scenario() -> None:
        path = tmp_path / "l.db"
        ledger = await SqliteLedger.open(str(path))
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # as another worker process, stuck mid-transaction
            reservation = asyncio.ensure_future(ledger.reserve("h", [Line("k", 10, 1, FOREVER)], 60))
            await asyncio.sleep(0.01)
            await asyncio.wait_for(ledger.close(), timeout=5)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                reservation.result()
        finally:
            other.close()

    asyncio.run(scenario())
    assert _holds(tmp_path / "l.db") == []


def test_a_settlement_whose_caller_is_cancelled_still_lands(tmp_path: Path) -> None:
    """A request cancelled while its settlement is queued (its cleanup interrupted) must not leak the hold."""

    async def scenario() -> None:
        async with _traced_ledger(tmp_path / "l.db") as (ledger, _):
            line = Line("k", limit=10, amount=4, expires_at=FOREVER)
            assert await ledger.reserve("h", [line], 60) == [4]
            settlement = asyncio.ensure_future(ledger.settle("h", [("k", 1)]))
            await asyncio.sleep(0)  # queued
            settlement.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await settlement
            assert await ledger.usage(["k"]) == [Usage(settled=1, held=0)]

    asyncio.run(scenario())


def test_a_reservation_granted_after_its_caller_gave_up_gives_the_room_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "l.db"
        ledger = await SqliteLedger.open(str(path))
        other = sqlite3.connect(path, isolation_level=None)
        line = Line("k", limit=10, amount=4, expires_at=FOREVER)
        try:
            other.execute("BEGIN IMMEDIATE")  # the reservation waits for the lock...
            reservation = asyncio.ensure_future(ledger.reserve("gone", [line], 60))
            await asyncio.sleep(0.01)
            reservation.cancel()  # ...and its caller stops waiting (a deadline, a disconnect)
            other.execute("COMMIT")
            with contextlib.suppress(asyncio.CancelledError):
                await reservation
            assert await _eventually(lambda: ledger.usage(["k"]), [Usage(0, 0)])
            assert await ledger.reserve("next", [line], 60) == [4]
        finally:
            other.close()
            await ledger.close()

    asyncio.run(scenario())


async def _eventually(read: Callable[[], Awaitable[object]], expected: object, seconds: float = 2.0) -> bool:
    """Whether ``read()`` comes to return ``expected`` within ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (await read()) != expected:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _schema(conn: sqlite3.Connection) -> None:
    conn.executescript(
        """
        PRAGMA foreign_keys = ON;
        CREATE TABLE parent (id INTEGER PRIMARY KEY);
        CREATE TABLE child (
            id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
        );
        """
    )


@contextlib.asynccontextmanager
async def _writer(
    path: Path, on_commit: Callable[[], None] | None = None
) -> AsyncIterator[tuple[GroupCommit, sqlite3.Connection, list[str]]]:
    """A writer on a traced connection to a database of parents and children; closed with the connection."""
    statements: list[str] = []
    conn = _traced(path, statements)
    _schema(conn)
    writer = GroupCommit(conn, on_commit)
    try:
        yield writer, conn, statements
    finally:
        await writer.close()
        conn.close()


def _insert(table: str, values: str) -> Callable[[sqlite3.Connection], int]:
    def insert(conn: sqlite3.Connection) -> int:
        return conn.execute(f"INSERT INTO {table} VALUES ({values})").lastrowid or 0

    return insert


def _broken(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO parent VALUES (7)")
    raise ValueError("the operation broke after writing")


def test_each_caller_gets_its_own_result_or_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _writer(tmp_path / "g.db") as (writer, conn, statements):
            results = await _one_group(
                writer.run(_insert("parent", "0")),
                writer.run(_insert("parent", "1")),
                writer.run(_broken),
                writer.run(_insert("parent", "2")),
            )
            assert results[0] == 1 and results[2] == 2
            assert isinstance(results[1], ValueError)
            assert statements.count("COMMIT") == 2, "the opening insert, then the group"
            assert conn.execute("SELECT id FROM parent ORDER BY id").fetchall() == [(0,), (1,), (2,)]

    asyncio.run(scenario())


def test_an_operation_alone_commits_without_a_savepoint_and_is_rolled_back_whole_when_it_fails(
    tmp_path: Path,
) -> None:
    """A lone request's operation is its own transaction: no savepoint to write; what it wrote before failing,
    or what its commit refused, is gone, and the next operation commits."""

    async def scenario() -> None:
        async with _writer(tmp_path / "g.db") as (writer, conn, statements):
            assert await writer.run(_insert("parent", "1")) == 1
            with pytest.raises(ValueError, match="broke after writing"):
                await writer.run(_broken)
            with pytest.raises(sqlite3.IntegrityError):
                await writer.run(_insert("child", "1, 99"))  # no parent 99: its commit fails
            assert not conn.in_transaction
            assert await writer.run(_insert("parent", "2")) == 2
            assert "SAVEPOINT operation" not in statements
            assert statements.count("ROLLBACK") == 2
            assert conn.execute("SELECT id FROM parent ORDER BY id").fetchall() == [(1,), (2,)]

    asyncio.run(scenario())


def test_a_failed_commit_fails_every_operation_of_its_group(tmp_path: Path) -> None:
    """A deferred constraint fails at ``COMMIT``: nobody in the group may be told their write happened."""

    async def scenario() -> None:
        commits: list[None] = []
        async with _writer(tmp_path / "g.db", on_commit=lambda: commits.append(None)) as (writer, conn, _):
            results = await _one_group(
                writer.run(_insert("parent", "0")),
                writer.run(_insert("parent", "1")),
                writer.run(_insert("child", "1, 99")),  # no parent 99: the commit fails
                writer.run(_insert("parent", "2")),
            )
            assert all(isinstance(result, sqlite3.IntegrityError) for result in results), results
            assert not conn.in_transaction and commits == [None], "only the opening insert committed"
            assert conn.execute("SELECT id FROM parent").fetchall() == [(0,)]
            assert await writer.run(_insert("parent", "3")) == 3, "the next group commits"
            assert commits == [None, None]

    asyncio.run(scenario())


def test_an_idle_writer_commits_at_once_in_the_callers_own_step(tmp_path: Path) -> None:
    """A sequential request's operations are committed before ``submit`` returns (no task, no turn of the
    loop), one request's consecutive writes included, each in a transaction of its own."""

    async def scenario() -> None:
        async with _writer(tmp_path / "g.db") as (writer, _, statements):
            first = writer.submit(_insert("parent", "1"))
            second = writer.submit(_insert("parent", "2"))  # the same task, the same turn
            assert first.done() and second.done()
            assert (first.result(), second.result()) == (1, 2)
            await asyncio.sleep(0)
            later = writer.submit(_broken)
            assert later.done() and isinstance(later.exception(), ValueError)
            assert statements.count("COMMIT") == 2 and statements.count("ROLLBACK") == 1
            assert "SAVEPOINT operation" not in statements

    asyncio.run(scenario())


def test_a_second_task_writing_in_the_same_turn_groups_until_a_group_commits_alone(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _writer(tmp_path / "g.db") as (writer, _, statements):
            results = await asyncio.gather(*(writer.run(_insert("parent", str(n))) for n in (1, 2, 3)))
            assert results == [1, 2, 3]
            assert statements.count("COMMIT") == 2, "the first at once, the two others as one group"
            assert statements.count("SAVEPOINT operation") == 2
            queued = writer.submit(_insert("parent", "4"))
            assert not queued.done(), "the loop had company: operations still queue"
            assert await queued == 4
            assert writer.submit(_insert("parent", "5")).done(), "a group of one: the writer is idle again"

    asyncio.run(scenario())


def test_an_operation_that_meets_another_connections_lock_queues_for_it(tmp_path: Path) -> None:
    """Committing at once never waits: when another process holds the write lock, the operation queues and
    its group takes the lock when it is free, without blocking the loop."""

    async def scenario() -> None:
        async with _writer(tmp_path / "g.db") as (writer, conn, _):
            other = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                pending = writer.submit(_insert("parent", "1"))
                assert not pending.done() and not conn.in_transaction
                await asyncio.sleep(0.01)
                other.execute("COMMIT")
                assert await asyncio.wait_for(pending, timeout=5) == 1
            finally:
                other.close()

    asyncio.run(scenario())
