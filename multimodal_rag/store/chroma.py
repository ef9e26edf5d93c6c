"""The Chroma backend: an embedded ``PersistentClient`` folder or a Chroma server.

A store named ``NAME`` is four collections, all cosine space:

- ``NAME_text``: passages and figure texts (the ``text`` space);
- ``NAME_figure``: figure texts again, so figure-only queries are a plain kNN
  over a small collection rather than a filtered kNN over all text (which
  Chroma answers in time linear in the collection: 4.2 s at 110k records);
- ``NAME_image``: CLIP vectors of figures;
- ``NAME_meta`` (server stores): the blob table — catalog, search segments,
  figure PNGs, writer lease — so a server store is complete without anyone's
  local disk. An embedded store keeps its blobs as files under ``blobs/``
  and its writer lock as ``writer.lock`` in its folder.

Records carry LlamaIndex node content (``_node_content``, ``ref_doc_id``), so a
stock ``ChromaVectorStore`` over ``NAME_text`` reads them as ``TextNode`` and
``ImageNode`` with our metadata.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from ..errors import StoreError, StoreNotFoundError
from .base import DEFAULT_LOCK_TIMEOUT, DEFAULT_STORE_NAME, Catalog, Record, Space, StoreBase
from .blobs import ChromaBlobs, FolderBlobs
from .locks import LeaseLock, file_lock
from .nodes import clean_metadata, node_record

if TYPE_CHECKING:
    import numpy.typing as npt
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from llama_index.core.schema import BaseNode

logger = logging.getLogger(__name__)

# Chroma refuses batches above its max_batch_size (~5k embedded); stay well below.
_WRITE_BATCH = 1000


class ChromaStore(StoreBase):
    """The collections of one store, through any Chroma client.

    Args:
        client: An embedded ``PersistentClient``/``EphemeralClient`` or an ``HttpClient``.
        location: The folder or URL, for messages.
        name: Prefix of the collection names.
        folder: The embedded store's folder (blobs, lock, cache); ``None`` for a server.
        create: Create missing collections; when false, a read-only client never writes.
        live: Use this process's live client of ``folder`` (see :meth:`catalog`) instead
            of ``client``; :func:`open_store` does so for embedded stores.

    Example:
        >>> import chromadb, tempfile
        >>> from pathlib import Path
        >>> store = ChromaStore(chromadb.EphemeralClient(), location="memory", name="doc_ex",
        ...                     folder=Path(tempfile.mkdtemp()))
        >>> store.catalog() is None
        True
    """

    def __init__(
        self,
        client: ClientAPI,
        *,
        location: str,
        name: str = DEFAULT_STORE_NAME,
        folder: Path | None = None,
        create: bool = True,
        live: bool = False,
    ) -> None:
        self._client = client
        self.location = location
        self.name = name
        self.folder = folder
        self._create = create
        self._collections: dict[str, Collection] = {}
        self._live = live
        self._collections_of: ClientAPI | None = None
        if folder is not None:
            # Stores of other names may share the folder; each keeps its own blobs.
            blobs = "blobs" if name == DEFAULT_STORE_NAME else f"blobs-{name}"
            self._blobs = FolderBlobs(folder / blobs, location=location)
            self.cache_dir = _writable(folder / "cache") or _user_cache(location, name)
            self.figures_dir = folder / "figures"
        else:
            self._blobs = ChromaBlobs(self._collection("meta"), location=location)
            self.cache_dir = _user_cache(location, name)
            self.figures_dir = None if self.cache_dir is None else self.cache_dir / "figures"
            self.remote_pngs = True

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
            raise StoreError(f"Chroma failed: {e}", location=self.location) from e

    def _collection(self, suffix: str) -> Collection:
        got = self._maybe(suffix)
        if got is None:
            raise StoreNotFoundError(
                "holds no documents; run `mmrag ingest` first", location=self.location
            )
        return got

    def _maybe(self, suffix: str) -> Collection | None:
        """A collection; ``None`` when it does not exist and this client may not create it
        (a store opened for reading whose image collection was never needed, say)."""
        from chromadb.errors import NotFoundError

        if self._live and self._collections_of is not self.client:
            self._collections, self._collections_of = {}, self.client
        if suffix not in self._collections:
            name = f"{self.name}_{suffix}"
            with self._guard():
                if self._create:
                    got = self.client.get_or_create_collection(
                        name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
                    )
                else:
                    try:
                        got = self.client.get_collection(name, embedding_function=None)
                    except (NotFoundError, ValueError):
                        return None
            self._collections[suffix] = got
        return self._collections[suffix]

    # -- catalog: an embedded store notices other processes' commits --------------------------

    @property
    def client(self) -> ClientAPI:
        """The Chroma client (for an embedded store opened by path: this process's live one)."""
        return _LIVE.client(self.folder) if self._live else self._client

    @client.setter
    def client(self, value: ClientAPI) -> None:
        self._client = value

    def catalog(self) -> Catalog | None:
        """The committed catalog; an embedded store reloads Chroma when another process wrote.

        Chroma's embedded client keeps each collection's vector index in memory and
        never sees another process's writes to it (even deleted records are still
        returned). The catalog says when that happened, and the process's client is
        replaced by a fresh one, which reads the index from disk.
        """
        found = super().catalog()
        if self._live and found is not None and self.folder is not None:
            if _LIVE.saw(self.folder, found.store_id, found.generation, own=False):
                self._collections = {}
        return found

    def commit(self, catalog: Catalog) -> None:
        """Write the catalog (the commit point)."""
        super().commit(catalog)
        if self._live and self.folder is not None:
            _LIVE.saw(self.folder, catalog.store_id, catalog.generation, own=True)

    def collection(self, space: Space) -> Collection:
        """The Chroma collection of a space."""
        return self._collection(space)

    # -- vectors ----------------------------------------------------------------------------

    def upsert(
        self, space: Space, nodes: Sequence[BaseNode], embeddings: npt.NDArray[np.float32]
    ) -> None:
        """Write records in batches; re-running with the same ids never duplicates."""
        collection = self._collection(space)
        rows = [node_record(n) for n in nodes]
        with self._guard():
            for start in range(0, len(rows), _WRITE_BATCH):
                batch = rows[start : start + _WRITE_BATCH]
                collection.upsert(
                    ids=[r[0] for r in batch],
                    embeddings=np.asarray(embeddings[start : start + len(batch)], np.float32),
                    documents=[r[1] for r in batch],
                    metadatas=[r[2] for r in batch],
                )

    def delete_version(self, doc: str, version: str) -> None:
        """Delete one version of a document from every collection."""
        where: Any = {"$and": [{"doc": doc}, {"ver": version}]}
        with self._guard():
            for space in ("text", "figure", "image"):
                collection = self._maybe(space)
                if collection is not None:
                    collection.delete(where=where)

    def query(self, space: Space, vector: Sequence[float], n: int) -> list[tuple[str, float]]:
        """Nearest records by cosine similarity (1 - Chroma's cosine distance)."""
        collection = self._maybe(space)
        if n < 1 or collection is None:
            return []
        with self._guard():
            got = collection.query(
                query_embeddings=np.asarray([vector], np.float32),
                n_results=n,
                include=["distances"],
            )
        ids, distances = got["ids"][0], (got["distances"] or [[]])[0]
        return [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]

    def records(self, ids: Sequence[str]) -> list[Record]:
        """Texts and metadata of text-space records (missing ids are left out)."""
        collection = self._maybe("text")
        if not ids or collection is None:
            return []
        with self._guard():
            got = collection.get(ids=list(ids), include=["documents", "metadatas"])
        return [
            (rid, text or "", clean_metadata(dict(meta or {})))
            for rid, text, meta in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
            )
        ]

    def count(self, space: Space) -> int:
        """Vectors in a collection (orphans of a dead writer included)."""
        collection = self._maybe(space)
        if collection is None:
            return 0
        with self._guard():
            return int(collection.count())

    # -- lock -------------------------------------------------------------------------------

    def writer(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """The writer lock: a file lock in the folder, or a lease on the server."""
        if self.folder is not None:
            return file_lock(self.folder, self.location, timeout)
        return LeaseLock(
            self.get_blob, self.put_blob, self.delete_blob, location=self.location
        ).hold(timeout)


class _LiveClients:
    """This process's Chroma client per embedded store folder, replaced when another wrote.

    Chroma shares one in-memory system per folder path in a process, and that
    system never sees vector writes made by other processes. When a catalog
    shows a generation this process did not write (or reload for), the folder
    gets a new client under an equivalent spelling of its path that no system
    uses yet (``DIR/.``), which loads the index from disk; the old one is closed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, ClientAPI] = {}
        self._seen: dict[tuple[str, str], int] = {}  # (folder, store id) -> generation
        self._reloaded: dict[str, ClientAPI] = {}

    def client(self, folder: Path | None) -> ClientAPI:
        key = str(Path(str(folder)).resolve())
        with self._lock:
            if key not in self._clients:
                self._clients[key] = _persistent_client(key)
            return self._clients[key]

    def saw(self, folder: Path, store_id: str, generation: int, *, own: bool) -> bool:
        """Note a catalog this process read or wrote; returns whether the client was replaced."""
        key = str(folder.resolve())
        with self._lock:
            before = self._seen.get((key, store_id))
            self._seen[(key, store_id)] = generation
            if own or before is None or before == generation:
                return False
            from chromadb.api.shared_system_client import SharedSystemClient

            in_use = getattr(SharedSystemClient, "_identifier_to_system", {})
            spelling = key + "/."
            while spelling in in_use:
                spelling += "/."
            fresh = _persistent_client(spelling)
            old = self._reloaded.pop(key, None)
            if old is not None:
                old.close()  # type: ignore[attr-defined]
            self._clients[key] = self._reloaded[key] = fresh
        logger.info("%s: changed by another process; Chroma client reloaded", key)
        return True


def _persistent_client(path: str) -> ClientAPI:
    import chromadb
    from chromadb.config import Settings
    from chromadb.errors import ChromaError

    try:
        return chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))
    except (ValueError, OSError, RuntimeError, ChromaError) as e:
        raise StoreError(f"cannot open the Chroma database ({e})", location=path) from e


_LIVE = _LiveClients()


def _writable(folder: Path) -> Path | None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def _user_cache(location: str, name: str) -> Path | None:
    root = Path(os.environ.get("MMRAG_CACHE_DIR") or Path.home() / ".cache" / "multimodal_rag")
    safe = "".join(c if c.isalnum() else "_" for c in f"{location}_{name}")[-100:]
    return _writable(root / "stores" / safe)


def open_store(
    path: str | Path | None = None,
    *,
    url: str | None = None,
    name: str = DEFAULT_STORE_NAME,
    create: bool = True,
) -> ChromaStore:
    """Open (or create) a Chroma store in a folder, or on a Chroma server.

    A store of an older layout (schema 1) is migrated on open when it may be
    written (see :mod:`multimodal_rag.store.migrate`).

    Args:
        path: Folder of an embedded store.
        url: ``http://HOST:PORT`` of a Chroma server (``chroma run``); replaces ``path``.
        name: Collection name prefix.
        create: When false, a missing store is a :class:`StoreNotFoundError` and
            nothing is written (a read-only store can still be queried).

    Returns:
        The opened store.

    Raises:
        StoreError: The path is a file, is not writable, or the server is unreachable.
        StoreNotFoundError: ``create`` is false and there is no store there.

    Example:
        >>> import tempfile
        >>> store = open_store(tempfile.mkdtemp())
        >>> store.counts()
        {'text': 0, 'figure': 0, 'image': 0}
    """
    import chromadb
    from chromadb.config import Settings

    from .migrate import migrate_if_needed

    settings = Settings(anonymized_telemetry=False)
    if (path is None) == (url is None):
        raise StoreError("give exactly one of a store folder or a Chroma URL", location="?")
    if url is not None:
        try:
            parsed = urlparse(url)
            port = parsed.port
        except ValueError as e:
            raise StoreError(f"not a valid URL ({e})", location=url) from e
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise StoreError("expected a URL like http://127.0.0.1:8000", location=url)
        try:
            client = chromadb.HttpClient(
                host=parsed.hostname,
                port=port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=settings,
            )
            client.heartbeat()
        except (ValueError, OSError) as e:
            raise StoreError(f"Chroma server not reachable ({e})", location=url) from e
        store = ChromaStore(client, location=url, name=name, create=create)
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
        client = _LIVE.client(folder)
        store = ChromaStore(
            client, location=str(folder), name=name, folder=folder, create=create, live=True
        )
    migrate_if_needed(store)
    if not create and store.catalog() is None:
        raise StoreNotFoundError(
            "holds no documents; run `mmrag ingest` first", location=store.location
        )
    return store
