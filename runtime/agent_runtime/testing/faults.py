"""Fault injection for the scripted model server: 429s with ``Retry-After``, 500s, slow answers (to trip
client timeouts) and malformed JSON, each at a configurable rate, per model/deployment.

Faults are drawn from a seeded random generator, so a test run is reproducible::

    server.faults["gpt-primary"] = Faults(rate_500=1.0)          # this deployment is down
    server.faults["*"] = Faults(rate_429=0.3, retry_after=0.05, seed=7)   # every other one is flaky
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

Fault = Literal["429", "500", "timeout", "malformed"]


@dataclass
class Faults:
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    rate_malformed: float = 0.0
    retry_after: float = 1.0
    """Seconds sent in ``Retry-After`` with each 429."""
    timeout_delay: float = 5.0
    """How long a "timeout" fault holds the answer back (longer than the client's timeout)."""
    seed: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def draw(self) -> Fault | None:
        """The fault of the next request, or ``None``."""
        roll = self._random.random()
        rates: tuple[tuple[Fault, float], ...] = (
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("timeout", self.rate_timeout),
            ("malformed", self.rate_malformed),
        )
        for fault, rate in rates:
            if roll < rate:
                return fault
            roll -= rate
        return None
