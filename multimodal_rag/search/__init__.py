"""What the retriever needs besides vectors: BM25, record places and figure links.

Per-document :class:`~multimodal_rag.search.segment.Segment` blobs are written
with each document; :class:`~multimodal_rag.search.state.StateSource` merges
and caches them for readers.
"""

from __future__ import annotations

from .links import Place, add_page_links, figure_links, own_figures, place_of
from .segment import Segment
from .state import RecordTable, SearchState, StateSource

__all__ = [
    "Place",
    "RecordTable",
    "SearchState",
    "Segment",
    "StateSource",
    "add_page_links",
    "figure_links",
    "own_figures",
    "place_of",
]
