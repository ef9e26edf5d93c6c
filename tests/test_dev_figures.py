# mypy: disable-error-code="no-untyped-call"
"""Figure detection on the real dev manuals, scored against ../shared/eval/dev-figures.jsonl.

Three numbers, each with its target:

- captioned recall (>= 0.95): a dev figure with a label counts as found when a
  reported figure on the same doc and page has the same label (case-insensitive)
  and a matching caption. Captions match when, after NFKC, case folding,
  whitespace collapsing and stripping a final period, they are equal or their
  ``difflib.SequenceMatcher`` ratio is at least 0.95 (tiny differences such as
  the dev set's "180° out" for the PDF's superscript "1800out").
- uncaptioned recall (>= 0.90): a dev figure without a label counts as found
  when an unlabelled figure is reported on that page.
- false figures (<= 0.05): the share of reported figures that match no dev
  entry on their page (a labelled one needs that label; an unlabelled one needs
  an uncaptioned entry).
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import pytest

from multimodal_rag.config import LoaderConfig
from multimodal_rag.loading.figures import FigureFinder
from multimodal_rag.records import Figure

SHARED = Path(__file__).resolve().parents[2] / "shared"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED.is_dir(), reason=f"dev corpora not found at {SHARED}"),
]


def _norm(text: str | None) -> str:
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text or "").casefold())
    return text.strip().rstrip(".").strip()


def captions_match(found: str | None, expected: str) -> bool:
    """The caption rule of this module's docstring."""
    a, b = _norm(found), _norm(expected)
    return a == b or bool(SequenceMatcher(None, a, b).ratio() >= 0.95)


def _matches(entry: dict[str, Any], fig: Figure) -> bool:
    if (fig.doc, fig.page) != (entry["doc"], entry["page"]):
        return False
    if entry["label"] is None:
        return fig.label is None
    return (fig.label or "").casefold() == str(entry["label"]).casefold()


def dev_scores(figures: list[Figure], gold: list[dict[str, Any]]) -> dict[str, float]:
    """Captioned recall, uncaptioned recall and the share of false figures."""
    captioned = [g for g in gold if g["label"]]
    uncaptioned = [g for g in gold if not g["label"]]
    found_c = sum(
        any(_matches(g, f) and captions_match(f.caption, g["caption"]) for f in figures)
        for g in captioned
    )
    found_u = sum(any(_matches(g, f) for f in figures) for g in uncaptioned)
    false = sum(not any(_matches(g, f) for g in gold) for f in figures)
    return {
        "captioned": found_c / len(captioned),
        "uncaptioned": found_u / len(uncaptioned),
        "false": false / max(1, len(figures)),
    }


def find_all(pdf: Path, config: LoaderConfig) -> list[Figure]:
    """Every figure of a PDF, with FigureFinder driven page by page like the loader does."""
    import pymupdf

    with pymupdf.open(pdf) as doc:
        finder = FigureFinder(doc, pdf.name, config)
        figures: list[Figure] = []
        for page in doc:
            figures += finder.find(page, page.get_text("dict"))
        return finder.finish(figures, [])


@pytest.fixture(scope="module")
def gold() -> list[dict[str, Any]]:
    lines = (SHARED / "eval" / "dev-figures.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def found(gold: list[dict[str, Any]]) -> list[Figure]:
    docs = sorted({g["doc"] for g in gold})
    config = LoaderConfig(ocr=False)
    return [f for name in docs for f in find_all(SHARED / "corpora" / name, config)]


def test_dev_figures_meet_targets(found: list[Figure], gold: list[dict[str, Any]]) -> None:
    scores = dev_scores(found, gold)
    assert scores["captioned"] >= 0.95, scores
    assert scores["uncaptioned"] >= 0.90, scores
    assert scores["false"] <= 0.05, scores


def test_dev_figures_group_parts_and_decode(
    found: list[Figure], gold: list[dict[str, Any]]
) -> None:
    from PIL import Image

    parts = {(f.doc, f.label): f.parts for f in found if f.label}
    captioned = [g for g in gold if g["label"]]
    same_parts = sum(parts.get((g["doc"], g["label"])) == g["parts"] for g in captioned)
    assert same_parts >= 0.95 * len(captioned)
    for fig in found:
        with Image.open(io.BytesIO(fig.image_png)) as img:
            assert min(img.size) >= 16
    # The List of Figures page (gpredict p4) holds no figure.
    assert not [f for f in found if f.doc.startswith("gpredict") and f.page == 4]
