"""Reports: JSON file, markdown tables, PNG charts."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest
from PIL import Image

from multimodal_rag.evaluation import (
    EvalResult,
    Question,
    Target,
    comparison_chart,
    comparison_table,
    evaluate,
    markdown_table,
    write_report,
)
from multimodal_rag.records import Hit

QUESTIONS = [
    Question("f1", "wiring", "figure", (Target("a.pdf", figure="Figure 1"),)),
    Question("p1", "calibrate", "page", (Target("a.pdf", page=2),)),
    Question("p2", "reset", "page", (Target("a.pdf", page=7),)),
]


def _hit(page: int, figure: str | None = None) -> Hit:
    kind = "figure" if figure else "text"
    return Hit(1, kind, "a.pdf", page, figure, None, "t", None, 0.5)  # type: ignore[arg-type]


def _result(k: int = 10, *, good: bool = True) -> EvalResult:
    rankings = {
        "f1": [_hit(3), _hit(3, "Figure 1")] if good else [_hit(3)],
        "p1": [_hit(2)],
        "p2": [_hit(1), _hit(1), _hit(1), _hit(7)] if good else [],
    }
    return evaluate(QUESTIONS, lambda q: rankings[q.id], k=k)


def _rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]


def test_markdown_table_has_kind_rows_then_all() -> None:
    rows = _rows(markdown_table(_result()))
    assert rows[0] == [
        "group",
        "n",
        "MRR@10",
        "Recall@10",
        "nDCG@10",
        "MAP@10",
        "P@10",
        "Hit rate@10",
    ]
    assert [r[0] for r in rows[2:]] == ["figure", "page", "all"]
    assert rows[2][:3] == ["figure", "1", "0.500"]
    assert rows[3][:3] == ["page", "2", "0.625"]  # (1 + 1/4) / 2
    assert rows[4][:4] == ["all", "3", "0.583", "1.000"]


def test_comparison_table_bolds_the_best_per_group() -> None:
    table = comparison_table({"ours": _result(), "stock": _result(good=False)})
    rows = _rows(table)
    assert rows[0][:3] == ["group", "system", "n"]
    assert [r[:2] for r in rows[2:]] == [
        ["figure", "ours"],
        ["figure", "stock"],
        ["page", "ours"],
        ["page", "stock"],
        ["all", "ours"],
        ["all", "stock"],
    ]
    assert rows[2][3] == "**0.500**" and rows[3][3] == "0.000"
    # Recall on the page questions: ours found both pages, stock one of the two.
    assert rows[4][4] == "**1.000**" and rows[5][4] == "0.500"
    single = _rows(comparison_table({"ours": _result()}))
    assert "**" not in "".join(c for row in single for c in row)
    with pytest.raises(ValueError, match="different k"):
        comparison_table({"a": _result(10), "b": _result(5)})
    with pytest.raises(ValueError, match="at least one"):
        comparison_table({})


def test_write_report_writes_json_markdown_and_png(tmp_path: Path) -> None:
    backend = matplotlib.get_backend()
    result = _result()
    paths = write_report(result, tmp_path / "out" / "report")
    assert set(paths) == {"json", "markdown", "chart"}
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(result.to_json()))
    assert paths["markdown"].read_text() == markdown_table(result)
    with Image.open(paths["chart"]) as image:
        assert image.format == "PNG"
        assert image.width > 500 and image.height > 250
        # Bars were drawn: the chart is not a blank canvas.
        assert len(image.convert("RGB").getcolors(maxcolors=100_000) or []) > 10
    assert matplotlib.get_backend() == backend  # drawing does not switch the caller's backend


def test_comparison_chart(tmp_path: Path) -> None:
    path = comparison_chart({"ours": _result(), "stock": _result(good=False)}, tmp_path / "c.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
    with pytest.raises(ValueError, match="no 'keyword' questions"):
        comparison_chart({"ours": _result()}, tmp_path / "k.png", group="keyword")
