"""Retrieval evaluation: question files, metrics, runs, reports and paired image–caption tests.

Example:
    >>> from multimodal_rag.evaluation import evaluate, load_questions, write_report
    >>> questions = load_questions("dev-qa.jsonl")               # doctest: +SKIP
    >>> result = evaluate(questions, index.as_retriever(), k=10)  # doctest: +SKIP
    >>> write_report(result, "report/")                           # doctest: +SKIP

Importing this package does not import LlamaIndex or matplotlib; they load
when a retriever is evaluated or a chart is drawn.
"""

from __future__ import annotations

from .metrics import (
    METRICS,
    average_precision,
    hit_rate,
    match_gains,
    mean_metrics,
    ndcg,
    precision,
    query_metrics,
    recall,
    reciprocal_rank,
)
from .paired import CaptionPair, PairedResult, RankScores, evaluate_paired, load_captions
from .questions import QUESTION_KINDS, Question, QuestionKind, Target, load_questions
from .report import (
    comparison_chart,
    comparison_table,
    markdown_table,
    write_chart,
    write_report,
)
from .runner import EvalResult, QueryResult, Search, evaluate

__all__ = [
    "METRICS",
    "QUESTION_KINDS",
    "CaptionPair",
    "EvalResult",
    "PairedResult",
    "QueryResult",
    "Question",
    "QuestionKind",
    "RankScores",
    "Search",
    "Target",
    "average_precision",
    "comparison_chart",
    "comparison_table",
    "evaluate",
    "evaluate_paired",
    "hit_rate",
    "load_captions",
    "load_questions",
    "markdown_table",
    "match_gains",
    "mean_metrics",
    "ndcg",
    "precision",
    "query_metrics",
    "recall",
    "reciprocal_rank",
    "write_chart",
    "write_report",
]
