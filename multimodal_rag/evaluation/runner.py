"""Run questions through a search function or a LlamaIndex retriever and score the rankings."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Union

from ..errors import QueryError
from ..records import Hit
from .metrics import match_gains, mean_metrics, query_metrics
from .questions import QUESTION_KINDS, Question

if TYPE_CHECKING:
    from llama_index.core.base.base_retriever import BaseRetriever

__all__ = ["EvalResult", "QueryResult", "Search", "evaluate"]

logger = logging.getLogger(__name__)

Search = Union[Callable[[Question], Sequence[Hit]], "BaseRetriever"]
"""What :func:`evaluate` queries: a function from a question to ranked hits, or any
LlamaIndex retriever (its nodes become hits through :func:`multimodal_rag.nodes.nodes_to_hits`)."""


@dataclass(frozen=True)
class QueryResult:
    """One question's ranking and scores.

    Attributes:
        question: The question asked.
        hits: The top ``k`` hits, best first, ``rank`` renumbered 1..k.
        gains: 0/1 per hit under the once-per-target rule.
        metrics: The question's metrics at ``k`` (keys as in ``METRICS``).
    """

    question: Question
    hits: tuple[Hit, ...]
    gains: tuple[int, ...]
    metrics: dict[str, float]

    @property
    def found(self) -> int:
        """Number of the question's targets found in the top ``k``."""
        return sum(self.gains)


@dataclass(frozen=True)
class EvalResult:
    """Metrics of a run over a question set.

    Attributes:
        k: The cut-off every metric uses.
        queries: Per-question results, in question order.
        metrics: Mean metrics under ``"all"`` and under each question kind present.
    """

    k: int
    queries: tuple[QueryResult, ...]
    metrics: dict[str, dict[str, float]]

    def counts(self) -> dict[str, int]:
        """Number of questions behind each group of :attr:`metrics`."""
        out = {"all": len(self.queries)}
        for kind in self.metrics:
            if kind != "all":
                out[kind] = sum(1 for q in self.queries if q.question.kind == kind)
        return out

    def to_json(self) -> dict[str, object]:
        """The ``mmrag eval --json`` document: metrics per group and each query's hits."""
        return {
            "metrics": {group: dict(values) for group, values in self.metrics.items()},
            "queries": [
                {"id": q.question.id, "hits": [hit.to_json() for hit in q.hits]}
                for q in self.queries
            ],
        }


def aggregate(queries: Sequence[QueryResult]) -> dict[str, dict[str, float]]:
    """Mean metrics overall (``"all"``) and per question kind (in ``QUESTION_KINDS`` order)."""
    groups = {"all": mean_metrics([q.metrics for q in queries])}
    for kind in QUESTION_KINDS:
        members = [q.metrics for q in queries if q.question.kind == kind]
        if members:
            groups[kind] = mean_metrics(members)
    return groups


def _search_fn(search: Search) -> Callable[[Question], Sequence[Hit]]:
    # Imported here so that loading questions or reports does not pull in LlamaIndex.
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.schema import QueryBundle

    from ..nodes import nodes_to_hits

    if isinstance(search, BaseRetriever):
        retriever = search

        def run(question: Question) -> Sequence[Hit]:
            bundle = QueryBundle(
                query_str=question.query,
                image_path=str(question.image) if question.image else None,
            )
            return nodes_to_hits(retriever.retrieve(bundle))

        return run
    return search


def _progress(questions: Sequence[Question], show: bool) -> Iterable[Question]:
    if not show:
        return questions
    from tqdm import tqdm

    bar: Iterable[Question] = tqdm(questions, desc="evaluating", unit="question", file=sys.stderr)
    return bar


def evaluate(
    questions: Sequence[Question],
    search: Search,
    k: int = 10,
    *,
    progress: bool = False,
) -> EvalResult:
    """Ask every question, keep the top ``k`` hits, and score them.

    Args:
        questions: From :func:`~multimodal_rag.evaluation.load_questions`.
        search: A function ``(Question) -> Sequence[Hit]`` (best first), or a
            LlamaIndex ``BaseRetriever``, asked with a ``QueryBundle`` holding the
            query text and, for image questions, ``image_path``.
        k: Cut-off of the ranking and of every metric.
        progress: Show a progress bar on stderr.

    Returns:
        Per-question hits and metrics, and their means overall and per kind.

    Raises:
        ValueError: ``k`` is below 1.
        QueryError: The search could not answer a question (the message names it).

    Example:
        >>> result = evaluate(load_questions("qa.jsonl"), index.as_retriever())  # doctest: +SKIP
        >>> result.metrics["all"]["mrr"]                                          # doctest: +SKIP
        0.62
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    ask = _search_fn(search)
    results: list[QueryResult] = []
    for question in _progress(questions, progress):
        try:
            ranked = tuple(ask(question))[:k]
        except QueryError as e:
            raise QueryError(f"question {question.id!r}: {e}") from e
        # The report prints ranks; make them the positions the metrics were computed on.
        hits = tuple(
            h if h.rank == i else replace(h, rank=i) for i, h in enumerate(ranked, start=1)
        )
        gains = match_gains(hits, question.relevant)
        metrics = query_metrics(gains, len(question.relevant), k)
        logger.debug("question %s: %s", question.id, metrics)
        results.append(QueryResult(question, hits, tuple(gains), metrics))
    return EvalResult(k=k, queries=tuple(results), metrics=aggregate(results))
