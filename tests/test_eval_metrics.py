"""Matching rule and metrics, checked by hand and against ir_measures (pytrec_eval, offline).

How the once-per-target rule maps onto a trec run: every hit becomes its own
document id; it is relevant in the qrels iff it is the first match of a target
(gain 1). Targets that no hit finds become relevant qrels documents that never
appear in the run, so trec_eval's number of relevant documents is the number of
targets. Each run scores hits strictly decreasing, so trec_eval's sort keeps our order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

import ir_measures
import pytest
from ir_measures import AP, RR, P, R, Success, nDCG

from multimodal_rag.evaluation import (
    METRICS,
    Question,
    Target,
    evaluate,
    match_gains,
    query_metrics,
)
from multimodal_rag.records import Hit

K_VALUES = (1, 3, 5, 10)


def _text(doc: str, page: int) -> Hit:
    return Hit(0, "text", doc, page, None, None, "passage", None, 0.0)


def _figure(doc: str, page: int, label: str | None) -> Hit:
    return Hit(0, "figure", doc, page, label, None, "caption", "f.png", 0.0)


def _measures(k: int) -> dict[str, ir_measures.Measure]:
    return {
        "mrr": RR @ k,
        "recall": R @ k,
        "ndcg": nDCG @ k,
        "map": AP @ k,
        "precision": P @ k,
        "hit_rate": Success @ k,
    }


def _reference(
    runs: Mapping[str, tuple[Sequence[int], int]], k: int
) -> dict[str, dict[str, float]]:
    """Per-query metrics from ir_measures for gain vectors mapped to a qrels/run pair."""
    qrels, run = [], []
    for qid, (gains, n_targets) in runs.items():
        for i, gain in enumerate(gains):
            run.append(ir_measures.ScoredDoc(qid, f"hit{i}", float(len(gains) - i)))
            qrels.append(ir_measures.Qrel(qid, f"hit{i}", int(gain)))
        for j in range(n_targets - sum(gains)):
            qrels.append(ir_measures.Qrel(qid, f"unfound{j}", 1))
    measures = _measures(k)
    by_measure = {m: name for name, m in measures.items()}
    out: dict[str, dict[str, float]] = {qid: {} for qid in runs}
    # pytrec_eval has no cut-off for recip_rank (ir_measures would silently compute the
    # uncut value), so RR@k comes from ir_measures' own MS MARCO implementation.
    evaluators = [
        ir_measures.pytrec_eval.evaluator([m for m in measures.values() if m != RR @ k], qrels),
        ir_measures.msmarco.evaluator([RR @ k], qrels),
    ]
    for evaluator in evaluators:
        for metric in evaluator.iter_calc(run):
            out[metric.query_id][by_measure[metric.measure]] = metric.value
    # ir_measures reports queries that retrieved nothing too (as 0), so nothing is missing.
    assert all(set(values) == set(METRICS) for values in out.values())
    return out


def _random_gains(rng: random.Random) -> tuple[list[int], int]:
    n_targets = rng.randint(1, 6)
    length = rng.randint(0, 15)
    gains = [0] * length
    found = rng.randint(0, min(n_targets, length))
    for slot in rng.sample(range(length), found):
        gains[slot] = 1
    return gains, n_targets


@pytest.mark.parametrize("k", K_VALUES)
def test_metrics_equal_trec_eval_on_random_gain_vectors(k: int) -> None:
    rng = random.Random(k)
    runs = {f"q{i}": _random_gains(rng) for i in range(300)}
    reference = _reference(runs, k)
    for qid, (gains, n_targets) in runs.items():
        ours = query_metrics(gains, n_targets, k)
        for name in METRICS:
            assert ours[name] == pytest.approx(reference[qid][name], abs=1e-9), (qid, name)


def _random_hit(rng: random.Random) -> Hit:
    doc, page = rng.choice(["a.pdf", "b.pdf"]), rng.randint(1, 4)
    if rng.random() < 0.5:
        return _text(doc, page)
    label = rng.choice([None, "Figure 1", "Fig. 1", "figure 2", "Figure 3"])
    return _figure(doc, page, label)


def _random_targets(rng: random.Random) -> tuple[Target, ...]:
    pool = [Target(d, page=p) for d in ("a.pdf", "b.pdf") for p in range(1, 5)] + [
        Target(d, figure=f) for d in ("a.pdf", "b.pdf") for f in ("Figure 1", "Figure 2")
    ]
    return tuple(rng.sample(pool, rng.randint(1, 4)))


@pytest.mark.parametrize("k", K_VALUES)
def test_evaluate_means_equal_trec_eval_over_random_runs(k: int) -> None:
    rng = random.Random(100 + k)
    questions, rankings = [], {}
    for i in range(200):
        kind = rng.choice(["figure", "page", "keyword"])
        question = Question(f"q{i}", "query", kind, _random_targets(rng))  # type: ignore[arg-type]
        questions.append(question)
        rankings[question.id] = [_random_hit(rng) for _ in range(rng.randint(0, 2 * k))]
    result = evaluate(questions, lambda q: rankings[q.id], k=k)

    runs = {}
    for q in questions:
        gains = match_gains(rankings[q.id][:k], q.relevant)
        assert sum(gains) <= len(q.relevant)
        runs[q.id] = (gains, len(q.relevant))
    reference = _reference(runs, k)
    for group in ("all", "figure", "page", "keyword"):
        members = [q.id for q in questions if group in ("all", q.kind)]
        for name in METRICS:
            expected = sum(reference[qid][name] for qid in members) / len(members)
            assert result.metrics[group][name] == pytest.approx(expected, abs=1e-9)
    assert any(result.metrics["all"][name] > 0 for name in METRICS)


def test_a_target_counts_once() -> None:
    hits = [_text("a.pdf", 3), _text("a.pdf", 3), _figure("a.pdf", 3, None), _text("a.pdf", 4)]
    assert match_gains(hits, [Target("a.pdf", page=3), Target("a.pdf", page=4)]) == [1, 0, 0, 1]


def test_page_targets_match_text_and_figures_of_that_doc_and_page() -> None:
    target = [Target("a.pdf", page=3)]
    assert match_gains([_figure("a.pdf", 3, "Figure 9")], target) == [1]
    assert match_gains([_text("a.pdf", 3)], target) == [1]
    assert match_gains([_text("b.pdf", 3), _text("a.pdf", 2)], target) == [0, 0]


def test_figure_targets_match_only_figures_with_an_equal_label() -> None:
    target = [Target("a.pdf", figure="Fig. 2.3")]
    assert match_gains([_figure("a.pdf", 7, "FIGURE 2.3")], target) == [1]
    assert match_gains([_figure("a.pdf", 7, "Figure  2.3:")], target) == [1]
    assert match_gains([_figure("b.pdf", 7, "Figure 2.3")], target) == [0]
    assert match_gains([_figure("a.pdf", 7, "Figure 2.30")], target) == [0]
    assert match_gains([_figure("a.pdf", 7, None)], target) == [0]
    # A passage that quotes the label is not the figure.
    quoting = Hit(0, "text", "a.pdf", 7, "Figure 2.3", None, "see Figure 2.3", None, 0.0)
    assert match_gains([quoting], target) == [0]


def test_a_hit_matching_a_figure_and_its_page_is_credited_with_the_figure() -> None:
    # Page first in the file: the figure target still wins, the page stays open.
    targets = [Target("a.pdf", page=5), Target("a.pdf", figure="Figure 1")]
    figure_on_page = _figure("a.pdf", 5, "Figure 1")
    assert match_gains([figure_on_page, _text("a.pdf", 5)], targets) == [1, 1]
    assert match_gains([figure_on_page], targets) == [1]
    metrics = query_metrics([1], 2, 10)
    assert metrics["recall"] == 0.5
    # Once the figure is found, the same figure again can still find the page.
    assert match_gains([figure_on_page, figure_on_page, figure_on_page], targets) == [1, 1, 0]


def test_hand_computed_metrics() -> None:
    # Targets found at ranks 2 and 4 out of 3 targets, k = 5.
    m = query_metrics([0, 1, 0, 1, 0], 3, 5)
    assert m["mrr"] == 0.5
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 5)
    assert m["hit_rate"] == 1.0
    assert m["map"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)


def test_edge_cases() -> None:
    # No hits at all, and hits without any target.
    for gains in ([], [0, 0, 0]):
        assert query_metrics(gains, 2, 10) == dict.fromkeys(METRICS, 0.0)
    # Fewer hits than k: precision still divides by k (trec_eval P@k).
    assert query_metrics([1], 1, 10)["precision"] == 0.1
    assert query_metrics([1], 1, 10)["ndcg"] == 1.0
    # Hits past k do not count.
    assert query_metrics([0, 0, 1], 1, 2)["mrr"] == 0.0
    # More targets than k: the ideal DCG has only k ones, so a perfect top k scores 1.
    assert query_metrics([1, 1], 5, 2)["ndcg"] == pytest.approx(1.0)
    assert query_metrics([1, 1], 5, 2)["map"] == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="at least 1"):
        query_metrics([1], 1, 0)
