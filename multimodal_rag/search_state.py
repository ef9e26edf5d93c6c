"""What the retriever needs besides the vectors, kept in step with the store.

The retriever ranks by BM25, links passages to the figures they cite, and
looks up each hit's doc and page. Building that from Chroma means reading
every record's text and re-tokenising it: 30 s on a store of 110k records,
on every process start. :class:`SearchState` holds it instead:

- a :class:`~multimodal_rag.keyword.BM25Index` over every text record;
- a :class:`RecordTable`: record id -> (doc, page, kind) for all records,
  while texts and full metadata stay in Chroma and are fetched for the few
  hits a query returns (so memory grows with the ids, not with the texts);
- the figure links by name per document (links never cross documents, so
  one document's links are computed from that document's records alone).

An embedded store persists it under ``<store>/search/gen-<G>/``, where ``G``
is the manifest's generation; ingest and remove update it per document and
write the new generation's folder (written aside, then renamed, so a folder
that exists is complete). Before a change touches Chroma, the current folder
is deleted: a crash then leaves no folder for the store's generation, and the
next reader rebuilds from Chroma rather than trusting stale state. A store on
a Chroma server has no folder of its own; its state is rebuilt on the client,
in memory, at the first query of each process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StoreError, StoreNotFoundError
from .keyword import BM25Index

if TYPE_CHECKING:
    from .storage import ChromaStore

__all__ = ["RecordTable", "SearchState", "place_of"]

logger = logging.getLogger(__name__)

FORMAT = 2  # 2: links by name only; page links are derived from the places
"""Bump when the files' meaning changes; an unreadable or older state is rebuilt."""
_RECORDS, _LINKS, _BM25 = "records.json", "links.json", "bm25.npz"
# Full records fetched for hits are kept this many at a time: a few queries' worth.
_CACHE_LIMIT = 4096

Record = tuple[str, dict[str, Any]]
Place = tuple[str, int, str]  # doc, page, kind


class RecordTable(Mapping[str, Record]):
    """Record id -> ``(text, metadata)``, with only (doc, page, kind) held in memory.

    Membership, iteration and :meth:`place` answer from memory; reading a
    record's text and full metadata fetches it from Chroma (batched by
    :meth:`fetch`, cached for a while).

    Args:
        store: The store the records live in.
        places: Record id -> (doc, page, kind), in record order.
    """

    def __init__(self, store: ChromaStore, places: dict[str, Place]) -> None:
        self._store = store
        self._places = places
        self._cache: dict[str, Record] = {}
        self._pages: dict[tuple[str, int], list[str]] | None = None

    def __getitem__(self, rid: str) -> Record:
        if rid not in self._places:
            raise KeyError(rid)
        if rid not in self._cache:
            self.fetch([rid])
        try:
            return self._cache[rid]
        except KeyError:
            raise KeyError(rid) from None  # deleted from Chroma since the state was read

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
        """Read the given records from Chroma in one call (those not cached yet)."""
        missing = [i for i in dict.fromkeys(ids) if i not in self._cache and i in self._places]
        if not missing:
            return
        if len(self._cache) + len(missing) > _CACHE_LIMIT:
            self._cache.clear()
        got_ids, texts, metas = self._store.text_records(missing)
        self._cache.update(zip(got_ids, zip(texts, metas, strict=True), strict=True))

    def on_page(self, doc: str, page: int, kind: str = "text") -> list[str]:
        """Ids of the records of one kind on a page, in record order."""
        if self._pages is None:
            pages: dict[tuple[str, int], list[str]] = {}
            for rid, (d, p, k) in self._places.items():
                if k == "text":
                    pages.setdefault((d, p), []).append(rid)
            self._pages = pages
        if kind != "text":
            return [r for r, (d, p, k) in self._places.items() if (d, p, k) == (doc, page, kind)]
        return list(self._pages.get((doc, page), []))


def place_of(meta: Mapping[str, Any]) -> Place:
    """A record's (doc, page, kind) from its metadata."""
    return str(meta.get("doc", "")), int(meta.get("page", 0) or 0), str(meta.get("kind", "text"))


