"""evaluate(): callables and LlamaIndex retrievers in, per-query hits and grouped metrics out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from multimodal_rag.errors import QueryError
from multimodal_rag.evaluation import METRICS, Question, Target, evaluate, load_questions
from multimodal_rag.nodes import chunk_to_node, figure_to_node
from multimodal_rag.records import Figure, Hit, TextChunk


def _hit(doc: str, page: int, figure: str | None = None, rank: int = 0) -> Hit:
    kind = "figure" if figure else "text"
    return Hit(rank, kind, doc, page, figure, None, "text", None, 1.0)  # type: ignore[arg-type]


QUESTIONS = [
    Question("f1", "wiring", "figure", (Target("a.pdf", figure="Figure 1"),)),
    Question("p1", "calibrate", "page", (Target("a.pdf", page=2), Target("a.pdf", page=9))),
    Question("p2", "reset", "page", (Target("b.pdf", page=1),)),
]
RANKINGS = {
    "f1": [_hit("a.pdf", 4), _hit("a.pdf", 3, "Fig. 1")],  # found at rank 2
    "p1": [_hit("a.pdf", 2), _hit("a.pdf", 2), _hit("a.pdf", 5)],  # one of two, rank 1
    "p2": [],  # nothing retrieved
}


def test_metrics_per_query_per_kind_and_overall() -> None:
    result = evaluate(QUESTIONS, lambda q: RANKINGS[q.id], k=10)
    by_id = {q.question.id: q for q in result.queries}
    assert by_id["f1"].gains == (0, 1)
    assert by_id["f1"].metrics["mrr"] == 0.5
    assert by_id["p1"].gains == (1, 0, 0)
    assert by_id["p1"].found == 1
    assert by_id["p1"].metrics["recall"] == 0.5
    assert by_id["p2"].metrics == dict.fromkeys(METRICS, 0.0)
    assert list(result.metrics) == ["all", "figure", "page"]
    assert result.metrics["figure"]["mrr"] == 0.5
    assert result.metrics["page"]["mrr"] == 0.5
    assert result.metrics["all"]["mrr"] == pytest.approx(0.5)
    assert result.metrics["all"]["recall"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert result.counts() == {"all": 3, "figure": 1, "page": 2}


def test_hits_are_cut_at_k_before_scoring() -> None:
    result = evaluate(QUESTIONS, lambda q: RANKINGS[q.id], k=1)
    by_id = {q.question.id: q for q in result.queries}
    assert len(by_id["f1"].hits) == 1
    assert by_id["f1"].metrics["hit_rate"] == 0.0
    assert by_id["p1"].metrics["precision"] == 1.0
    with pytest.raises(ValueError, match="at least 1"):
        evaluate(QUESTIONS, lambda q: RANKINGS[q.id], k=0)


def test_to_json_has_exactly_the_cli_shape() -> None:
    document: dict[str, Any] = evaluate(QUESTIONS, lambda q: RANKINGS[q.id], k=5).to_json()
    assert set(document) == {"metrics", "queries"}
    assert set(document["metrics"]) == {"all", "figure", "page"}
    for values in document["metrics"].values():
        assert list(values) == ["mrr", "recall", "ndcg", "map", "precision", "hit_rate"]
    queries = document["queries"]
    assert [q["id"] for q in queries] == ["f1", "p1", "p2"]
    assert all(set(q) == {"id", "hits"} for q in queries)
    # Hits print as the CLI prints them, ranked by position (the search gave rank 0).
    assert queries[0]["hits"][1] == {**RANKINGS["f1"][1].to_json(), "rank": 2}
    assert [h["rank"] for h in queries[1]["hits"]] == [1, 2, 3]
    json.dumps(document)  # serialisable as is


class _Retriever(BaseRetriever):
    """Answers from a fixed table of nodes per query text; records the bundles it saw."""

    def __init__(self, table: dict[str, list[NodeWithScore]]) -> None:
        super().__init__()
        self.table = table
        self.bundles: list[QueryBundle] = []

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        self.bundles.append(query_bundle)
        if query_bundle.query_str not in self.table:
            raise QueryError("no such query")
        return self.table[query_bundle.query_str]


def _figure_node(doc: str, page: int, label: str) -> NodeWithScore:
    figure = Figure(doc, page, (0, 0, 10, 10), "raster", b"png", label=label, caption="c")
    return NodeWithScore(node=figure_to_node(figure, "fig.png"), score=0.9)


def _chunk_node(doc: str, page: int) -> NodeWithScore:
    return NodeWithScore(node=chunk_to_node(TextChunk(doc, page, None, "text")), score=0.5)


def test_a_llamaindex_retriever_is_evaluated_through_its_nodes() -> None:
    retriever = _Retriever(
        {
            "wiring": [_chunk_node("a.pdf", 3), _figure_node("a.pdf", 3, "Figure 1")],
            "calibrate": [_chunk_node("a.pdf", 9), _chunk_node("a.pdf", 2)],
            "reset": [NodeWithScore(node=TextNode(text="foreign node"), score=None)],
        }
    )
    result = evaluate(QUESTIONS, retriever, k=10)
    by_id = {q.question.id: q for q in result.queries}
    assert by_id["f1"].gains == (0, 1)
    assert by_id["f1"].hits[1].kind == "figure"
    assert by_id["f1"].hits[1].rank == 2
    assert by_id["p1"].metrics["recall"] == 1.0
    assert by_id["p2"].gains == (0,)  # a node without our metadata is a miss, not a crash
    assert [b.query_str for b in retriever.bundles] == ["wiring", "calibrate", "reset"]
    assert all(b.image_path is None for b in retriever.bundles)


def test_image_questions_pass_the_image_path_to_the_retriever(tmp_path: Path) -> None:
    (tmp_path / "q.png").write_bytes(b"x")
    line = {
        "id": "i1",
        "query": "",
        "kind": "figure",
        "image": "q.png",
        "relevant": [{"doc": "a.pdf", "figure": "Figure 1"}],
    }
    (tmp_path / "qa.jsonl").write_text(json.dumps(line) + "\n")
    retriever = _Retriever({"": [_figure_node("a.pdf", 3, "Figure 1")]})
    result = evaluate(load_questions(tmp_path / "qa.jsonl"), retriever)
    assert retriever.bundles[0].image_path == str((tmp_path / "q.png").resolve())
    assert result.metrics["all"]["mrr"] == 1.0


def test_a_query_error_names_the_question() -> None:
    retriever = _Retriever({"wiring": []})
    with pytest.raises(QueryError, match="question 'p1': no such query"):
        evaluate(QUESTIONS, retriever)


def test_progress_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    def search(question: Question) -> Sequence[Hit]:
        return RANKINGS[question.id]

    evaluate(QUESTIONS, search, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "3/3" in captured.err
    evaluate(QUESTIONS, search)
    assert capsys.readouterr().err == ""
