"""Matching hits to targets, and ranking metrics as pure functions of binary gains.

The matching rule (DESIGN.md "Evaluation data format"):

* a hit matches ``{doc, page}`` when it has that doc and page (a passage or a figure);
* a hit matches ``{doc, figure}`` when it is a figure of that doc whose label
  equals the target's (see :func:`~multimodal_rag.evaluation.questions.normalise_label`);
* a target counts once: a later hit that matches only already-found targets has gain 0;
* **one hit finds at most one target.** When a hit matches several targets not
  yet found (a figure that is the target figure *and* lies on a target page), it
  is credited with the figure target (the more specific one; among equals, the
  first in file order), and the page target stays open for a later hit. This
  keeps every hit's gain 0 or 1, so the metrics below are exactly the standard
  trec_eval measures over a run in which each hit is one document (the tests
  check this against ``ir_measures``).

The metrics follow trec_eval (``recip_rank``, ``recall``, ``ndcg_cut``,
``map_cut``, ``P``, success) cut at ``k``; ``n_targets`` is the number of
relevant targets of the question, found or not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ..records import Hit
from .questions import Target, normalise_label

__all__ = [
    "METRICS",
    "average_precision",
    "hit_rate",
    "match_gains",
    "mean_metrics",
    "ndcg",
    "precision",
    "query_metrics",
    "recall",
    "reciprocal_rank",
]

METRICS: tuple[str, ...] = ("mrr", "recall", "ndcg", "map", "precision", "hit_rate")
"""Metric names, in the order reports print them."""


def _matches(hit: Hit, target: Target) -> bool:
    if hit.doc != target.doc:
        return False
    if target.figure is not None:
        return (
            hit.kind == "figure"
            and hit.figure is not None
            and normalise_label(hit.figure) == normalise_label(target.figure)
        )
    return hit.page == target.page


def match_gains(hits: Sequence[Hit], targets: Sequence[Target]) -> list[int]:
    """Binary gain of each hit, in rank order, under the once-per-target rule.

    Args:
        hits: The ranking, best first.
        targets: The question's relevant targets.

    Returns:
        One 0/1 gain per hit; the sum is the number of targets found.

    Example:
        >>> hit = Hit(1, "text", "a.pdf", 3, None, None, "...", None, 1.0)
        >>> match_gains([hit, hit], [Target("a.pdf", page=3)])
        [1, 0]
    """
    found = [False] * len(targets)
    gains: list[int] = []
    for hit in hits:
        open_matches = [i for i, t in enumerate(targets) if not found[i] and _matches(hit, t)]
        if not open_matches:
            gains.append(0)
            continue
        # Prefer a figure target: the page it lies on may still be found by a passage.
        best = min(open_matches, key=lambda i: (targets[i].figure is None, i))
        found[best] = True
        gains.append(1)
    return gains


def reciprocal_rank(gains: Sequence[int], k: int) -> float:
    """MRR@k of one query: 1/rank of the first gain within the top ``k``, else 0."""
    for rank, gain in enumerate(gains[:k], start=1):
        if gain:
            return 1.0 / rank
    return 0.0


def recall(gains: Sequence[int], n_targets: int, k: int) -> float:
    """Recall@k: fraction of the ``n_targets`` targets found in the top ``k``."""
    return sum(gains[:k]) / n_targets if n_targets else 0.0


def precision(gains: Sequence[int], k: int) -> float:
    """Precision@k: targets found in the top ``k``, divided by ``k`` (even if fewer hits)."""
    return sum(gains[:k]) / k


def hit_rate(gains: Sequence[int], k: int) -> float:
    """1.0 when any target is found in the top ``k``, else 0.0 (trec_eval ``success``)."""
    return 1.0 if any(gains[:k]) else 0.0


def ndcg(gains: Sequence[int], n_targets: int, k: int) -> float:
    """nDCG@k with binary gains and a log2(rank + 1) discount.

    The ideal ranking puts ``min(k, n_targets)`` found targets first.
    """
    dcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(gains[:k], start=1))
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, n_targets) + 1))
    return dcg / ideal if ideal else 0.0


def average_precision(gains: Sequence[int], n_targets: int, k: int) -> float:
    """AP@k (trec_eval ``map_cut``): mean of precision at each found target's rank.

    Normalised by ``n_targets`` (all targets, not ``min(k, n_targets)``), as trec_eval does.
    """
    total, found = 0.0, 0
    for rank, gain in enumerate(gains[:k], start=1):
        if gain:
            found += 1
            total += found / rank
    return total / n_targets if n_targets else 0.0


def query_metrics(gains: Sequence[int], n_targets: int, k: int) -> dict[str, float]:
    """All metrics of one query at ``k``, keyed as in :data:`METRICS`.

    Raises:
        ValueError: ``k`` is below 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return {
        "mrr": reciprocal_rank(gains, k),
        "recall": recall(gains, n_targets, k),
        "ndcg": ndcg(gains, n_targets, k),
        "map": average_precision(gains, n_targets, k),
        "precision": precision(gains, k),
        "hit_rate": hit_rate(gains, k),
    }


def mean_metrics(per_query: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Arithmetic mean of each metric over queries (0.0 for every metric when empty)."""
    if not per_query:
        return dict.fromkeys(METRICS, 0.0)
    return {name: sum(m[name] for m in per_query) / len(per_query) for name in METRICS}
