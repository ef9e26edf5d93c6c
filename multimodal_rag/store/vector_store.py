"""Any LlamaIndex vector store as the backend: ``ChromaVectorStore``, Qdrant, pgvector, ...

The vector store keeps the vectors and the node content; a local folder keeps
what a vector store cannot: the catalog, search segments, figure PNGs and the
writer lock.

- ``text`` space: the text vector store (passages and figure texts, as
  ``TextNode`` and ``ImageNode`` with our metadata);
- ``figure`` space: the same store, queried with a ``kind == "figure"``
  metadata filter (the vector store decides how to make that fast);
- ``image`` space: the image vector store, when given.

Vector stores differ in which ids they accept (Qdrant takes UUIDs only), so
each record is written under ``uuid5(record id)`` with the record id in its
metadata (``rid``), and read back through it.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .base import DEFAULT_LOCK_TIMEOUT, Record, Space, StoreBase, ref_doc_id
from .blobs import FolderBlobs
from .chroma import _writable
from .locks import file_lock

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from llama_index.core.schema import BaseNode
    from llama_index.core.vector_stores.types import BasePydanticVectorStore

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1c3c1e-5b7a-4c8e-9a51-2b8d7e0c4f10")
_WRITE_BATCH = 512


def point_id(rid: str) -> str:
    """The id a record is written under in a LlamaIndex vector store."""
    return str(uuid.uuid5(_NAMESPACE, rid))


class VectorStoreStore(StoreBase):
    """A store on LlamaIndex vector stores, with a local folder beside them.

    Args:
        text_store: Vector store for passages and figure texts.
        folder: Local folder for the catalog, search segments, PNGs and the lock.
        image_store: Vector store for image vectors, or ``None`` (figures by text only).
        location: Name used in messages (default: the folder).

    Example:
        >>> from llama_index.core.vector_stores import SimpleVectorStore
        >>> import tempfile
        >>> store = VectorStoreStore(SimpleVectorStore(), Path(tempfile.mkdtemp()))
        >>> store.catalog() is None
        True
    """

    def __init__(
        self,
        text_store: BasePydanticVectorStore,
        folder: Path,
        image_store: BasePydanticVectorStore | None = None,
        *,
        location: str | None = None,
    ) -> None:
        self.text_store = text_store
        self.image_store = image_store
        self.folder = Path(folder)
        self.location = location or str(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the folder ({e.strerror})", location=folder) from e
        self._blobs = FolderBlobs(self.folder / "blobs", location=self.location)
        self.cache_dir = _writable(self.folder / "cache")
        self.figures_dir = self.folder / "figures"

    def _vs(self, space: Space) -> BasePydanticVectorStore | None:
        return self.image_store if space == "image" else self.text_store

    def upsert(
        self, space: Space, nodes: Sequence[BaseNode], embeddings: npt.NDArray[np.float32]
    ) -> None:
        """Add nodes with their vectors (figure texts live in the text store already)."""
        target = self._vs(space)
        if space == "figure" or target is None:
            return
        copies = []
        for node, vector in zip(nodes, embeddings, strict=True):
            copy = node.model_copy(deep=True)
            copy.id_ = point_id(node.node_id)
            copy.metadata["rid"] = node.node_id
            copy.excluded_embed_metadata_keys.append("rid")
            copy.excluded_llm_metadata_keys.append("rid")
            copy.embedding = [float(v) for v in vector]
            copies.append(copy)
        with self._guard():
            for start in range(0, len(copies), _WRITE_BATCH):
                target.add(copies[start : start + _WRITE_BATCH])

    def delete_version(self, doc: str, version: str) -> None:
        """Delete a document version's nodes by their ``ref_doc_id``."""
        with self._guard():
            for target in (self.text_store, self.image_store):
                if target is not None:
                    target.delete(ref_doc_id(doc, version))

    def query(self, space: Space, vector: Sequence[float], n: int) -> list[tuple[str, float]]:
        """Nearest records; figure-only queries filter on ``kind``."""
        from llama_index.core.vector_stores.types import (
            MetadataFilter,
            MetadataFilters,
            VectorStoreQuery,
        )

        target = self._vs(space)
        if target is None or n < 1:
            return []
        filters = (
            MetadataFilters(filters=[MetadataFilter(key="kind", value="figure")])
            if space == "figure"
            else None
        )
        with self._guard():
            got = target.query(
                VectorStoreQuery(
                    query_embedding=[float(v) for v in vector], similarity_top_k=n, filters=filters
                )
            )
        nodes = got.nodes or []
        sims = list(got.similarities or [0.0] * len(nodes))
        to_cosine = _cosine_from(target)
        return [
            (str(node.metadata.get("rid", node.node_id)), to_cosine(float(s)))
            for node, s in zip(nodes, sims, strict=True)
        ]

    def records(self, ids: Sequence[str]) -> list[Record]:
        """Texts and metadata of text records, through the vector store's ``get_nodes``."""
        from llama_index.core.schema import MetadataMode

        if not ids:
            return []
        with self._guard():
            nodes = self.text_store.get_nodes(node_ids=[point_id(i) for i in ids])
        out = []
        for node in nodes:
            meta = dict(node.metadata)
            rid = str(meta.pop("rid", node.node_id))
            out.append((rid, node.get_content(metadata_mode=MetadataMode.NONE), meta))
        return out

    def count(self, space: Space) -> int:
        """Vectors in a space where the vector store can tell; -1 where it cannot."""
        target = self._vs(space)
        collection = getattr(target, "_collection", None)
        if space == "figure" or target is None or collection is None:
            return -1
        with self._guard():
            return int(collection.count())

    def writer(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """A file lock in the local folder."""
        return file_lock(self.folder, self.location, timeout)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn a vector store's failures (any library's own types) into StoreError."""
        try:
            yield
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001 - third-party stores raise their own types
            raise StoreError(
                f"vector store failed ({type(e).__name__}: {e})", location=self.location
            ) from e


def _cosine_from(target: BasePydanticVectorStore) -> Any:
    """Map a vector store's similarity back to cosine similarity where it transforms it.

    ``ChromaVectorStore`` reports ``exp(-distance)``; the distance is cosine (1 - cos),
    or squared L2 (2 - 2 cos for unit vectors) in a collection made with Chroma's default.
    """
    collection = getattr(target, "_collection", None)
    if type(target).__name__ != "ChromaVectorStore" or collection is None:
        return lambda s: s
    space = "l2"
    try:
        space = str((collection.configuration or {}).get("hnsw", {}).get("space", "l2"))
    except (AttributeError, TypeError):
        space = str((collection.metadata or {}).get("hnsw:space", "l2"))
    scale = 0.5 if space == "l2" else 1.0
    return lambda s: 1.0 - scale * (-math.log(s) if s > 0 else 2.0)
