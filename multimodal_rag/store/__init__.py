"""Storage: one :class:`Store` interface and its backends (see :mod:`.base` for the picture).

- :class:`ChromaStore` (:func:`open_store`): an embedded Chroma folder or a Chroma server;
- :class:`VectorStoreStore`: any LlamaIndex vector store plus a local folder;
- :class:`MemoryStore`: everything in this process, for tests.
"""

from __future__ import annotations

from .base import (
    DEFAULT_STORE_NAME,
    SCHEMA_VERSION,
    Catalog,
    DocumentEntry,
    Manifest,
    Space,
    Store,
    StoreBase,
    TextPrecision,
)
from .chroma import ChromaStore, open_store
from .memory import MemoryStore
from .vector_store import VectorStoreStore

__all__ = [
    "DEFAULT_STORE_NAME",
    "SCHEMA_VERSION",
    "Catalog",
    "ChromaStore",
    "DocumentEntry",
    "Manifest",
    "MemoryStore",
    "Space",
    "Store",
    "StoreBase",
    "TextPrecision",
    "VectorStoreStore",
    "open_store",
]