class SearchState:
    """BM25, record places and figure links of a store, updated per document.

    Args:
        store: The store it describes.
        bm25: Keyword index over every text record.
        places: Record id -> (doc, page, kind), in record order.
        links: Doc -> (passage id -> figure ids it links to).

    Example:
        >>> from multimodal_rag.storage import ChromaStore
        >>> import chromadb
        >>> store = ChromaStore(chromadb.EphemeralClient(), location="memory", name="ss_ex")
        >>> state = SearchState.empty(store)
        >>> state.replace_document("a.pdf", {"a::p1::t0": ("See Figure 1.", {"doc": "a.pdf",
        ...     "page": 1, "kind": "text"}), "a::p2::f": ("Figure 1 pump", {"doc": "a.pdf",
        ...     "page": 2, "kind": "figure", "figure": "Figure 1"})})
        >>> state.links
        {'a::p1::t0': ['a::p2::f']}
    """

    def __init__(
        self,
        store: ChromaStore,
        bm25: BM25Index,
        places: dict[str, Place],
        links: dict[str, dict[str, list[str]]],
    ) -> None:
        self.store = store
        self.bm25 = bm25
        self._places = places
        self._doc_links = links
        self.records = RecordTable(store, places)
        self.links: dict[str, list[str]] = {}
        self._index_links()

    @classmethod
    def empty(cls, store: ChromaStore) -> SearchState:
        """The state of a store without records."""
        return cls(store, BM25Index(), {}, {})

    # -- building and updating --------------------------------------------------------------

    @classmethod
    def rebuild(cls, store: ChromaStore) -> SearchState:
        """Build the state from every text record in Chroma (the slow path)."""
        ids, texts, metas = store.all_text_records()
        per_doc: dict[str, dict[str, Record]] = {}
        for rid, text, meta in zip(ids, texts, metas, strict=True):
            per_doc.setdefault(str(meta.get("doc", "")), {})[rid] = (text, meta)
        del ids, texts, metas
        state = cls.empty(store)
        for doc, records in per_doc.items():
            state._add(doc, records)
        state._index_links()
        return state

    def replace_document(self, doc: str, records: Mapping[str, Record]) -> None:
        """Drop a document's records and links, then add ``records`` (its new ones)."""
        self._drop(doc)
        self._add(doc, records)
        self._index_links()

    def remove_document(self, doc: str) -> None:
        """Forget a document's records and links."""
        self._drop(doc)
        self._index_links()

    def _drop(self, doc: str) -> None:
        gone = [rid for rid, (d, _, _) in self._places.items() if d == doc]
        self.bm25.remove(gone)
        for rid in gone:
            del self._places[rid]
        self._doc_links.pop(doc, None)
        self.records = RecordTable(self.store, self._places)

    def _add(self, doc: str, records: Mapping[str, Record]) -> None:
        from .retrieval import figure_links

        if not records:
            return
        self.bm25.add(list(records), [text for text, _ in records.values()])
        self._places.update((rid, place_of(meta)) for rid, (_, meta) in records.items())
        # Links by name only (and uncaptioned figures by page): links to every figure
        # on a passage's page follow from the places, and the retriever adds them
        # when configured to (RetrieverConfig.link_pages).
        links = figure_links(records, pages=False)
        if links:
            self._doc_links[doc] = links
        self.records = RecordTable(self.store, self._places)

    def _index_links(self) -> None:
        self.links = {
            rid: figs for links in self._doc_links.values() for rid, figs in links.items()
        }

    @property
    def places(self) -> Mapping[str, Place]:
        """Record id -> (doc, page, kind) of every record, in record order."""
        return self._places

    # -- persistence --------------------------------------------------------------------------

    @staticmethod
    def folder(store: ChromaStore) -> Path | None:
        """Where an embedded store keeps its state; ``None`` for a server store."""
        return None if store.local_dir is None else store.local_dir / "search"

    @classmethod
    def load(cls, store: ChromaStore, generation: int) -> SearchState:
        """Read the state persisted for ``generation``.

        Raises:
            StoreNotFoundError: Nothing is persisted for that generation (or the
                store has no local folder).
            StoreError: The files are unreadable or of another format.
        """
        root = cls.folder(store)
        target = None if root is None else root / f"gen-{generation}"
        if target is None or not target.is_dir():
            raise StoreNotFoundError(
                f"no search state for generation {generation}", location=store.location
            )
        try:
            records = json.loads((target / _RECORDS).read_text(encoding="utf-8"))
            links = json.loads((target / _LINKS).read_text(encoding="utf-8"))
            if records.get("format") != FORMAT or records.get("generation") != generation:
                raise ValueError(f"format {records.get('format')}, gen {records.get('generation')}")
            docs: list[str] = records["docs"]
            places = {
                rid: (docs[d], int(p), "figure" if k else "text")
                for rid, d, p, k in zip(
                    records["ids"], records["doc"], records["page"], records["kind"], strict=True
                )
            }
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            raise StoreError(f"unreadable search state: {e}", location=target) from e
        bm25 = BM25Index.load(target / _BM25)
        if len(bm25) != len(places):
            raise StoreError("search state: keyword index and records differ", location=target)
        return cls(store, bm25, places, links["links"])

    def save(self, generation: int) -> None:
        """Write the state for ``generation`` and delete older ones (embedded stores only).

        Raises:
            StoreError: The files cannot be written.
        """
        root = self.folder(self.store)
        if root is None:
            return
        docs = sorted({d for d, _, _ in self._places.values()})
        code = {d: i for i, d in enumerate(docs)}
        records = {
            "format": FORMAT,
            "generation": generation,
            "docs": docs,
            "ids": list(self._places),
            "doc": [code[d] for d, _, _ in self._places.values()],
            "page": [p for _, p, _ in self._places.values()],
            "kind": [int(k == "figure") for _, _, k in self._places.values()],
        }
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
            try:
                (tmp / _RECORDS).write_text(json.dumps(records), encoding="utf-8")
                (tmp / _LINKS).write_text(
                    json.dumps({"format": FORMAT, "links": self._doc_links}), encoding="utf-8"
                )
                self.bm25.save(tmp / _BM25)
                target = root / f"gen-{generation}"
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError as e:
            raise StoreError(f"cannot write the search state: {e}", location=root) from e
        for old in root.glob("gen-*"):
            if old.name != f"gen-{generation}":
                shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def invalidate(cls, store: ChromaStore) -> None:
        """Delete every persisted generation: call before a change reaches Chroma."""
        root = cls.folder(store)
        if root is not None:
            for old in root.glob("gen-*"):
                shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def open(cls, store: ChromaStore, generation: int) -> SearchState:
        """The persisted state of ``generation``, or one rebuilt from Chroma (and saved)."""
        try:
            return cls.load(store, generation)
        except StoreNotFoundError:
            pass
        except StoreError as e:
            logger.warning("rebuilding the search state: %s", e)
        state = cls.rebuild(store)
        try:
            state.save(generation)
        except StoreError as e:
            # A read-only store still answers queries; it just rebuilds each time.
            logger.info("search state not saved: %s", e)
        return state
