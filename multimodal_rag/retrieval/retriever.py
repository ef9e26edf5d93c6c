"""`MultiModalRetriever`: text and image queries over passages and figures, fused.

Candidate lists (each best first, each only when it applies):

=========== ============================================================
list        what it ranks
=========== ============================================================
text        passages and figure texts by the text embedder (query text)
figure_text figure texts alone (picture-asking queries), from the figure space
keyword     passages and figure texts by BM25 (exact terms)
clip        figures by CLIP text-encoder similarity to the query text
image       figures by CLIP similarity to the query image
image_text  passages on the pages of the figures the query image matches
linked      figures referred to by (or beside) the best text/keyword passages
=========== ============================================================

A figure has one id in every list, so a figure found by its caption, its
labels and its pixels accumulates evidence as one item; ``unit_boost`` then
lets a figure and a passage on the same page lift each other.

The retriever is *given* its collaborators — a :class:`~multimodal_rag.store.Store`,
the embedders and a :class:`~multimodal_rag.search.state.StateSource` — so every
list and the fusion can be tested on a :class:`~multimodal_rag.store.MemoryStore`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from ..errors import QueryError
from ..fusion import bounded_scores, fuse, lead_with_figures, propagate, score_ceiling, unit_boost
from ..nodes import nodes_to_hits, record_to_node
from ..query_intent import asks_for_exact_term, asks_for_visual
from ..records import Hit
from ..search.links import add_page_links, own_figures
from ..search.state import SearchState, StateSource
from ..store.base import Space, StoreBase
from .config import RetrieverConfig
from .filters import PLACE_KEYS, keys_of, matches

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.vector_stores.types import MetadataFilters

logger = logging.getLogger(__name__)

# A passage-only list over-fetches from the mixed text space and drops figure texts.
_OVERFETCH = 2
# Widening rounds (x4 each) when uncommitted or other-kind records crowd a kNN answer.
_WIDEN_ROUNDS = 4


class MultiModalRetriever(BaseRetriever):
    """Retrieve passages and figures for a text query, an image query, or both.

    Args:
        store: Where the vectors and records are.
        text_embedder: The embedder the store's text space was built with.
        image_embedder: The store's image embedder, or ``None`` (figures by text only).
        state: The source of the store's search state; shared by retrievers of one
            index so it is read once (default: a new one).
        config: Candidate counts, fusion method and weights.
        filters: LlamaIndex ``MetadataFilters`` on ``doc``, ``kind``, ``page``,
            ``section``, ``figure`` (any key of the records' metadata). Filters on
            ``doc``/``page``/``kind`` alone narrow every candidate list (kNN queries
            widen until enough records pass); others are applied to the fused list.
        node_postprocessors: LlamaIndex postprocessors (rerankers, cutoffs) applied
            to the fused nodes, in order.
        callback_manager: LlamaIndex callbacks (RETRIEVE events).

    Scores: ``NodeWithScore.score`` is in [0, 1] and never rises down the ranking:
    the fused score divided by the best score possible for this query (an item
    ranked first in every candidate list), so a cut-off such as
    ``SimilarityPostprocessor(similarity_cutoff=0.3)`` keeps items that are at
    least 30% of a perfect match, whatever lists the query used.

    Example:
        >>> retriever = index.as_retriever()                              # doctest: +SKIP
        >>> retriever.retrieve("which pin gives the sine wave?")[0].node  # doctest: +SKIP
        >>> retriever.search(image="photo_of_panel.jpg")                   # doctest: +SKIP
    """

    def __init__(
        self,
        store: StoreBase,
        text_embedder: BaseEmbedding,
        *,
        image_embedder: MultiModalEmbedding | None = None,
        state: StateSource | None = None,
        config: RetrieverConfig | None = None,
        filters: MetadataFilters | None = None,
        node_postprocessors: Sequence[BaseNodePostprocessor] | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self.store = store
        self.text_embedder = text_embedder
        self.image_embedder = image_embedder
        self.state = state or StateSource(store)
        self.config = config or RetrieverConfig()
        self.filters = filters
        self.node_postprocessors = list(node_postprocessors or [])
        self._place_filter = filters is not None and keys_of(filters) <= PLACE_KEYS
        self._view: tuple[SearchState, dict[str, list[str]], dict[str, list[str]]] | None = None

    # -- the search state -------------------------------------------------------------------

    def _current(self) -> tuple[SearchState | None, dict[str, list[str]], dict[str, list[str]]]:
        """The state of the store's generation, with links (page links added) and own figures."""
        state = self.state.current()
        if state is None:
            return None, {}, {}
        if self._view is None or self._view[0] is not state:
            links = (
                add_page_links(state.links, state.places) if self.config.link_pages else state.links
            )
            self._view = (state, links, own_figures(links, state.places))
        return self._view

    # -- the lists --------------------------------------------------------------------------

    def _query(
        self, state: SearchState, space: Space, vector: list[float], n: int, kind: str | None = None
    ) -> list[tuple[str, float]]:
        """The ``n`` nearest committed records of a space (``kind``: passages or figures only).

        Records of no committed version (a document being written, or left by a
        writer that died) are dropped, and the query is widened until ``n`` committed
        ones are found or the space has no more: a reader during a write ranks
        exactly as before it.
        """
        catalog = self.state.catalog
        counts = catalog.counts() if catalog is not None else {}
        available = counts.get(space, 0)
        if kind == "text" and space == "text":
            available -= counts.get("figure", 0)
        want = min(n, available)
        if want <= 0:
            return []
        places = state.places
        fetch = want * _OVERFETCH if kind or self._place_filter else want
        for _ in range(_WIDEN_ROUNDS):
            got = self.store.query(space, vector, fetch)
            out = [
                (rid, sim)
                for rid, sim in got
                if (place := places.get(rid)) is not None
                and (kind is None or place[2] == kind)
                and self._passes(place)
            ]
            if len(out) >= want or len(got) < fetch:
                break
            fetch *= 4
        return out[:want]

    def _passes(self, place: tuple[str, int, str]) -> bool:
        """Whether a record passes filters that its place alone decides."""
        if not self._place_filter or self.filters is None:
            return True
        return matches(self.filters, {"doc": place[0], "page": place[1], "kind": place[2]})

    def _filtered(
        self, state: SearchState, ranked: list[tuple[str, float]]
    ) -> list[tuple[str, float]]:
        if not self._place_filter:
            return ranked
        return [(r, s) for r, s in ranked if (p := state.places.get(r)) and self._passes(p)]

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

    def _lists(
        self, state: SearchState, links: dict[str, list[str]], text: str | None, image: str | None
    ) -> dict[str, list[tuple[str, float]]]:
        cfg = self.config
        n = cfg.candidates
        lists: dict[str, list[tuple[str, float]]] = {}
        if text:
            vector = self.text_embedder.get_query_embedding(text)
            # A query that asks for a picture gets a figure near the top from the figure
            # texts' own list; others let captions compete with passages in one list.
            separate = cfg.separate_figure_text or self._visual(text)
            if separate or not cfg.use_figure_text:
                lists["text"] = self._query(state, "text", vector, n, kind="text")
                if cfg.use_figure_text:
                    lists["figure_text"] = self._query(state, "figure", vector, n)
            else:
                lists["text"] = self._query(state, "text", vector, n)
            if cfg.use_keyword:
                wide = n * 8 if self._place_filter else n
                lists["keyword"] = self._filtered(state, state.bm25.search(text, wide))[:n]
            if cfg.use_links:
                passages = fuse(
                    cfg.fusion,
                    {name: lists[name] for name in ("text", "keyword") if name in lists},
                    cfg.weights,
                    rrf_k=cfg.rrf_k,
                )
                lists["linked"] = self._filtered(state, propagate(passages, links))
            if self.image_embedder is not None:
                clip_text = self.image_embedder.get_text_embedding(text)
                lists["clip"] = self._query(state, "image", clip_text, n)
        if image:
            if self.image_embedder is None:
                raise QueryError(
                    "this store has no image vectors (built with the offline profile or without "
                    "an image model), so it cannot answer image queries"
                )
            vector = self.image_embedder.get_image_embedding(image)
            found = self._query(state, "image", vector, n)
            lists["image"] = found
            lists["image_text"] = self._filtered(state, _passages_near(state, found))
        return lists

    # -- fusion -----------------------------------------------------------------------------

    def _fused(
        self,
        state: SearchState,
        own: Mapping[str, list[str]],
        lists: Mapping[str, list[tuple[str, float]]],
        weights: Mapping[str, float],
    ) -> list[tuple[str, float]]:
        cfg = self.config
        fused = fuse(cfg.fusion, lists, weights, rrf_k=cfg.rrf_k)
        if cfg.page_boost:
            units = {
                rid: f"{place[0]}#{place[1]}"
                for rid, _ in fused
                if (place := state.places.get(rid)) is not None
            }
            fused = unit_boost(fused, units, cfg.page_boost)
        if cfg.figures_lead:
            # Of several figures on a passage's page, the one this query ranks best leads.
            rank = {rid: i for i, (rid, _) in enumerate(fused)}
            leads = {
                rid: sorted(figs, key=lambda f: rank.get(f, len(rank)))
                for rid, _ in fused
                if (figs := own.get(rid))
            }
            fused = lead_with_figures(fused, leads)
        return fused

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Read-only use of the bundle: LlamaIndex's own multimodal retriever overwrites
        # query_bundle.embedding with a CLIP vector, which breaks callers that reuse it.
        text = (query_bundle.query_str or "").strip()
        image = query_bundle.image_path
        if not text and not image:
            raise QueryError("the query is empty: give a text, an image, or both")
        if image and not Path(image).is_file():
            raise QueryError(f"query image {image} does not exist or is not a file")
        state, links, own = self._current()
        if state is None:
            return []
        lists = self._lists(state, links, text or None, image)
        weights = self._weights(text or None)
        fused = self._fused(state, own, lists, weights)
        cfg = self.config
        scored = bounded_scores(fused, score_ceiling(cfg.fusion, lists, weights, cfg.rrf_k))
        nodes = self._top_nodes(state, scored)
        for postprocessor in self.node_postprocessors:
            nodes = postprocessor.postprocess_nodes(nodes, query_bundle=query_bundle)
        return nodes

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Embedding, kNN and BM25 block; a worker thread keeps the event loop free.
        return await asyncio.to_thread(self._retrieve, query_bundle)

    def _top_nodes(
        self, state: SearchState, scored: list[tuple[str, float]]
    ) -> list[NodeWithScore]:
        """The first ``top_k`` records of the ranking that exist (and pass any filter)."""
        top_k = self.config.top_k
        post = self.filters if self.filters is not None and not self._place_filter else None
        nodes: list[NodeWithScore] = []
        batch = top_k if post is None else max(top_k, 50)
        for start in range(0, len(scored), batch):
            chunk = scored[start : start + batch]
            state.records.fetch([rid for rid, _ in chunk])
            for rid, score in chunk:
                record = state.records.get(rid)
                if record is None:
                    continue  # deleted between refresh and query; harmless to drop
                if post is not None and not matches(post, record[1]):
                    continue
                nodes.append(NodeWithScore(node=self._node(state, rid, *record), score=score))
                if len(nodes) == top_k:
                    return nodes
        return nodes

    def _node(self, state: SearchState, rid: str, text: str, meta: dict[str, Any]) -> Any:
        if meta.get("kind") == "figure" and meta.get("image_path"):
            path = Path(str(meta["image_path"]))
            if not path.exists():
                doc = str(meta.get("doc", ""))
                got = self.store.figure_file(doc, state.versions.get(doc, ""), path.name)
                if isinstance(got, bytes):  # no writable cache: the PNG travels in the node
                    node = record_to_node(rid, text, {**meta, "image_path": ""})
                    node.image = base64.b64encode(got).decode("ascii")  # type: ignore[attr-defined]
                    return node
                meta = {**meta, "image_path": str(got)}
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


def _passages_near(state: SearchState, figures: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Image→text: passages on the same page as the matched figures, in figure order."""
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    for fid, score in figures:
        doc, page, _ = state.places.get(fid) or ("", 0, "")
        for rid in state.records.on_page(doc, page):
            if rid not in seen:
                seen.add(rid)
                out.append((rid, score))
    return out
