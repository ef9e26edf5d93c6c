"""The Chroma store: text and image collections plus a manifest, embedded or on a server.

A store named ``NAME`` is three Chroma collections:

- ``NAME_text``: one vector per text chunk, and one per figure's text (caption,
  in-figure labels, referring sentences), told apart by the ``kind`` metadata.
  Keeping figure text here makes "figure found by its caption" and "passage"
  candidates of one ranking; see docs/fusion.md for the measurement.
- ``NAME_image``: one CLIP vector per figure (only with an image model).
- ``NAME_meta``: the manifest (models, dimensions, schema version), one entry
  per document (content hash, counts), and the figures' PNG bytes, so a store
  on a Chroma server is complete without anyone's local disk.

The manifest lives in Chroma itself, so the embedded store and a server behave
the same way.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from .errors import StoreError, StoreMismatchError, StoreNotFoundError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_STORE_NAME = "mmrag"
# Chroma refuses batches above its max_batch_size (~5k embedded); stay well below.
_WRITE_BATCH = 1000
_STORE_KEY = "__store__"
_DUMMY_VECTOR = [1.0]  # the meta collection is a key-value table; Chroma insists on vectors

TextPrecision = Literal["fp32", "int8"]


class Manifest(BaseModel):
    """What a store was built with; checked every time the store is opened.

    Attributes:
        schema_version: Layout version of the collections and metadata.
        profile: Profile name the store was created with.
        text_model: Text embedding model (hub id, folder or package marker).
        text_dim: Its embedding dimension.
        text_precision: ``"int8"`` (ONNX dynamic quantisation) or ``"fp32"``
            weights of the text model. Absent from manifests written before
            int8 existed; those stores were built in fp32.
        image_model: Image embedding model, or ``None`` (figures by text only).
        image_dim: Its embedding dimension, or ``None``.
        generation: Incremented by every change; caches key on it.
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
    """The manifest's record of one ingested document."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    doc: str
    content_hash: str
    path: str
    pages: int
    text_chunks: int
    figures: int


def _chroma_failure(location: str, e: BaseException) -> StoreError:
    return StoreError(f"Chroma failed: {e}", location=location)


class ChromaStore:
    """The collections of one store, opened through any Chroma client.

    Args:
        client: An embedded ``PersistentClient``/``EphemeralClient`` or an ``HttpClient``.
        location: The folder or URL, for messages.
        name: Prefix of the collection names.
        local_dir: Folder for figure PNG files (``<store>/figures`` when embedded).

    Example:
        >>> import chromadb
        >>> store = ChromaStore(chromadb.EphemeralClient(), location="memory", name="doc_ex")
        >>> store.manifest() is None
        True
    """

    def __init__(
        self,
        client: ClientAPI,
        *,
        location: str,
        name: str = DEFAULT_STORE_NAME,
        local_dir: Path | None = None,
    ) -> None:
        self.client = client
        self.location = location
        self.name = name
        self.local_dir = local_dir
        self.figures_dir = (local_dir or _default_cache_dir(location)) / "figures"
        self.keeps_blobs = local_dir is None
        with self._guard():
            self._meta = client.get_or_create_collection(f"{name}_meta", embedding_function=None)
        self._text: Collection | None = None
        self._image: Collection | None = None

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn Chroma and connection failures into StoreError naming the store."""
        import httpx
        from chromadb.errors import ChromaError

        try:
            yield
        except StoreError:
            raise
        except (ChromaError, httpx.HTTPError, ValueError, OSError) as e:
            raise _chroma_failure(self.location, e) from e

    def _collection(self, suffix: str) -> Collection:
        with self._guard():
            return self.client.get_or_create_collection(
                f"{self.name}_{suffix}",
                configuration={"hnsw": {"space": "cosine"}},
                embedding_function=None,
            )

    @property
    def text(self) -> Collection:
        """Text chunks and figure texts (cosine space)."""
        if self._text is None:
            self._text = self._collection("text")
        return self._text

    @property
    def image(self) -> Collection:
        """CLIP vectors of figures (cosine space)."""
        if self._image is None:
            self._image = self._collection("image")
        return self._image

    # -- manifest ---------------------------------------------------------------------------

    def manifest(self) -> Manifest | None:
        """The store's manifest, or ``None`` for a new store."""
        with self._guard():
            got = self._meta.get(ids=[_STORE_KEY], include=["documents"])
        if not got["ids"]:
            return None
        docs = got["documents"] or [""]
        try:
            return Manifest.model_validate_json(docs[0] or "")
        except ValueError as e:
            raise StoreError(f"manifest is unreadable: {e}", location=self.location) from e

    def write_manifest(self, manifest: Manifest) -> None:
        """Create or replace the manifest."""
        self._put(_STORE_KEY, manifest.model_dump_json(), {"type": "store"})

    def check_manifest(self, expected: Manifest) -> Manifest:
        """Compare the store's manifest with the models about to be used.

        Returns:
            The stored manifest, or ``expected`` after writing it to a new store.

        Raises:
            StoreMismatchError: Models, dimensions or schema differ; the message names both.
        """
        found = self.manifest()
        if found is None:
            self.write_manifest(expected)
            return expected
        if found.schema_version != SCHEMA_VERSION:
            raise StoreMismatchError(
                f"schema version {found.schema_version}, this library reads {SCHEMA_VERSION}; "
                "re-ingest into a new store",
                location=self.location,
            )
        keys = ("text_model", "text_dim", "text_precision", "image_model", "image_dim")
        diffs = [
            f"{k}: store has {getattr(found, k)!r}, requested {getattr(expected, k)!r}"
            for k in keys
            if getattr(found, k) != getattr(expected, k)
        ]
        if diffs:
            raise StoreMismatchError(
                "built with other models (" + "; ".join(diffs) + "). Open it without naming "
                "a profile to use its own models, or ingest into a new store.",
                location=self.location,
            )
        return found

    def bump_generation(self) -> int:
        """Record that the store changed; returns the new generation."""
        found = self.manifest()
        if found is None:
            raise StoreNotFoundError("no manifest", location=self.location)
        bumped = found.model_copy(update={"generation": found.generation + 1})
        self.write_manifest(bumped)
        return bumped.generation

    def documents(self) -> list[DocumentEntry]:
        """Every completely ingested document, sorted by name."""
        with self._guard():
            got = self._meta.get(where={"type": "doc"}, include=["documents"])
        entries = [DocumentEntry.model_validate_json(d or "") for d in got["documents"] or []]
        return sorted(entries, key=lambda e: e.doc)

    def document(self, doc: str) -> DocumentEntry | None:
        """The manifest entry of one document, or ``None``."""
        with self._guard():
            got = self._meta.get(ids=[f"doc::{doc}"], include=["documents"])
        docs = got["documents"] or []
        return DocumentEntry.model_validate_json(docs[0] or "") if docs else None

    def write_document(self, entry: DocumentEntry) -> None:
        """Mark a document as completely ingested; written last, after its records."""
        self._put(f"doc::{entry.doc}", entry.model_dump_json(), {"type": "doc", "doc": entry.doc})

    def _put(self, key: str, document: str, metadata: dict[str, Any]) -> None:
        with self._guard():
            self._meta.upsert(
                ids=[key],
                documents=[document],
                metadatas=[metadata],
                embeddings=np.asarray([_DUMMY_VECTOR], dtype=np.float32),
            )

    # -- records ----------------------------------------------------------------------------

    def upsert(
        self,
        collection: Collection,
        ids: Sequence[str],
        embeddings: Sequence[Sequence[float]] | npt.NDArray[np.float32],
        documents: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        """Write records in batches; re-running with the same ids never duplicates."""
        with self._guard():
            for start in range(0, len(ids), _WRITE_BATCH):
                end = start + _WRITE_BATCH
                collection.upsert(
                    ids=list(ids[start:end]),
                    embeddings=np.asarray(embeddings[start:end], dtype=np.float32),
                    documents=list(documents[start:end]),
                    metadatas=list(metadatas[start:end]),
                )

    def delete_document(self, doc: str) -> None:
        """Delete a document's chunks, figures, PNG blobs and manifest entry."""
        with self._guard():
            self._meta.delete(ids=[f"doc::{doc}"])
            for collection in (self.text, self.image):
                collection.delete(where={"doc": doc})
            self._meta.delete(where={"$and": [{"type": "png"}, {"doc": doc}]})

    def put_pngs(self, doc: str, pngs: Sequence[tuple[str, bytes]]) -> None:
        """Keep figures' PNGs inside a server store, so it is complete without local files.

        An embedded store keeps them only as files in its folder: Chroma indexes
        document text for full-text search, which makes large blobs slow to write.
        """
        if not self.keeps_blobs or not pngs:
            return
        with self._guard():
            self._meta.upsert(
                ids=[f"png::{doc}::{name}" for name, _ in pngs],
                documents=[base64.b64encode(png).decode("ascii") for _, png in pngs],
                metadatas=[{"type": "png", "doc": doc, "name": name} for name, _ in pngs],
                embeddings=np.asarray([_DUMMY_VECTOR] * len(pngs), dtype=np.float32),
            )

    def figure_file(self, doc: str, name: str) -> Path:
        """Local path of a figure's PNG, written from the store's copy when missing."""
        target = self.figures_dir / name
        if target.exists():
            return target
        with self._guard():
            got = self._meta.get(ids=[f"png::{doc}::{name}"], include=["documents"])
        docs = got["documents"] or []
        if not docs:
            raise StoreError(f"figure image {name} of {doc} is missing", location=self.location)
        from .loading.images import save_png

        return save_png(base64.b64decode(docs[0] or ""), self.figures_dir)

    def describe(self) -> dict[str, Any]:
        """Counts, documents and models, as ``mmrag info --json`` prints them."""
        manifest = self.manifest()
        if manifest is None:
            raise StoreNotFoundError("holds no documents", location=self.location)
        docs = self.documents()
        return {
            "store": self.location,
            "text_chunks": sum(d.text_chunks for d in docs),
            "figures": sum(d.figures for d in docs),
            "documents": [
                {"doc": d.doc, "text_chunks": d.text_chunks, "figures": d.figures, "pages": d.pages}
                for d in docs
            ],
            "models": manifest.model_dump(exclude={"generation"}),
        }

    def counts(self) -> dict[str, int]:
        """Number of vectors per collection."""
        with self._guard():
            return {"text": self.text.count(), "image": self.image.count()}

    def text_records(self, ids: Sequence[str]) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Ids, texts and metadata of the given text records (missing ids are left out)."""
        if not ids:
            return [], [], []
        with self._guard():
            got = self.text.get(ids=list(ids), include=["documents", "metadatas"])
        texts = [d or "" for d in got["documents"] or []]
        return list(got["ids"]), texts, [dict(m or {}) for m in got["metadatas"] or []]

    def all_text_records(self) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Ids, texts and metadata of every record of the text collection (for BM25)."""
        ids: list[str] = []
        texts: list[str] = []
        metas: list[dict[str, Any]] = []
        with self._guard():
            total = self.text.count()
            for offset in range(0, total, _WRITE_BATCH * 5):
                got = self.text.get(
                    include=["documents", "metadatas"], limit=_WRITE_BATCH * 5, offset=offset
                )
                ids.extend(got["ids"])
                texts.extend(d or "" for d in got["documents"] or [])
                metas.extend(dict(m or {}) for m in got["metadatas"] or [])
        return ids, texts, metas


def _default_cache_dir(location: str) -> Path:
    root = Path(os.environ.get("MMRAG_CACHE_DIR") or Path.home() / ".cache" / "multimodal_rag")
    safe = "".join(c if c.isalnum() else "_" for c in location)[-80:]
    return root / "servers" / safe


def open_store(
    path: str | Path | None = None,
    *,
    url: str | None = None,
    name: str = DEFAULT_STORE_NAME,
    create: bool = True,
) -> ChromaStore:
    """Open (or create) a store in a folder, or on a Chroma server.

    Args:
        path: Folder of an embedded store.
        url: ``http://HOST:PORT`` of a Chroma server (``chroma run``); replaces ``path``.
        name: Collection name prefix.
        create: When false, a missing store is a :class:`StoreNotFoundError`.

    Returns:
        The opened store.

    Raises:
        StoreError: The path is a file, is not writable, or the server is unreachable.
        StoreNotFoundError: ``create`` is false and there is no store there.

    Example:
        >>> import tempfile
        >>> store = open_store(tempfile.mkdtemp())
        >>> store.counts()
        {'text': 0, 'image': 0}
    """
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if (path is None) == (url is None):
        raise StoreError("give exactly one of a store folder or a Chroma URL", location="?")
    if url is not None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise StoreError("expected a URL like http://127.0.0.1:8000", location=url)
        try:
            client = chromadb.HttpClient(
                host=parsed.hostname,
                port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=settings,
            )
            client.heartbeat()
        except (ValueError, OSError) as e:
            raise StoreError(f"Chroma server not reachable ({e})", location=url) from e
        store = ChromaStore(client, location=url, name=name)
    else:
        folder = Path(path)  # type: ignore[arg-type]
        if folder.exists() and not folder.is_dir():
            raise StoreError("is a file, not a store folder", location=folder)
        if not folder.exists():
            if not create:
                raise StoreNotFoundError("no store here; run `mmrag ingest` first", location=folder)
            try:
                folder.mkdir(parents=True)
            except OSError as e:
                raise StoreError(f"cannot create the folder ({e})", location=folder) from e
        elif create and not os.access(folder, os.W_OK):
            raise StoreError("folder is not writable", location=folder)
        try:
            client = chromadb.PersistentClient(path=str(folder), settings=settings)
        except (ValueError, OSError, RuntimeError) as e:
            raise StoreError(f"cannot open the Chroma database ({e})", location=folder) from e
        store = ChromaStore(client, location=str(folder), name=name, local_dir=folder)
    if not create and store.manifest() is None:
        raise StoreNotFoundError(
            "holds no documents; run `mmrag ingest` first", location=store.location
        )
    return store


def bbox_from_json(value: object) -> list[float] | None:
    """Parse a bbox stored as JSON text in metadata."""
    if not value:
        return None
    parsed = json.loads(str(value))
    return [float(v) for v in parsed]
