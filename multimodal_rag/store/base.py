"""The storage interface: all that the index, ingest and the retriever know of storage.

::

    Store (Protocol)                 what callers use
    └── StoreBase                    catalog, segments, PNGs, commits: written once, here
        ├── ChromaStore              embedded PersistentClient or a Chroma server (chroma.py)
        ├── VectorStoreStore         any LlamaIndex vector store + a local folder (vector_store.py)
        └── MemoryStore              NumPy and dicts, for tests (memory.py)

A backend supplies three things: vectors in three *spaces*, a small blob
table, and a writer lock.

====== ===================================================================
space  holds
====== ===================================================================
text   passages and figure texts, by the text embedder (one ranking)
figure figure texts alone, the same vectors, for figure-only queries (no
       filtered kNN over the whole text space)
image  figures by the image embedder (CLIP), when the store has one
====== ===================================================================

Blobs are bytes by key: the catalog, per-document search segments and figure
PNGs. The **catalog** (models, generation and every committed document, one
record) is the commit point: a document becomes visible when a catalog naming
its version is written, and the reader's search state holds only the records of
the catalog's versions. Record ids carry the version
(``<chunk id>@<version>``), so a new version is written beside the old one, a
kill at any moment leaves one of them visible, and the next writer deletes
what a dead one left (its *pending* marker says what).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from ..errors import StoreError, StoreMismatchError, StoreNotFoundError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from llama_index.core.schema import BaseNode

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""2: catalog record, versioned record ids, a figure space, search segments as blobs."""
DEFAULT_STORE_NAME = "mmrag"
SPACES: tuple[Space, ...] = ("text", "figure", "image")
CATALOG_KEY = "catalog.json"
SEGMENT_GROUP = "seg"
PNG_GROUP = "png"
PENDING_GROUP = "pending"
DEFAULT_LOCK_TIMEOUT = 60.0

Space = Literal["text", "figure", "image"]
TextPrecision = Literal["fp32", "int8"]
Record = tuple[str, str, dict[str, Any]]
"""``(id, text, metadata)`` of a stored record."""


class Manifest(BaseModel):
    """What a store was built with; checked every time the store is opened.

    Attributes:
        schema_version: Layout version of the store.
        profile: Profile name the store was created with.
        text_model: Text embedding model (hub id, folder or package marker).
        text_dim: Its embedding dimension.
        text_precision: ``"int8"`` (ONNX dynamic quantisation) or ``"fp32"``.
        image_model: Image embedding model, or ``None`` (figures by text only).
        image_dim: Its embedding dimension, or ``None``.
        generation: Incremented by every commit; caches key on it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    profile: str
    text_model: str
    text_dim: int
    text_precision: TextPrecision = "fp32"
    image_model: str | None = None
    image_dim: int | None = None
    generation: int = 0


class DocumentEntry(BaseModel):
    """The catalog's record of one committed document.

    Attributes:
        doc: Citation name (file name, or folder-relative name of an article).
        content_hash: SHA-256 of the source; unchanged documents are skipped.
        path: Where it was read from.
        pages: Pages (1 for an article).
        text_chunks: Passages indexed.
        figures: Figures indexed.
        version: Suffix of this version's record ids; a new one per write.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    doc: str
    content_hash: str
    path: str
    pages: int
    text_chunks: int
    figures: int
    version: str = ""


class Catalog(BaseModel):
    """The one record whose write commits a change: models, generation, documents.

    Attributes:
        store_id: Random id given at creation; local caches key on it, so a store
            rebuilt under the same name never reads another's cache.
        manifest: Models, dimensions and generation.
        documents: Every committed document by name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    store_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    manifest: Manifest
    documents: dict[str, DocumentEntry] = Field(default_factory=dict)

    @property
    def generation(self) -> int:
        """The manifest's generation."""
        return self.manifest.generation

    def counts(self) -> dict[str, int]:
        """Committed records per space (what a query may ask of each)."""
        figures = sum(d.figures for d in self.documents.values())
        return {
            "text": sum(d.text_chunks for d in self.documents.values()) + figures,
            "figure": figures,
            "image": figures if self.manifest.image_model else 0,
        }


def record_id(base: str, version: str) -> str:
    """The stored id of a record of one document version."""
    return f"{base}@{version}" if version else base


def new_version() -> str:
    """A fresh version tag for a document write."""
    return uuid.uuid4().hex[:12]


def ref_doc_id(doc: str, version: str) -> str:
    """The LlamaIndex ``ref_doc_id`` of a document version's nodes."""
    return f"{doc}@{version}"


