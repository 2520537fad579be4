"""The tokens the runtime's SQLite budget ledger holds and has spent, read from its file as a test checks
them."""

from __future__ import annotations

import sqlite3
import time


class TokenLedger:
    def __init__(self, path: str) -> None:
        self.path = path

    def _one(self, query: str) -> int:
        with sqlite3.connect(self.path) as db:
            return int(db.execute(query).fetchone()[0])

    def spent(self) -> int:
        return self._one("SELECT coalesce(sum(spent), 0) FROM budget_ledger WHERE key LIKE '%|tokens|%'")

    def held(self) -> int:
        return self._one("SELECT coalesce(sum(amount), 0) FROM budget_holds")

    def settled(self) -> int:
        """The tokens spent once no hold is left (a call's settlement may run after its caller left)."""
        stop = time.monotonic() + 5
        while self.held() and time.monotonic() < stop:
            time.sleep(0.02)
        assert not self.held(), "the hold was settled"
        return self.spent()
