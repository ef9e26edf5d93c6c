"""`MultiModalRetriever`: text and image queries over passages and figures, fused.

Candidate lists (each best first, each only when it applies):

========== ============================================================
list       what it ranks
========== ============================================================
text       passages and figure texts by the text embedder (query text)
keyword    passages and figure texts by BM25 (exact terms)
clip       figures by CLIP text-encoder similarity to the query text
image      figures by CLIP similarity to the query image
image_text passages on the pages of the figures the query image matches
linked     figures referred to by (or beside) the best text/keyword passages
========== ============================================================

A figure has one id in every list, so a figure found by its caption, its
labels and its pixels accumulates evidence as one item; ``unit_boost`` then
lets a figure and a passage on the same page lift each other.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle
from pydantic import BaseModel, ConfigDict, Field

from .errors import QueryError
from .fusion import (
    FusionMethod,
    fuse,
    lead_with_figures,
    lift_page_figures,
    propagate,
    spread_pages,
    unit_boost,
)
from .nodes import nodes_to_hits, record_to_node
from .query_intent import asks_for_exact_term, asks_for_visual
from .records import Hit
from .search_state import Place, RecordTable, place_of

if TYPE_CHECKING:
    from .index import MultimodalIndex
    from .keyword import BM25Index

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS: dict[str, float] = {
    "text": 1.0,
    "keyword": 0.5,
    "clip": 0.3,
    "image": 1.0,
    "image_text": 0.5,
    "linked": 0.3,
    "figure_text": 1.0,
}

VISUAL_WEIGHTS: dict[str, float] = {"linked": 0.8, "figure_text": 1.0}
"""Weights that replace :data:`DEFAULT_WEIGHTS` entries when a query asks for a picture."""

EXACT_WEIGHTS: dict[str, float] = {"keyword": 1.5}
"""Weights that replace :data:`DEFAULT_WEIGHTS` entries when a query names an exact term."""


class RetrieverConfig(BaseModel):
    """How many candidates each list contributes and how they are fused.

    Attributes:
        top_k: Results returned.
        candidates: Candidates taken from each list before fusion.
        fusion: ``"rrf"`` (reciprocal rank fusion) or ``"weighted"`` (min-max
            normalised scores, weighted sum).
        weights: Weight per list (text, keyword, clip, image, image_text).
        rrf_k: RRF damping constant.
        page_boost: How much items on the same page lift each other (0 = off).
        use_keyword: Include the BM25 list.
        use_figure_text: Keep figures' text vectors among the text candidates.
        separate_figure_text: Rank figure texts as their own list (as if in
            their own collection) instead of among the passages.
        use_links: Rank figures also by the passages that refer to them
            ("see Figure 2.3") or share their page.
        link_pages: Link captioned figures to the passages on their page, not
            only to those naming them (uncaptioned figures always are).
        figures_lead: Show a passage's own figure (one on its page, the best
            ranked first) directly before the passage.
        visual_intent: When the query asks for a picture ("photo of ...",
            "what does X look like", see
            :func:`~multimodal_rag.query_intent.asks_for_visual`), rank figure
            texts as their own list and fuse with ``visual_weights``.
        visual_weights: Weights replacing those in ``weights`` for such queries.
        exact_intent: When the query names something to match exactly (an
            option, file name, code or pin such as ``--force``, ``drbd.conf``,
            ``T19``; see :func:`~multimodal_rag.query_intent.asks_for_exact_term`),
            fuse with ``exact_weights``: BM25 matches such names, the text model
            blurs them.
        exact_weights: Weights replacing those in ``weights`` for such queries
            (applied after ``visual_weights`` when both apply).
        page_figures: Figures on one page lift each other to this share of
            the best one's score (``fusion.lift_page_figures``; 0 = off).
        page_spread: Passages of one page allowed in the top five before the
            others wait behind them (``fusion.spread_pages``; 0 = off).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    top_k: int = Field(default=10, ge=1, le=1000)
    candidates: int = Field(default=40, ge=1, le=5000)
    fusion: FusionMethod = "weighted"
    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    rrf_k: float = Field(default=60.0, ge=0)
    page_boost: float = Field(default=0.0, ge=0)
    use_keyword: bool = True
    use_figure_text: bool = True
    use_links: bool = True
    link_pages: bool = True
    separate_figure_text: bool = False
    figures_lead: bool = True
    visual_intent: bool = True
    visual_weights: dict[str, float] = Field(default_factory=lambda: dict(VISUAL_WEIGHTS))
    exact_intent: bool = True
    exact_weights: dict[str, float] = Field(default_factory=lambda: dict(EXACT_WEIGHTS))
    page_figures: float = Field(default=0.0, ge=0)
    page_spread: int = Field(default=1, ge=0)