@runtime_checkable
class Store(Protocol):
    """What the index, the ingest pipeline and the retriever use of storage.

    Attributes:
        location: Folder or URL, for messages.
        cache_dir: Where this client may cache derived state and figure PNGs, or
            ``None`` when nothing local is writable (then everything stays in memory).
    """

    location: str
    cache_dir: Path | None

    def catalog(self) -> Catalog | None:
        """The committed catalog, or ``None`` for a new store."""

    def commit(self, catalog: Catalog) -> None:
        """Write the catalog: the change it describes becomes visible at once."""

    def upsert(
        self, space: Space, nodes: Sequence[BaseNode], embeddings: npt.NDArray[np.float32]
    ) -> None:
        """Write records (LlamaIndex nodes with our metadata) and their vectors."""

    def delete_version(self, doc: str, version: str) -> None:
        """Delete every record of one version of a document, in all spaces."""

    def query(self, space: Space, vector: Sequence[float], n: int) -> list[tuple[str, float]]:
        """The ``n`` nearest records of a space: ``(id, cosine similarity)``, best first."""

    def records(self, ids: Sequence[str]) -> list[Record]:
        """Text and metadata of the given text-space records (missing ids left out)."""

    def count(self, space: Space) -> int:
        """Vectors in a space, committed or not (an expensive call on some backends)."""

    def get_blob(self, key: str) -> bytes | None:
        """A blob, or ``None``."""

    def get_blobs(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Several blobs at once (missing keys left out)."""

    def put_blob(self, key: str, data: bytes) -> None:
        """Write a blob; a reader sees the old bytes or the new, never a part."""

    def delete_blob(self, key: str) -> None:
        """Delete one blob (absent is fine)."""

    def delete_group(self, group: str) -> None:
        """Delete every blob of a group (the keys below ``group/``)."""

    def blob_keys(self, group: str) -> list[str]:
        """Keys of a group's blobs."""

    def writer(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """Hold the store's writer lock: one writer at a time; readers never wait."""


class StoreBase:
    """Shared logic over a backend's vectors, blobs and lock (see the module docstring).

    Subclasses implement the vector and blob methods of :class:`Store` and
    :meth:`writer`; the catalog, manifest checks, PNGs and description live here.
    """

    location: str
    cache_dir: Path | None = None
    figures_dir: Path | None = None
    """Local folder of figure PNG files (content-addressed names), or ``None``."""
    remote_pngs: bool = False
    """Whether figure PNGs are kept as blobs in the store (servers, memory) for other clients."""

    _blobs: BlobTable

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn a backend's own failures into StoreError; backends that raise others override."""
        yield

    # -- vectors and lock: each backend's own -------------------------------------------------

    def upsert(
        self, space: Space, nodes: Sequence[BaseNode], embeddings: npt.NDArray[np.float32]
    ) -> None:
        """Write records (LlamaIndex nodes with our metadata) and their vectors."""
        raise NotImplementedError

    def delete_version(self, doc: str, version: str) -> None:
        """Delete every record of one version of a document, in all spaces."""
        raise NotImplementedError

    def query(self, space: Space, vector: Sequence[float], n: int) -> list[tuple[str, float]]:
        """The ``n`` nearest records of a space: ``(id, cosine similarity)``, best first."""
        raise NotImplementedError

    def records(self, ids: Sequence[str]) -> list[Record]:
        """Text and metadata of the given text-space records (missing ids left out)."""
        raise NotImplementedError

    def count(self, space: Space) -> int:
        """Vectors in a space, committed or not."""
        raise NotImplementedError

    def writer(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """Hold the store's writer lock."""
        raise NotImplementedError

    # -- blobs --------------------------------------------------------------------------------

    def get_blob(self, key: str) -> bytes | None:
        """A blob, or ``None``."""
        with self._guard():
            return self._blobs.get(key)

    def get_blobs(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Several blobs at once (missing keys left out)."""
        with self._guard():
            return self._blobs.get_many(keys)

    def put_blob(self, key: str, data: bytes) -> None:
        """Write a blob; a reader sees the old bytes or the new, never a part."""
        with self._guard():
            self._blobs.put(key, data)

    def delete_blob(self, key: str) -> None:
        """Delete one blob (absent is fine)."""
        with self._guard():
            self._blobs.delete(key)

    def delete_group(self, group: str) -> None:
        """Delete every blob of a group."""
        with self._guard():
            self._blobs.delete_group(group)

    def blob_keys(self, group: str) -> list[str]:
        """Keys of a group's blobs."""
        with self._guard():
            return self._blobs.keys(group)

    # -- catalog ------------------------------------------------------------------------------

    def catalog(self) -> Catalog | None:
        """The committed catalog, or ``None`` for a new store."""
        raw = self.get_blob(CATALOG_KEY)
        if raw is None:
            return None
        try:
            return Catalog.model_validate_json(raw)
        except ValueError as e:
            raise StoreError(f"catalog is unreadable: {e}", location=self.location) from e

    def commit(self, catalog: Catalog) -> None:
        """Write the catalog: the change it describes becomes visible at once."""
        self.put_blob(CATALOG_KEY, catalog.model_dump_json().encode("utf-8"))

    def manifest(self) -> Manifest | None:
        """The store's manifest, or ``None`` for a new store."""
        found = self.catalog()
        return None if found is None else found.manifest

    def documents(self) -> list[DocumentEntry]:
        """Every committed document, sorted by name."""
        found = self.catalog()
        return [] if found is None else sorted(found.documents.values(), key=lambda e: e.doc)

    def document(self, doc: str) -> DocumentEntry | None:
        """The catalog entry of one document, or ``None``."""
        found = self.catalog()
        return None if found is None else found.documents.get(doc)

    def check_manifest(self, expected: Manifest) -> Catalog:
        """Compare the store's models with those about to be used; create a new store's catalog.

        Returns:
            The stored catalog, or a new one holding ``expected`` (written).

        Raises:
            StoreMismatchError: Models, dimensions or schema differ; the message names both.
        """
        found = self.catalog()
        if found is None:
            created = Catalog(manifest=expected)
            self.commit(created)
            return created
        have = found.manifest
        if have.schema_version != SCHEMA_VERSION:
            raise StoreMismatchError(
                f"schema version {have.schema_version}, this library reads {SCHEMA_VERSION}; "
                "re-ingest into a new store",
                location=self.location,
            )
        keys = ("text_model", "text_dim", "text_precision", "image_model", "image_dim")
        diffs = [
            f"{k}: store has {getattr(have, k)!r}, requested {getattr(expected, k)!r}"
            for k in keys
            if getattr(have, k) != getattr(expected, k)
        ]
        if diffs:
            raise StoreMismatchError(
                "built with other models (" + "; ".join(diffs) + "). Open it without naming "
                "a profile to use its own models, or ingest into a new store.",
                location=self.location,
            )
        return found

    # -- figure PNGs ----------------------------------------------------------------------------

    def png_key(self, doc: str, version: str, name: str) -> str:
        """Blob key of a figure PNG of one document version."""
        return f"{png_group(doc, version)}/{key_part(name)}"

    def figure_png(self, doc: str, version: str, name: str) -> bytes | None:
        """A figure's PNG bytes from the store, or ``None``."""
        return self.get_blob(self.png_key(doc, version, name))

    def figure_file(self, doc: str, version: str, name: str) -> Path | bytes:
        """A figure's PNG as a local file, written from the store's copy when missing.

        Returns:
            The file's path, or the PNG bytes when no local folder is writable.

        Raises:
            StoreError: The store holds no such figure.
        """
        if self.figures_dir is not None and (self.figures_dir / name).is_file():
            return self.figures_dir / name
        png = self.figure_png(doc, version, name) if self.remote_pngs else None
        if png is None:
            raise StoreError(f"figure image {name} of {doc} is missing", location=self.location)
        if self.figures_dir is not None:
            from ..loading.images import save_png

            try:
                return save_png(png, self.figures_dir)
            except OSError as e:
                logger.info("figure %s kept in memory: %s", name, e)
        return png

    # -- description ----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Counts, documents and models, as ``mmrag info --json`` prints them.

        Raises:
            StoreNotFoundError: The store holds no catalog.
        """
        found = self.catalog()
        if found is None:
            raise StoreNotFoundError("holds no documents", location=self.location)
        docs = sorted(found.documents.values(), key=lambda e: e.doc)
        return {
            "store": self.location,
            "text_chunks": sum(d.text_chunks for d in docs),
            "figures": sum(d.figures for d in docs),
            "documents": [
                {"doc": d.doc, "text_chunks": d.text_chunks, "figures": d.figures, "pages": d.pages}
                for d in docs
            ],
            "models": found.manifest.model_dump(exclude={"generation"}),
        }

    def counts(self) -> dict[str, int]:
        """Vectors per space as the backend holds them (orphans of a dead writer included)."""
        return {space: self.count(space) for space in SPACES}


def segment_key(doc: str, version: str) -> str:
    """Blob key of a document version's search segment."""
    return f"{SEGMENT_GROUP}/{key_part(ref_doc_id(doc, version))}"


def png_group(doc: str, version: str) -> str:
    """Blob group of a document version's figure PNGs."""
    return f"{PNG_GROUP}/{key_part(ref_doc_id(doc, version))}"


def pending_key(doc: str, version: str) -> str:
    """Blob key of the marker a writer leaves while a document version is half-written."""
    return f"{PENDING_GROUP}/{key_part(ref_doc_id(doc, version))}"


def key_part(text: str) -> str:
    """One safe blob-key component for any name, including undecodable file names."""
    return quote(text.encode("utf-8", "surrogateescape"), safe="@")


class BlobTable(Protocol):
    """Keys to bytes, as a backend keeps them (see :mod:`multimodal_rag.store.blobs`)."""

    def get(self, key: str) -> bytes | None: ...
    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]: ...
    def put(self, key: str, data: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def delete_group(self, group: str) -> None: ...
    def keys(self, group: str) -> list[str]: ...


def pending_marker(doc: str, version: str, old_version: str | None) -> bytes:
    """What a pending marker holds: enough to finish or undo the write."""
    return json.dumps({"doc": doc, "version": version, "old_version": old_version}).encode()


def parse_marker(raw: bytes) -> tuple[str, str, str | None]:
    """``(doc, version, old_version)`` of a pending marker."""
    data = json.loads(raw)
    return str(data["doc"]), str(data["version"]), data.get("old_version")


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` cut into pieces of at most ``size`` bytes (one empty piece for no data)."""
    if not data:
        yield b""
    for start in range(0, len(data), size):
        yield data[start : start + size]
