"""The embedded SQLite ledger drops what no longer counts while it runs, not only when it opens: counters of
ended windows, tool-call records past their time (each a row per caller and window, per call key: a
long-running worker's file grew by thousands of rows a day per caller). What still counts stays: a current
window's counter, a lapsed hold in a current window (it counts as spent), an ended window's counter that a
call in flight still holds."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from agent_runtime.governance import ledger_sqlite
from agent_runtime.governance.ledger import Line
from agent_runtime.governance.ledger_sqlite import SqliteLedger

FOREVER = 10**9
KEPT = {
    "counters": ["current", "ended-but-held"],
    "holds": ["in-flight", "lapsed"],
    "results": ["call-current"],
}
"""What still counts once the sweeps ran."""


def _rows(path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as db:
        return {
            "counters": sorted(key for (key,) in db.execute("SELECT key FROM budget_ledger")),
            "holds": sorted(hold for (hold,) in db.execute("SELECT hold FROM budget_holds")),
            "results": sorted(key for (key,) in db.execute("SELECT key FROM tool_results")),
        }


def test_a_running_ledger_sweeps_what_no_longer_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_sqlite, "KEEPER_INTERVAL_SECONDS", 0.02)
    monkeypatch.setattr(ledger_sqlite, "SWEEP_EVERY", 2)
    monkeypatch.setattr(ledger_sqlite, "SWEEP_BATCH", 3)  # several batches per sweep
    path = tmp_path / "state.db"

    async def scenario() -> dict[str, list[str]]:
        ledger = await SqliteLedger.open(str(path))
        try:
            soon = time.time() + 0.2
            for index in range(10):  # ended windows, settled: swept
                await ledger.reserve(f"done-{index}", [Line(f"ended-{index}", FOREVER, 1, soon)], 60)
                await ledger.settle(f"done-{index}", [(f"ended-{index}", 1)])
            for index in range(7):  # call records past their time: swept
                await ledger.claim(f"call-{index}", 0.2)
                await ledger.complete(f"call-{index}", "result", 0.2)
            await ledger.claim("call-current", 60)
            await ledger.reserve("lapsed", [Line("current", FOREVER, 5, time.time() + 60)], 0.1)
            await ledger.reserve("in-flight", [Line("ended-but-held", FOREVER, 5, soon)], 60)
            stop = time.monotonic() + 5  # well past the ends above, however slow the machine
            while (rows := _rows(path)) != KEPT and time.monotonic() < stop:
                await asyncio.sleep(0.05)
            return rows
        finally:
            await ledger.close()

    assert asyncio.run(scenario()) == KEPT
