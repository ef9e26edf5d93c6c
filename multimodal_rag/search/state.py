"""The merged search state of a store, kept in step with its catalog.

:class:`SearchState` is what one query needs besides the vectors: BM25 over
every committed text record, each record's place (doc, page, kind) and the
figure links. It is the union of the catalog's per-document
:class:`~multimodal_rag.search.segment.Segment` blobs.

:class:`StateSource` hands a reader the state of the store's current
generation. It merges segments once, caches the merged state under the
client's cache folder by generation (``<cache>/state/<store id>/gen-G``), and
on a later generation starts from the newest cached state and applies only
the documents that changed. A second client of a server therefore downloads
segments (no re-tokenising, no scan of the collections), and a client with no
writable cache still answers from memory.

Only records of the catalog's document versions are in the state, so the
retriever drops anything else a vector query returns: records of a document
being written, or left by a writer that died.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..keyword import BM25Index
from ..store.base import Catalog, Store, segment_key
from .links import Place
from .segment import Segment

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
_RECORDS, _LINKS, _BM25 = "records.json", "links.json", "bm25.npz"
# Full records fetched for hits are kept this many at a time: a few queries' worth.
_CACHE_LIMIT = 4096
_SEGMENT_BATCH = 50


class RecordTable(Mapping[str, tuple[str, dict[str, Any]]]):
    """Record id -> ``(text, metadata)``, with only (doc, page, kind) held in memory.

    Membership, iteration and :meth:`place` answer from memory; a record's text
    and metadata are fetched from the store (batched by :meth:`fetch`, cached a while).
    """

    def __init__(self, store: Store, places: Mapping[str, Place]) -> None:
        self._store = store
        self._places = places
        self._cache: dict[str, tuple[str, dict[str, Any]]] = {}
        self._pages: dict[tuple[str, int, str], list[str]] | None = None
        self._lock = threading.Lock()

    def __getitem__(self, rid: str) -> tuple[str, dict[str, Any]]:
        if rid not in self._places:
            raise KeyError(rid)
        if rid not in self._cache:
            self.fetch([rid])
        try:
            return self._cache[rid]
        except KeyError:
            raise KeyError(rid) from None  # deleted from the store since the state was read

    def __iter__(self) -> Iterator[str]:
        return iter(self._places)

    def __len__(self) -> int:
        return len(self._places)

    def __contains__(self, rid: object) -> bool:
        return rid in self._places

    def place(self, rid: str) -> Place | None:
        """``(doc, page, kind)`` of a record, without reading it."""
        return self._places.get(rid)

    def fetch(self, ids: Sequence[str]) -> None:
        """Read the given records from the store in one call (those not cached yet)."""
        missing = [i for i in dict.fromkeys(ids) if i not in self._cache and i in self._places]
        if not missing:
            return
        got = self._store.records(missing)
        with self._lock:
            if len(self._cache) + len(missing) > _CACHE_LIMIT:
                self._cache.clear()
            self._cache.update((rid, (text, meta)) for rid, text, meta in got)

    def on_page(self, doc: str, page: int, kind: str = "text") -> list[str]:
        """Ids of the records of one kind on a page, in record order."""
        if self._pages is None:
            pages: dict[tuple[str, int, str], list[str]] = {}
            for rid, where in self._places.items():
                pages.setdefault(where, []).append(rid)
            self._pages = pages
        return list(self._pages.get((doc, page, kind), []))


class SearchState:
    """BM25, record places and figure links of the committed documents.

    Args:
        store: The store the records live in.

    Example:
        >>> from multimodal_rag.store import MemoryStore
        >>> state = SearchState(MemoryStore())
        >>> state.add(Segment.build("a.pdf", "v1", {"t@v1": ("See Figure 1.",
        ...     {"doc": "a.pdf", "page": 1, "kind": "text"}), "f@v1": ("Figure 1 pump",
        ...     {"doc": "a.pdf", "page": 2, "kind": "figure", "figure": "Figure 1"})}))
        >>> state.links, state.versions
        ({'t@v1': ['f@v1']}, {'a.pdf': 'v1'})
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.bm25 = BM25Index()
        self._places: dict[str, Place] = {}
        self._doc_ids: dict[str, list[str]] = {}
        self._doc_links: dict[str, dict[str, list[str]]] = {}
        self.versions: dict[str, str] = {}
        self.links: dict[str, list[str]] = {}
        self.records = RecordTable(store, self._places)

    @property
    def places(self) -> Mapping[str, Place]:
        """Record id -> (doc, page, kind) of every committed record."""
        return self._places

    def add(self, segment: Segment) -> None:
        """Add a document version (replacing the document's previous one)."""
        self.add_many([segment])

    def add_many(self, segments: Sequence[Segment]) -> None:
        """Add document versions (replacing earlier ones) with one keyword-index merge."""
        if not segments:
            return
        for segment in segments:
            self.drop(segment.doc)
        self.bm25 = BM25Index.merge([self.bm25, *(seg.bm25 for seg in segments)])
        for segment in segments:
            self._places.update(segment.places)
            self._doc_ids[segment.doc] = list(segment.places)
            if segment.links:
                self._doc_links[segment.doc] = segment.links
            self.versions[segment.doc] = segment.version
        self._changed()

    def drop(self, doc: str) -> None:
        """Forget a document's records and links."""
        gone = self._doc_ids.pop(doc, [])
        if not gone and doc not in self.versions:
            return
        self.bm25.remove(gone)
        for rid in gone:
            self._places.pop(rid, None)
        self._doc_links.pop(doc, None)
        self.versions.pop(doc, None)
        self._changed()

    def copy(self) -> SearchState:
        """An independent copy, to change while other threads still query this one."""
        out = SearchState(self.store)
        out.bm25 = self.bm25.copy()
        out._places = dict(self._places)
        out._doc_ids = {d: list(ids) for d, ids in self._doc_ids.items()}
        out._doc_links = dict(self._doc_links)
        out.versions = dict(self.versions)
        out._changed()
        return out

    def _changed(self) -> None:
        self.links = {rid: f for links in self._doc_links.values() for rid, f in links.items()}
        self.records = RecordTable(self.store, self._places)

    # -- local cache ----------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write the merged state to ``folder``: aside, then renamed, so a folder is whole.

        Raises:
            StoreError: It cannot be written.
        """
        docs = sorted(self._doc_ids)
        code = {d: i for i, d in enumerate(docs)}
        ids = list(self._places)
        records = {
            "format": CACHE_FORMAT,
            "versions": self.versions,
            "docs": docs,
            "ids": ids,
            "doc": [code[self._places[r][0]] for r in ids],
            "page": [self._places[r][1] for r in ids],
            "kind": [int(self._places[r][2] == "figure") for r in ids],
        }
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
            try:
                (tmp / _RECORDS).write_text(json.dumps(records), encoding="utf-8")
                (tmp / _LINKS).write_text(json.dumps(self._doc_links), encoding="utf-8")
                self.bm25.save(tmp / _BM25, compress=False)
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError as e:
            raise StoreError(f"cannot cache the search state: {e}", location=folder) from e

    @classmethod
    def load(cls, store: Store, folder: Path) -> SearchState:
        """Read a state written by :meth:`save`.

        Raises:
            StoreError: Missing, unreadable or of another format.
        """
        try:
            records = json.loads((folder / _RECORDS).read_text(encoding="utf-8"))
            links = json.loads((folder / _LINKS).read_text(encoding="utf-8"))
            if records.get("format") != CACHE_FORMAT:
                raise ValueError(f"format {records.get('format')}")
            docs: list[str] = records["docs"]
            state = cls(store)
            state.bm25 = BM25Index.load(folder / _BM25)
            for rid, d, p, k in zip(
                records["ids"], records["doc"], records["page"], records["kind"], strict=True
            ):
                doc = docs[d]
                state._places[rid] = (doc, int(p), "figure" if k else "text")
                state._doc_ids.setdefault(doc, []).append(rid)
            state._doc_links = {str(d): dict(v) for d, v in links.items()}
            state.versions = {str(d): str(v) for d, v in records["versions"].items()}
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            raise StoreError(f"unreadable cached search state: {e}", location=folder) from e
        if len(state.bm25) != len(state._places):
            raise StoreError(
                "cached search state: keyword index and records differ", location=folder
            )
        state._changed()
        return state


def read_segments(store: Store, wanted: Mapping[str, str]) -> list[Segment]:
    """The segments of the given ``doc -> version`` pairs, from the store's blobs.

    A segment whose keyword index is of another tokenizer version is rebuilt
    from its records; a missing or unreadable one is logged and left out (that
    document is not searchable until it is ingested again).
    """
    keys = {segment_key(doc, ver): doc for doc, ver in wanted.items()}
    key_list = list(keys)
    out: list[Segment] = []
    for start in range(0, len(key_list), _SEGMENT_BATCH):
        batch = key_list[start : start + _SEGMENT_BATCH]
        got = store.get_blobs(batch)
        for key in batch:
            data = got.get(key)
            if data is None:
                logger.error("%s: no search segment; ingest it again to search it", keys[key])
                continue
            try:
                segment, header = Segment.from_bytes(data, location=f"{store.location} {key}")
            except StoreError as e:
                logger.error("%s: %s; ingest it again to search it", keys[key], e)
                continue
            if segment is None:
                records = store.records(list(header.places))
                segment = Segment.build(
                    header.doc, header.version, {rid: (text, meta) for rid, text, meta in records}
                )
            out.append(segment)
    return out


class StateSource:
    """The search state of a store's current generation, for any number of retrievers.

    Args:
        store: The store.

    Example:
        >>> from multimodal_rag.store import MemoryStore
        >>> StateSource(MemoryStore()).current() is None
        True
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._state: SearchState | None = None
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    @property
    def catalog(self) -> Catalog | None:
        """The catalog the current state was built for."""
        return self._catalog

    def current(self) -> SearchState | None:
        """The state of the store's committed generation (``None`` for a store without one).

        Reads the catalog (one small record) and does more only when its
        generation moved since the last call.
        """
        catalog = self.store.catalog()
        if catalog is None:
            return None
        with self._lock:
            if (
                self._state is not None
                and self._catalog is not None
                and (self._catalog.store_id, self._catalog.generation)
                == (catalog.store_id, catalog.generation)
            ):
                return self._state
            self._state = self._build(catalog)
            self._catalog = catalog
            return self._state

    def _cache_root(self, catalog: Catalog) -> Path | None:
        root = self.store.cache_dir
        return None if root is None else root / "state" / catalog.store_id

    def _build(self, catalog: Catalog) -> SearchState:
        wanted = {doc: e.version for doc, e in catalog.documents.items()}
        root = self._cache_root(catalog)
        state = (
            self._state.copy() if self._state is not None and self._same_store(catalog) else None
        )
        if state is None and root is not None:
            state = _newest_cached(self.store, root, catalog.generation)
        if state is None:
            state = SearchState(self.store)
        for doc in [d for d, v in state.versions.items() if wanted.get(d) != v]:
            state.drop(doc)
        todo = {d: v for d, v in wanted.items() if state.versions.get(d) != v}
        state.add_many(read_segments(self.store, todo))
        if root is not None and (todo or not (root / f"gen-{catalog.generation}").is_dir()):
            try:
                state.save(root / f"gen-{catalog.generation}")
                for old in root.glob("gen-*"):
                    if old.name != f"gen-{catalog.generation}":
                        shutil.rmtree(old, ignore_errors=True)
            except StoreError as e:
                logger.info("search state not cached: %s", e)
        return state

    def _same_store(self, catalog: Catalog) -> bool:
        return self._catalog is not None and self._catalog.store_id == catalog.store_id


def _newest_cached(store: Store, root: Path, generation: int) -> SearchState | None:
    """The cached state of ``generation``, else of the newest generation cached before it."""
    if not root.is_dir():
        return None
    gens = sorted(
        (int(p.name[4:]) for p in root.glob("gen-*") if p.name[4:].isdigit()), reverse=True
    )
    for gen in [g for g in gens if g <= generation][:1]:
        try:
            return SearchState.load(store, root / f"gen-{gen}")
        except StoreError as e:
            logger.info("ignoring the cached search state: %s", e)
    return None
