"""moto's server with SQS receives made atomic, as the service makes them; run as a script by ``moto_server``.

moto serves each request on its own thread and its ``ReceiveMessage`` checks a message's visibility and then
marks it received with nothing in between held: two receivers polling one queue at once can both take the
same message, and the first one's receipt handle is then invalid. SQS never hands a message to a second
receiver during its visibility timeout, and the bus contract tests assert exactly that, so they failed now
and then on a loaded machine for the emulator's sake. Here each scan of a queue runs under one lock, while
the long poll's waiting happens outside it, so receivers still wait concurrently and a send wakes them.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

POLL_FLOOR_SECONDS = 0.01
"""The least a receiver sleeps between scans that found nothing, so visible but undeliverable messages (a
FIFO group in flight, say) cannot make a long poll spin."""


def _atomic_receives() -> None:
    from moto.sqs.models import SQSBackend

    original = SQSBackend.receive_message
    scanning = threading.Lock()

    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + wait_seconds_timeout
        while True:
            with scanning:
                received = original(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = deadline - time.monotonic()
            if received or remaining <= 0:
                return received
            self.get_queue(queue_name).wait_for_messages(remaining)  # type: ignore[arg-type]
            time.sleep(POLL_FLOOR_SECONDS)

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


if __name__ == "__main__":
    _atomic_receives()
    from moto.server import main

    main(sys.argv[1:])
