"""Fusion of ranked lists into one ranking: small pure functions, tested alone.

Scores from BGE/MiniLM, CLIP and BM25 live on different scales, so they are
never compared raw. Two strategies are offered:

- :func:`reciprocal_rank_fusion` uses ranks only.
- :func:`weighted_fusion` min-max normalises each list's scores to [0, 1] and
  takes a weighted sum (a convex combination when the weights sum to 1).

Fusion is only more than interleaving when lists share items. The retriever
makes that so: a figure has the same id in the text collection (its caption
and labels) and in the image collection (its pixels), and
:func:`unit_boost` lets a passage and a figure on the same page lift each other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Literal

Ranked = Sequence[tuple[str, float]]
"""Item ids with scores, best first."""

FusionMethod = Literal["rrf", "weighted"]
FUSION_METHODS: tuple[FusionMethod, ...] = ("rrf", "weighted")


def _sorted(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    # Ties broken by id so that rankings are deterministic.
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def reciprocal_rank_fusion(
    lists: Mapping[str, Ranked], weights: Mapping[str, float], k: float = 60.0
) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion: ``sum_l w_l / (k + rank_l(item))``.

    Args:
        lists: Named ranked lists (best first).
        weights: Weight per list name; a list without a weight counts 1.0.
        k: Damping constant; larger values flatten the head of each list.

    Returns:
        Fused ranking, best first.

    Example:
        >>> reciprocal_rank_fusion({"a": [("x", 9.0), ("y", 1.0)], "b": [("y", 0.5)]}, {}, k=0)
        [('y', 1.5), ('x', 1.0)]
    """
    scores: dict[str, float] = defaultdict(float)
    for name, ranked in lists.items():
        weight = weights.get(name, 1.0)
        for rank, (item, _) in enumerate(ranked, start=1):
            scores[item] += weight / (k + rank)
    return _sorted(scores)


def min_max(ranked: Ranked) -> list[tuple[str, float]]:
    """Scale a list's scores to [0, 1]; a list whose scores are all equal maps to 1.

    Example:
        >>> min_max([("x", 3.0), ("y", 1.0), ("z", 2.0)])
        [('x', 1.0), ('y', 0.0), ('z', 0.5)]
    """
    if not ranked:
        return []
    values = [s for _, s in ranked]
    low, high = min(values), max(values)
    if high == low:
        return [(item, 1.0) for item, _ in ranked]
    return [(item, (s - low) / (high - low)) for item, s in ranked]


def weighted_fusion(
    lists: Mapping[str, Ranked], weights: Mapping[str, float]
) -> list[tuple[str, float]]:
    """Weighted sum of min-max normalised scores; items missing from a list get 0 there.

    Args:
        lists: Named ranked lists with their raw scores.
        weights: Weight per list name; a list without a weight counts 1.0.

    Returns:
        Fused ranking, best first.

    Example:
        >>> weighted_fusion({"a": [("x", 0.9), ("y", 0.1)], "b": [("y", 7.0), ("x", 5.0)]},
        ...                 {"a": 0.75, "b": 0.25})
        [('x', 0.75), ('y', 0.25)]
    """
    scores: dict[str, float] = defaultdict(float)
    for name, ranked in lists.items():
        weight = weights.get(name, 1.0)
        for item, score in min_max(ranked):
            scores[item] += weight * score
    return _sorted(scores)


def fuse(
    method: FusionMethod,
    lists: Mapping[str, Ranked],
    weights: Mapping[str, float],
    rrf_k: float = 60.0,
) -> list[tuple[str, float]]:
    """Dispatch to the chosen fusion strategy.

    Raises:
        ValueError: For an unknown method; the message lists the valid ones.
    """
    if method == "rrf":
        return reciprocal_rank_fusion(lists, weights, k=rrf_k)
    if method == "weighted":
        return weighted_fusion(lists, weights)
    raise ValueError(
        f"unknown fusion method {method!r}; choose one of: {', '.join(FUSION_METHODS)}"
    )


