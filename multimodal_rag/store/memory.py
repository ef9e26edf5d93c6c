"""An in-memory store: the whole :class:`~multimodal_rag.store.base.Store` in NumPy and dicts.

For tests (fusion, links and intents without Chroma) and for throwaway indexes
inside one process. Queries are exact cosine kNN.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StoreLockedError
from .base import DEFAULT_LOCK_TIMEOUT, Record, Space, StoreBase
from .blobs import MemoryBlobs
from .nodes import clean_metadata, node_record

if TYPE_CHECKING:
    import numpy.typing as npt
    from llama_index.core.schema import BaseNode


class _Space:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[npt.NDArray[np.float32], str, dict[str, Any]]] = {}
        self._matrix: tuple[list[str], npt.NDArray[np.float32]] | None = None

    def matrix(self) -> tuple[list[str], npt.NDArray[np.float32]]:
        if self._matrix is None:
            ids = list(self.rows)
            vectors = [self.rows[i][0] for i in ids]
            self._matrix = (ids, np.vstack(vectors) if vectors else np.zeros((0, 1), np.float32))
        return self._matrix

    def changed(self) -> None:
        self._matrix = None


class MemoryStore(StoreBase):
    """A store that lives in this process only.

    Example:
        >>> store = MemoryStore()
        >>> store.catalog() is None, store.counts()
        (True, {'text': 0, 'figure': 0, 'image': 0})
    """

    def __init__(self, location: str = "memory") -> None:
        self.location = location
        self.cache_dir = None
        self.remote_pngs = True
        self._blobs = MemoryBlobs()
        self._spaces = {s: _Space() for s in ("text", "figure", "image")}
        self._lock = threading.Lock()

    def upsert(
        self, space: Space, nodes: Sequence[BaseNode], embeddings: npt.NDArray[np.float32]
    ) -> None:
        """Write records and their (normalised) vectors."""
        target = self._spaces[space]
        for node, vector in zip(nodes, np.asarray(embeddings, np.float32), strict=True):
            rid, text, meta = node_record(node)
            norm = float(np.linalg.norm(vector)) or 1.0
            target.rows[rid] = (vector / norm, text, meta)
        target.changed()

    def delete_version(self, doc: str, version: str) -> None:
        """Delete one version of a document from every space."""
        for target in self._spaces.values():
            gone = [
                rid
                for rid, (_, _, meta) in target.rows.items()
                if meta.get("doc") == doc and meta.get("ver") == version
            ]
            for rid in gone:
                del target.rows[rid]
            target.changed()

    def query(self, space: Space, vector: Sequence[float], n: int) -> list[tuple[str, float]]:
        """Exact cosine kNN."""
        ids, matrix = self._spaces[space].matrix()
        if not ids or n < 1:
            return []
        q = np.asarray(vector, np.float32)
        sims = matrix @ (q / (float(np.linalg.norm(q)) or 1.0))
        top = np.argsort(-sims, kind="stable")[:n]
        return [(ids[i], float(sims[i])) for i in top]

    def records(self, ids: Sequence[str]) -> list[Record]:
        """Texts and metadata of text-space records."""
        rows = self._spaces["text"].rows
        return [(rid, rows[rid][1], clean_metadata(rows[rid][2])) for rid in ids if rid in rows]

    def count(self, space: Space) -> int:
        """Vectors in a space."""
        return len(self._spaces[space].rows)

    def writer(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """A process-local lock."""
        return self._hold(timeout)

    @contextmanager
    def _hold(self, timeout: float) -> Iterator[None]:
        if not self._lock.acquire(timeout=timeout):
            raise StoreLockedError(
                "another writer in this process holds the store",
                location=self.location,
                holder="this process",
            )
        try:
            yield
        finally:
            self._lock.release()
