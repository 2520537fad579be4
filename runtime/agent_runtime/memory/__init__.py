"""Externalized conversation state and vector memory; see :mod:`.base` for the interfaces.

``open_stores(settings)`` returns the configured pair. Backend modules (and their client libraries) are
imported only when a backend is chosen.
"""

from .base import (
    Conversation,
    ConversationStore,
    HistoryPage,
    Message,
    Owner,
    VectorHit,
    VectorItem,
    VectorStore,
)
from .common import DimensionMismatchError, InvalidCursor
from .factory import MemoryConfigurationError, open_stores

__all__ = [
    "Conversation",
    "ConversationStore",
    "DimensionMismatchError",
    "HistoryPage",
    "InvalidCursor",
    "MemoryConfigurationError",
    "Message",
    "Owner",
    "VectorHit",
    "VectorItem",
    "VectorStore",
    "open_stores",
]
