from __future__ import annotations

import pytest

from multimodal_rag.fusion import (
    fuse,
    lead_with_figures,
    min_max,
    propagate,
    reciprocal_rank_fusion,
    unit_boost,
    weighted_fusion,
)


def test_rrf_rewards_items_found_by_several_lists() -> None:
    lists = {
        "text": [("a", 0.9), ("b", 0.8), ("c", 0.7)],
        "image": [("c", 0.3), ("d", 0.2)],
    }
    fused = reciprocal_rank_fusion(lists, {}, k=60)
    assert fused[0][0] == "c"  # third in one list, first in the other
    assert fused[0][1] == pytest.approx(1 / 63 + 1 / 61)
    assert [item for item, _ in fused] == ["c", "a", "b", "d"]


def test_rrf_weights_scale_each_list() -> None:
    lists = {"text": [("a", 1.0)], "image": [("b", 1.0)]}
    assert reciprocal_rank_fusion(lists, {"image": 2.0})[0][0] == "b"
    assert reciprocal_rank_fusion(lists, {"text": 2.0})[0][0] == "a"


def test_rrf_ignores_raw_score_scales() -> None:
    # CLIP-like tiny scores must not lose to BM25-like large ones just by scale.
    lists = {"bm25": [("a", 30.0), ("b", 29.0)], "clip": [("b", 0.31), ("a", 0.30)]}
    fused = dict(reciprocal_rank_fusion(lists, {}))
    assert fused["a"] == pytest.approx(fused["b"])


def test_min_max_handles_constant_and_empty_lists() -> None:
    assert min_max([]) == []
    assert min_max([("a", 2.0), ("b", 2.0)]) == [("a", 1.0), ("b", 1.0)]


def test_weighted_fusion_is_a_convex_combination() -> None:
    lists = {"text": [("a", 0.9), ("b", 0.5), ("c", 0.1)], "kw": [("c", 12.0), ("a", 2.0)]}
    fused = dict(weighted_fusion(lists, {"text": 0.7, "kw": 0.3}))
    assert fused["a"] == pytest.approx(0.7 * 1.0 + 0.3 * 0.0)
    assert fused["b"] == pytest.approx(0.7 * 0.5)
    assert fused["c"] == pytest.approx(0.7 * 0.0 + 0.3 * 1.0)
    assert all(0.0 <= v <= 1.0 for v in fused.values())


def test_fusion_is_deterministic_on_ties() -> None:
    lists = {"x": [("b", 1.0)], "y": [("a", 1.0)]}
    assert [i for i, _ in reciprocal_rank_fusion(lists, {})] == ["a", "b"]


def test_fuse_rejects_unknown_method_listing_valid_ones() -> None:
    with pytest.raises(ValueError, match="rrf, weighted"):
        fuse("borda", {}, {})  # type: ignore[arg-type]


def test_unit_boost_lifts_items_sharing_a_page() -> None:
    fused = [("passage", 1.0), ("other", 0.55), ("figure", 0.5)]
    boosted = unit_boost(
        fused, {"passage": "m.pdf#3", "figure": "m.pdf#3", "other": "m.pdf#9"}, 0.2
    )
    scores = dict(boosted)
    assert scores["figure"] == pytest.approx(0.5 + 0.2 * 1.0)
    assert scores["passage"] == pytest.approx(1.0 + 0.2 * 0.5)
    assert scores["other"] == pytest.approx(0.55)  # alone on its page
    assert [i for i, _ in boosted] == ["passage", "figure", "other"]


def test_unit_boost_zero_strength_is_identity() -> None:
    fused = [("a", 1.0), ("b", 0.5)]
    assert unit_boost(fused, {"a": "u", "b": "u"}, 0.0) == fused


def test_propagate_ranks_linked_items_by_their_best_source() -> None:
    ranked = [("p1", 0.9), ("p2", 0.7), ("p3", 0.2)]
    links = {"p2": ["fig-a", "fig-b"], "p3": ["fig-a", "fig-c"]}
    assert propagate(ranked, links) == [("fig-a", 0.7), ("fig-b", 0.7), ("fig-c", 0.2)]
    assert propagate(ranked, {}) == []


def test_lead_with_figures_puts_a_passage_figure_first_once() -> None:
    fused = [("p1", 0.9), ("p2", 0.8), ("f2", 0.5), ("f1", 0.1)]
    out = lead_with_figures(fused, {"p1": ["f1"], "p2": ["f1", "f2"]})
    # f1 leads p1; p2's first figure is already placed and per_item=1 stops there;
    # f2 keeps its own place.
    assert out == [("f1", 0.9), ("p1", 0.9), ("p2", 0.8), ("f2", 0.5)]


def test_lead_with_figures_keeps_a_figure_that_already_ranks_higher() -> None:
    fused = [("f1", 1.0), ("p1", 0.9)]
    assert lead_with_figures(fused, {"p1": ["f1"]}) == fused


def test_spread_pages_lets_a_second_page_into_the_top() -> None:
    from multimodal_rag.fusion import spread_pages

    pages = {"a1": ("m", 1), "a2": ("m", 1), "a3": ("m", 1), "f1": ("m", 1), "b": ("m", 2)}
    fused = [("f1", 1.0), ("a1", 0.9), ("a2", 0.8), ("a3", 0.7), ("b", 0.6), ("c", 0.5)]
    out = spread_pages(fused, pages.get, window=3, per_page=1, keep=lambda i: i == "f1")
    # f1 is kept and counts for page 1, so a1 (page 1's second item) waits; b and c
    # (no page) fill the window; the held items follow it in their old order.
    assert [i for i, _ in out] == ["f1", "b", "c", "a1", "a2", "a3"]
    scores = [s for _, s in out]
    assert scores == sorted(scores, reverse=True)
    assert spread_pages(fused, pages.get, per_page=0) == fused


def test_spread_pages_keeps_everything_when_pages_differ() -> None:
    from multimodal_rag.fusion import spread_pages

    pages = {"a": ("m", 1), "b": ("m", 2), "c": ("n", 1)}
    fused = [("a", 0.9), ("b", 0.8), ("c", 0.7)]
    assert spread_pages(fused, pages.get, window=5) == fused


def test_lift_page_figures_raises_and_adds_page_neighbours() -> None:
    from multimodal_rag.fusion import lift_page_figures

    figure_pages = {"strip": ("m", 4), "photo": ("m", 9)}
    on_page = {("m", 4): ["strip", "captioned"], ("m", 9): ["photo"]}
    fused = [("passage", 1.0), ("strip", 0.8), ("other", 0.5), ("captioned", 0.1)]
    out = lift_page_figures(fused, figure_pages.get, lambda d, p: on_page[(d, p)], 0.9)
    assert [i for i, _ in out] == ["passage", "strip", "captioned", "other"]
    assert dict(out)["captioned"] == pytest.approx(0.72)
    assert lift_page_figures(fused, figure_pages.get, lambda d, p: on_page[(d, p)], 0) == fused