class MultiModalRetriever(BaseRetriever):
    """Retrieve passages and figures for a text query, an image query, or both.

    Args:
        index: The :class:`~multimodal_rag.index.MultimodalIndex` to search.
        config: Candidate counts, fusion method and weights.

    Example:
        >>> retriever = index.as_retriever()                              # doctest: +SKIP
        >>> retriever.retrieve("which pin gives the sine wave?")[0].node  # doctest: +SKIP
        >>> retriever.search(image="photo_of_panel.jpg")                   # doctest: +SKIP
    """

    def __init__(self, index: MultimodalIndex, config: RetrieverConfig | None = None) -> None:
        super().__init__()
        self.index = index
        self.config = config or RetrieverConfig()
        self._records = RecordTable(index.store, {})
        self._bm25: BM25Index | None = None
        self._links: dict[str, list[str]] = {}
        self._own_figures: dict[str, list[str]] = {}
        self._generation = -1

    # -- cached views of the store ----------------------------------------------------------

    def _refresh(self) -> None:
        """Load the store's search state (BM25, record places, figure links) when it changed.

        An embedded store keeps that state on disk in step with ingest and remove
        (:mod:`multimodal_rag.search_state`); a server store's is rebuilt here.
        """
        manifest = self.index.store.manifest()
        generation = -1 if manifest is None else manifest.generation
        if generation == self._generation:
            return
        from .search_state import SearchState

        state = SearchState.open(self.index.store, generation)
        self._records = state.records
        self._bm25 = state.bm25
        self._links = (
            add_page_links(state.links, state.places) if self.config.link_pages else state.links
        )
        self._own_figures = own_figures(self._links, state.places)
        self._generation = generation

    # -- the lists --------------------------------------------------------------------------

    def _query_collection(
        self, collection: Any, vector: list[float], n: int, kind: str | None = None
    ) -> list[tuple[str, float]]:
        count = collection.count()
        if count == 0:
            return []
        with self.index.store._guard():
            got = collection.query(
                query_embeddings=[vector],
                n_results=min(n, count),
                include=["distances"],
                where={"kind": kind} if kind else None,
            )
        # Cosine distance -> similarity, so higher is better in every list.
        return [
            (i, 1.0 - float(d)) for i, d in zip(got["ids"][0], got["distances"][0], strict=True)
        ]

    def _visual(self, text: str | None) -> bool:
        return bool(text) and self.config.visual_intent and asks_for_visual(text or "")

    def _weights(self, text: str | None) -> dict[str, float]:
        cfg = self.config
        weights = dict(cfg.weights)
        if self._visual(text):
            weights.update(cfg.visual_weights)
        if text and cfg.exact_intent and asks_for_exact_term(text):
            weights.update(cfg.exact_weights)
        return weights

    def _lists(self, text: str | None, image: str | None) -> dict[str, list[tuple[str, float]]]:
        cfg = self.config
        store = self.index.store
        lists: dict[str, list[tuple[str, float]]] = {}
        if text:
            vector = self.index.text_embedder.get_query_embedding(text)
            # A query that asks for a picture gets a figure near the top from the figure
            # texts' own list; others let captions compete with passages in one list.
            separate = cfg.separate_figure_text or self._visual(text)
            if separate or not cfg.use_figure_text:
                lists["text"] = self._query_collection(store.text, vector, cfg.candidates, "text")
                if cfg.use_figure_text:
                    lists["figure_text"] = self._query_collection(
                        store.text, vector, cfg.candidates, "figure"
                    )
            else:
                lists["text"] = self._query_collection(store.text, vector, cfg.candidates)
            if cfg.use_keyword and self._bm25 is not None:
                lists["keyword"] = self._bm25.search(text, cfg.candidates)
            if cfg.use_links:
                passages = fuse(
                    cfg.fusion,
                    {n: lists[n] for n in ("text", "keyword") if n in lists},
                    cfg.weights,
                    rrf_k=cfg.rrf_k,
                )
                lists["linked"] = propagate(passages, self._links)
            if self.index.image_embedder is not None:
                clip_text = self.index.image_embedder.get_text_embedding(text)
                lists["clip"] = self._query_collection(store.image, clip_text, cfg.candidates)
        if image:
            if self.index.image_embedder is None:
                raise QueryError(
                    "this store has no image vectors (built with the offline profile or without "
                    "an image model), so it cannot answer image queries"
                )
            vector = self.index.image_embedder.get_image_embedding(image)
            matches = self._query_collection(store.image, vector, cfg.candidates)
            lists["image"] = matches
            lists["image_text"] = self._passages_near(matches)
        return lists

    def _passages_near(self, figures: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """Image→text: passages on the same page as the matched figures, in figure order."""
        out: list[tuple[str, float]] = []
        seen: set[str] = set()
        for fid, score in figures:
            doc, page, _ = self._records.place(fid) or ("", 0, "")
            for rid in self._records.on_page(doc, page):
                if rid not in seen:
                    seen.add(rid)
                    out.append((rid, score))
        return out

    # -- fusion -----------------------------------------------------------------------------

    def _fused(
        self, lists: Mapping[str, list[tuple[str, float]]], weights: Mapping[str, float]
    ) -> list[tuple[str, float]]:
        cfg = self.config
        fused = fuse(cfg.fusion, lists, weights, rrf_k=cfg.rrf_k)
        if cfg.page_boost:
            units = {
                rid: f"{place[0]}#{place[1]}"
                for rid, _ in fused
                if (place := self._records.place(rid)) is not None
            }
            fused = unit_boost(fused, units, cfg.page_boost)
        if cfg.page_figures:
            fused = lift_page_figures(fused, self._figure_page, self._figures_on, cfg.page_figures)
        if cfg.figures_lead:
            # Of several figures on a passage's page, the one this query ranks best leads.
            rank = {rid: i for i, (rid, _) in enumerate(fused)}
            own = {
                rid: sorted(figs, key=lambda f: rank.get(f, len(rank)))
                for rid, _ in fused
                if (figs := self._own_figures.get(rid))
            }
            fused = lead_with_figures(fused, own)
        if cfg.page_spread:
            fused = spread_pages(fused, self._page, per_page=cfg.page_spread, keep=self._is_figure)
        return fused

    def _page(self, rid: str) -> tuple[str, int] | None:
        place = self._records.place(rid)
        return None if place is None else (place[0], place[1])

    def _figure_page(self, rid: str) -> tuple[str, int] | None:
        place = self._records.place(rid)
        return None if place is None or place[2] != "figure" else (place[0], place[1])

    def _is_figure(self, rid: str) -> bool:
        place = self._records.place(rid)
        return place is not None and place[2] == "figure"

    def _figures_on(self, doc: str, page: int) -> list[str]:
        return self._records.on_page(doc, page, "figure")

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Read-only use of the bundle: LlamaIndex's own multimodal retriever overwrites
        # query_bundle.embedding with a CLIP vector, which breaks callers that reuse it.
        text = (query_bundle.query_str or "").strip()
        image = query_bundle.image_path
        if not text and not image:
            raise QueryError("the query is empty: give a text, an image, or both")
        if image and not Path(image).is_file():
            raise QueryError(f"query image {image} does not exist or is not a file")
        self._refresh()
        fused = self._fused(self._lists(text or None, image), self._weights(text or None))
        nodes: list[NodeWithScore] = []
        self._records.fetch([rid for rid, _ in fused[: self.config.top_k]])
        for rid, score in fused[: self.config.top_k]:
            record = self._records.get(rid)
            if record is None:
                continue  # deleted between refresh and query; harmless to drop
            nodes.append(NodeWithScore(node=self._node(rid, *record), score=score))
        return nodes

    def _node(self, rid: str, text: str, meta: dict[str, Any]) -> Any:
        if meta.get("kind") == "figure" and meta.get("image_path"):
            path = Path(str(meta["image_path"]))
            if not path.exists():
                meta = {
                    **meta,
                    "image_path": str(self.index.store.figure_file(str(meta["doc"]), path.name)),
                }
        return record_to_node(rid, text, meta)

    def search(self, text: str | None = None, *, image: str | Path | None = None) -> list[Hit]:
        """Convenience: retrieve and return :class:`Hit` objects (CLI JSON shape).

        Args:
            text: The question, or ``None`` for an image-only query.
            image: Path of a query image (needs a store with CLIP vectors).

        Raises:
            QueryError: Empty query, missing image, or image query on a text-only store.
        """
        bundle = QueryBundle(query_str=text or "", image_path=str(image) if image else None)
        return nodes_to_hits(self.retrieve(bundle))


# "Figure 2.3", "Fig. 2.3", "figure 2.3"; the number stops before a further digit,
# so "Figure 2.31" never mentions Figure 2.3.
_MENTION = re.compile(r"\bfig(?:ure|\.)?\s*(\d+(?:[.\-]\d+)*[a-z]?)(?!\d)", re.IGNORECASE)
_LABEL_NUMBER = re.compile(r"(\d+(?:[.\-]\d+)*[a-z]?)\s*$", re.IGNORECASE)


def figure_links(
    records: Mapping[str, tuple[str, Mapping[str, Any]]], *, pages: bool = True
) -> dict[str, list[str]]:
    """Link passages to figures: passages that name a figure's label, and the
    passages printed on the same page as a figure (captioned or not).

    A page's text is the best description of its figures that the store
    already holds: on the dev manuals the page of a paraphrased figure question
    often ranks in the top five while the caption alone does not (docs/fusion.md),
    so every figure inherits evidence from the passages beside it.

    Each passage is scanned once for figure mentions, so the cost grows with
    the text, not with passages times figures.

    Args:
        records: Record id -> (text, metadata) for passages and figure texts.
        pages: Link captioned figures to their page's passages too; ``False``
            keeps page links for uncaptioned figures only (they have no label
            to be named by).

    Returns:
        Passage id -> ids of the figures it links to: those it names first, then
        the others on its page, in record order, each once.
    """
    places = {rid: place_of(meta) for rid, (_, meta) in records.items()}
    labelled: dict[tuple[str, str], list[str]] = {}  # (doc, number) -> figure ids
    for rid, (_, meta) in records.items():
        doc, _, kind = places[rid]
        found = _LABEL_NUMBER.search(str(meta.get("figure") or "")) if kind == "figure" else None
        if found is not None:
            labelled.setdefault((doc, found.group(1).lower()), []).append(rid)
    links: dict[str, list[str]] = {}
    for rid, (text, _) in records.items():
        doc, _, kind = places[rid]
        if kind == "text":
            named = [
                fid
                for number in dict.fromkeys(m.group(1).lower() for m in _MENTION.finditer(text))
                for fid in labelled.get((doc, number), [])
            ]
            if named:
                links[rid] = named
    captioned = {fid for fids in labelled.values() for fid in fids}
    # An uncaptioned figure is linked through its page whatever ``pages`` says.
    return add_page_links(links, places, skip=set() if pages else captioned)


def add_page_links(
    links: Mapping[str, Sequence[str]],
    places: Mapping[str, Place],
    *,
    skip: Collection[str] = (),
) -> dict[str, list[str]]:
    """Extend passage -> figure links with the figures printed on each passage's page.

    Args:
        links: Passage id -> figure ids it already links to (kept first, in order).
        places: Record id -> (doc, page, kind) of every passage and figure.
        skip: Figures not to link by page.

    Returns:
        The extended links, each figure once per passage, page figures in record order.

    Example:
        >>> add_page_links({"p1": ["f9"]}, {"p1": ("m", 1, "text"), "f1": ("m", 1, "figure")})
        {'p1': ['f9', 'f1']}
    """
    on_page: dict[tuple[str, int], list[str]] = {}
    for rid, (doc, page, kind) in places.items():
        if kind == "figure" and rid not in skip:
            on_page.setdefault((doc, page), []).append(rid)
    out = {rid: list(figs) for rid, figs in links.items()}
    for rid, (doc, page, kind) in places.items():
        if kind == "text" and (beside := on_page.get((doc, page))):
            out[rid] = list(dict.fromkeys([*out.get(rid, []), *beside]))
    return out


def own_figures(
    links: Mapping[str, Sequence[str]], places: Mapping[str, Place]
) -> dict[str, list[str]]:
    """For each passage, the figures it links to that are printed on its own page."""
    own: dict[str, list[str]] = {}
    for rid, figs in links.items():
        where = places.get(rid, ("", 0, ""))[:2]
        if same := [f for f in figs if places.get(f, ("", -1, ""))[:2] == where]:
            own[rid] = same
    return own
