"""What the local server's modules share: the document type, constants, and failures as the service answers them
(the status and a ``{"code", "message"}`` body)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Document = dict[str, Any]
Clock = Callable[[], float]

REQUEST_CHARGE = "1.0"
REGION = "Local"
ID_FORBIDDEN = re.compile(r"[/\\?#]")
UNDEFINED: dict[str, Any] = {}
"""How the SDK's ``x-ms-documentdb-partitionkey`` header spells a missing partition key value: ``[{}]``."""


class CosmosError(Exception):
    """A failed request, answered as the service does: the status and a ``{"code", "message"}`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str) -> CosmosError:
    return CosmosError(400, "BadRequest", message)


def not_found(what: str) -> CosmosError:
    return CosmosError(404, "NotFound", f"Resource Not Found: {what} does not exist")


def conflict(what: str) -> CosmosError:
    return CosmosError(409, "Conflict", f"Resource with specified id or name already exists: {what}")


def precondition_failed(what: str) -> CosmosError:
    return CosmosError(
        412, "PreconditionFailed", f"Operation cannot be performed because {what} has changed (ETag mismatch)"
    )