def unit_boost(
    fused: Ranked, unit_of: Mapping[str, str], strength: float
) -> list[tuple[str, float]]:
    """Let items that share a unit (e.g. a page) lift each other.

    Each item gains ``strength`` times the best score among the *other* items
    of its unit, so a figure on the page of a strongly matching passage rises,
    and vice versa. Items without a unit are unchanged.

    Args:
        fused: A fused ranking.
        unit_of: Unit key per item id (e.g. ``"manual.pdf#12"``).
        strength: 0 disables the boost.

    Returns:
        The re-scored ranking, best first.

    Example:
        >>> unit_boost([("a", 1.0), ("b", 0.5), ("c", 0.6)], {"a": "p1", "b": "p1"}, 0.5)
        [('a', 1.25), ('b', 1.0), ('c', 0.6)]
    """
    if strength == 0:
        return list(fused)
    best: dict[str, list[float]] = defaultdict(list)
    for item, score in fused:
        unit = unit_of.get(item)
        if unit is not None:
            best[unit].append(score)
    top_two = {unit: sorted(scores, reverse=True)[:2] for unit, scores in best.items()}
    boosted: dict[str, float] = {}
    for item, score in fused:
        unit = unit_of.get(item)
        if unit is None:
            boosted[item] = score
            continue
        head = top_two[unit]
        if score < head[0]:
            other = head[0]
        else:  # this item is the unit's best: its partner is the runner-up, if any
            other = head[1] if len(head) > 1 else 0.0
        boosted[item] = score + strength * other
    return _sorted(boosted)


def propagate(ranked: Ranked, links: Mapping[str, Sequence[str]]) -> list[tuple[str, float]]:
    """Derive a ranked list of linked items from a ranked list of sources.

    Each linked item takes the score of the best-ranked source that links to
    it. The retriever uses it to rank figures by the passages that refer to
    them (a passage quoting "Figure 2.3" or sitting beside an uncaptioned
    figure), so a figure the text model misses is still found through its
    passage.

    Args:
        ranked: Sources, best first.
        links: For each source id, the ids it links to.

    Returns:
        Linked items, best first, each once.

    Example:
        >>> propagate([("p1", 0.9), ("p2", 0.5)], {"p1": ["fig"], "p2": ["fig", "fig2"]})
        [('fig', 0.9), ('fig2', 0.5)]
    """
    out: dict[str, float] = {}
    for source, score in ranked:
        for item in links.get(source, ()):
            if item not in out:
                out[item] = score
    return list(out.items())


def lead_with_figures(
    fused: Ranked, figures_of: Mapping[str, Sequence[str]], per_item: int = 1
) -> list[tuple[str, float]]:
    """Put a passage's own figure directly before it, as one unit.

    A figure and the passage printed beside it on the same page answer the
    same question and cite the same page; showing the figure first serves
    "show me the diagram of ..." questions without costing page questions a
    rank. A figure already ranked higher keeps its place.

    Args:
        fused: A fused ranking, best first.
        figures_of: For each passage id, the figures on its page that it
            captions or sits beside, best first.
        per_item: How many figures may lead one passage.

    Returns:
        The re-ordered ranking; a lifted figure takes its passage's score.

    Example:
        >>> lead_with_figures([("p1", 0.9), ("x", 0.5), ("f1", 0.2)], {"p1": ["f1"]})
        [('f1', 0.9), ('p1', 0.9), ('x', 0.5)]
    """
    placed: set[str] = set()
    out: list[tuple[str, float]] = []
    for item, score in fused:
        if item in placed:
            continue
        for figure in list(figures_of.get(item, ()))[:per_item]:
            if figure not in placed:
                placed.add(figure)
                out.append((figure, score))
        placed.add(item)
        out.append((item, score))
    return out


def score_ceiling(
    method: FusionMethod,
    lists: Mapping[str, Ranked],
    weights: Mapping[str, float],
    rrf_k: float = 60.0,
) -> float:
    """The fused score of an item ranked first in every non-empty list (the best possible).

    Example:
        >>> score_ceiling("weighted", {"a": [("x", 1.0)], "b": [], "c": [("y", 2.0)]},
        ...               {"a": 0.5, "c": 1.0})
        1.5
    """
    total = sum(weights.get(name, 1.0) for name, ranked in lists.items() if ranked)
    return total / (rrf_k + 1.0) if method == "rrf" else total


def bounded_scores(ranked: Ranked, ceiling: float) -> list[tuple[str, float]]:
    """Scores in [0, 1] that never rise down the ranking: ``min(score / ceiling, 1)``,
    capped by the score of the item above (an item moved up keeps the order honest).

    Example:
        >>> bounded_scores([("a", 1.2), ("f", 0.3), ("b", 0.9)], 1.5)
        [('a', 0.8), ('f', 0.2), ('b', 0.2)]
    """
    out: list[tuple[str, float]] = []
    cap = 1.0
    for item, score in ranked:
        value = min(max(score / ceiling, 0.0), cap) if ceiling > 0 else 0.0
        cap = value
        out.append((item, round(value, 6)))
    return out
