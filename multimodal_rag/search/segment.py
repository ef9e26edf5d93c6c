"""A document version's share of the search state, written beside its records.

A :class:`Segment` holds, for one version of one document, what the
retriever needs besides the vectors: its records' places (doc, page, kind),
a BM25 index over its texts, and its figure links. The writer builds it from
the records it has in hand and stores it as one blob; readers merge the
segments of the catalog's documents (:mod:`multimodal_rag.search.state`). So
ingesting or removing a document costs what that document costs, never what
the store holds.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import StoreError
from ..keyword import BM25Index
from .links import Place, figure_links, place_of

FORMAT = 1
"""Bump when a segment's meaning changes; readers rebuild segments of other formats."""


@dataclass
class Segment:
    """One document version's records, keyword index and links.

    Attributes:
        doc: The document.
        version: Its version (the suffix of its record ids).
        places: Record id -> (doc, page, kind), in record order.
        bm25: Keyword index over the records' texts.
        links: Passage id -> figure ids it names (page links are derived later).
    """

    doc: str
    version: str
    places: dict[str, Place]
    bm25: BM25Index
    links: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, doc: str, version: str, records: Mapping[str, tuple[str, Mapping[str, Any]]]
    ) -> Segment:
        """The segment of a document's records: ``id -> (text, metadata)``.

        Example:
            >>> seg = Segment.build("a.pdf", "v1", {
            ...     "t@v1": ("See Figure 1.", {"doc": "a.pdf", "page": 1, "kind": "text"}),
            ...     "f@v1": ("Figure 1 pump", {"doc": "a.pdf", "page": 2, "kind": "figure",
            ...                               "figure": "Figure 1"})})
            >>> seg.links, seg.places["f@v1"]
            ({'t@v1': ['f@v1']}, ('a.pdf', 2, 'figure'))
        """
        bm25 = BM25Index()
        bm25.add(list(records), [text for text, _ in records.values()])
        return cls(
            doc=doc,
            version=version,
            places={rid: place_of(meta) for rid, (_, meta) in records.items()},
            bm25=bm25,
            links=figure_links(records, pages=False),
        )

    def to_bytes(self) -> bytes:
        """The segment as one compressed blob."""
        ids = list(self.places)
        meta = {
            "format": FORMAT,
            "doc": self.doc,
            "version": self.version,
            "ids": ids,
            "pages": [self.places[r][1] for r in ids],
            "figure": [int(self.places[r][2] == "figure") for r in ids],
            "links": self.links,
        }
        out = io.BytesIO()
        np.savez_compressed(
            out,
            meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), np.uint8),
            bm25=np.frombuffer(self.bm25.to_bytes(), np.uint8),
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, location: str) -> tuple[Segment | None, SegmentHeader]:
        """Read a segment; its keyword index is ``None``-able (see :class:`SegmentHeader`).

        Returns:
            The segment, or ``None`` when only its header could be read (a
            keyword index of another tokenizer version: rebuild it from the
            records the header names), and the header.

        Raises:
            StoreError: The blob is not a segment.
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes())
                bm25_bytes = z["bm25"].tobytes()
            if meta.get("format") != FORMAT:
                raise ValueError(f"segment format {meta.get('format')}")
            doc, version = str(meta["doc"]), str(meta["version"])
            header = SegmentHeader(
                doc=doc,
                version=version,
                places={
                    rid: (doc, int(page), "figure" if fig else "text")
                    for rid, page, fig in zip(
                        meta["ids"], meta["pages"], meta["figure"], strict=True
                    )
                },
                links={str(k): [str(f) for f in v] for k, v in meta["links"].items()},
            )
        except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
            raise StoreError(f"unreadable search segment: {e}", location=location) from e
        try:
            bm25 = BM25Index.from_bytes(bm25_bytes, source=location)
        except StoreError:
            return None, header
        if len(bm25) != len(header.places):
            return None, header
        return cls(header.doc, header.version, header.places, bm25, header.links), header


@dataclass
class SegmentHeader:
    """A segment without its keyword index (enough to rebuild one)."""

    doc: str
    version: str
    places: dict[str, Place]
    links: dict[str, list[str]]
