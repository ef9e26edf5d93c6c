"""Retriever settings: candidate counts, fusion and the weights per candidate list."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..fusion import FusionMethod

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

EXACT_WEIGHTS: dict[str, float] = {"keyword": 1.0}
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
