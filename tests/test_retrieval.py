from __future__ import annotations

from multimodal_rag.retrieval import figure_links


def _rec(kind: str, page: int, figure: str = "") -> dict[str, object]:
    return {"doc": "m.pdf", "page": page, "kind": kind, "figure": figure}


def test_figure_links_follow_label_mentions_and_uncaptioned_pages() -> None:
    records = {
        "cap": ("Figure 2.3: the lemon cell. See also Fig. 2.31.", _rec("text", 5)),
        "ref": ("as shown in figure 2.3, the voltage drops", _rec("text", 9)),
        "near": ("Connect the resistor between CS and GND.", _rec("text", 7)),
        "other": ("Figure 2.31 shows the oscillator", _rec("text", 11)),
        "f23": ("Figure 2.3 the lemon cell", _rec("figure", 5, "Figure 2.3")),
        "f231": ("Figure 2.31 oscillator", _rec("figure", 11, "Figure 2.31")),
        "sketch": ("figure", _rec("figure", 7)),
    }
    links = figure_links(records)
    assert links["cap"] == ["f23", "f231"]
    assert links["ref"] == ["f23"]  # "figure 2.3," is a mention of 2.3 only
    assert links["other"] == ["f231"]  # "2.31" does not mention 2.3
    assert links["near"] == ["sketch"]  # an uncaptioned figure goes with its page
    assert "f23" not in links  # figures never link
