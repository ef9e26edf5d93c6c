# PyMuPDF ships no annotations for most of its API.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pymupdf
import pytest

from multimodal_rag.config import LoaderConfig
from multimodal_rag.errors import DocumentLoadError
from multimodal_rag.loading.pdf import load_pdf
from multimodal_rag.records import Figure, LoadedDocument, TextChunk
from tests.support import pdfs
from tests.support.pdfs import make_manual_pdf

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
CONFIG = LoaderConfig(ocr=False)


class StubFinder:
    """Stands in for figures.FigureFinder: records its calls, finds one figure on page 3."""

    instances: list[StubFinder] = []

    def __init__(self, doc: pymupdf.Document, doc_name: str, config: LoaderConfig) -> None:
        self.doc_name = doc_name
        self.dicts: list[tuple[int, dict[str, Any]]] = []
        self.finished_with: Sequence[TextChunk] = ()
        StubFinder.instances.append(self)

    def find(self, page: pymupdf.Page, text_dict: dict[str, Any]) -> list[Figure]:
        self.dicts.append((page.number + 1, text_dict))
        if page.number + 1 != 3:
            return []
        return [Figure(self.doc_name, 3, pdfs.VECTOR_BBOX, "vector", b"png", label="Figure 1.2")]

    def finish(self, figures: list[Figure], chunks: Sequence[TextChunk]) -> list[Figure]:
        self.finished_with = chunks
        return figures


def _load(path: Path, config: LoaderConfig = CONFIG) -> LoadedDocument:
    return load_pdf(path, config, figure_finder=StubFinder)


@pytest.fixture(scope="module")
def manual_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_manual_pdf(tmp_path_factory.mktemp("pdf") / "manual.pdf")


@pytest.fixture(scope="module")
def loaded(manual_pdf: Path) -> LoadedDocument:
    return _load(manual_pdf)


def _content(loaded: LoadedDocument, page: int | None = None) -> list[TextChunk]:
    return [c for c in loaded.chunks if c.role == "content" and page in (None, c.page)]


def _page_text(loaded: LoadedDocument, page: int) -> str:
    return "\n".join(c.text for c in _content(loaded, page))


def _alnum(text: str) -> Counter[str]:
    return Counter(c for c in unicodedata.normalize("NFKC", text) if c.isalnum())


def test_document_fields(manual_pdf: Path, loaded: LoadedDocument) -> None:
    assert loaded.doc == "manual.pdf"
    assert loaded.path == str(manual_pdf)
    assert loaded.pages == pdfs.PAGES
    assert loaded.content_hash == hashlib.sha256(manual_pdf.read_bytes()).hexdigest()
    assert loaded.skipped_pages == ()
    assert [c.index for c in loaded.chunks] == list(range(len(loaded.chunks)))
    assert [c.page for c in loaded.chunks] == sorted(c.page for c in loaded.chunks)


def test_ligatures_are_normalised(loaded: LoadedDocument) -> None:
    assert not any(ch in c.text for c in loaded.chunks for ch in "\ufb01\ufb02")
    for word in pdfs.LIGATURE_WORDS:
        assert re.search(rf"\b{word}\b", _page_text(loaded, 2))


def test_line_end_hyphenation_is_undone_and_real_hyphens_kept(loaded: LoadedDocument) -> None:
    assert "To continue with the setup" in _page_text(loaded, 2)
    assert "conti-" not in _page_text(loaded, 2)
    page3 = _page_text(loaded, 3)
    for word in pdfs.HYPHEN_KEPT:
        assert word in page3


@pytest.mark.parametrize("outline", [True, False], ids=["outline", "fonts"])
def test_sections_follow_the_headings(tmp_path: Path, outline: bool) -> None:
    loaded = _load(make_manual_pdf(tmp_path / "m.pdf", outline=outline))
    by_start = {c.text.split("\n")[0]: c for c in loaded.chunks if c.role != "furniture"}
    assert by_start["List of Figures"].section == "List of Figures"
    first = by_start["1 Getting Started"]
    assert first.section == "1 Getting Started > 1.1 Front Panel"
    assert first.text.startswith("1 Getting Started\n1.1 Front Panel\nBefore the first use")
    assert by_start["1.2 Signal Flow"].section == "1 Getting Started > 1.2 Signal Flow"
    assert by_start["2 Troubleshooting"].section == "2 Troubleshooting"
    # A figure gets the section it sits in.
    assert [f.section for f in loaded.figures] == ["1 Getting Started > 1.2 Signal Flow"]


def test_list_of_figures_is_kept_as_contents_not_content(loaded: LoadedDocument) -> None:
    (listing,) = [c for c in loaded.chunks if c.role == "contents"]
    assert listing.page == 1 and "Figure 1.2: Signal flow" in listing.text
    assert _content(loaded, 1) == []
    assert "Signal flow from input to output" in _page_text(loaded, 3)


def test_running_header_and_page_number_are_furniture(loaded: LoadedDocument) -> None:
    for page in range(1, pdfs.PAGES + 1):
        furniture = [c.text for c in loaded.chunks if c.page == page and c.role == "furniture"]
        assert furniture == [pdfs.HEADER, str(page)]
        assert pdfs.HEADER not in _page_text(loaded, page)
    assert loaded.chunks[0].role == "furniture"  # the header comes first in reading order


def test_no_page_text_is_lost_and_pages_are_exact(manual_pdf: Path) -> None:
    loaded = _load(manual_pdf, LoaderConfig(ocr=False, chunk_size=150, chunk_overlap=0))
    with pymupdf.open(manual_pdf) as doc:
        for page in doc:
            words = " ".join(w[4] for w in page.get_text("words"))
            chunks = [c for c in loaded.chunks if c.page == page.number + 1]
            assert _alnum(" ".join(c.text for c in chunks)) == _alnum(words)
            for c in chunks:
                assert c.bbox is not None
                assert pymupdf.Rect(c.bbox) in page.rect


def test_small_chunks_break_between_words_and_overlap(manual_pdf: Path) -> None:
    loaded = _load(manual_pdf, LoaderConfig(ocr=False, chunk_size=120, chunk_overlap=40))
    whole = _load(manual_pdf, LoaderConfig(ocr=False, chunk_size=5000, chunk_overlap=0))
    for page in range(1, pdfs.PAGES + 1):
        vocabulary = set(_page_text(whole, page).split())
        for c in _content(loaded, page):
            assert len(c.text) <= 120
            assert set(c.text.split()) <= vocabulary  # never cut inside a word
    page2 = _content(loaded, 2)
    assert len(page2) > 2
    assert any(b.text[:20] in a.text for a, b in zip(page2, page2[1:], strict=False))


def test_finder_gets_each_page_dict_once_without_image_bytes(loaded: LoadedDocument) -> None:
    finder = next(f for f in StubFinder.instances if tuple(f.finished_with) == loaded.chunks)
    assert [n for n, _ in finder.dicts] == [1, 2, 3, 4]
    blocks = [b for _, d in finder.dicts for b in d["blocks"]]
    assert not any("image" in b for b in blocks)
    assert [f.label for f in loaded.figures] == ["Figure 1.2"]


def _encrypted(path: Path) -> None:
    doc = pymupdf.open(make_manual_pdf(path.with_name("plain.pdf")))
    doc.save(path, encryption=pymupdf.mupdf.PDF_ENCRYPT_AES_256, user_pw="u", owner_pw="o")
    doc.close()


def _truncated(path: Path) -> None:
    data = make_manual_pdf(path.with_name("whole.pdf")).read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


_ZERO_PAGES = (
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
BAD_INPUTS = {
    "missing": (lambda p: None, "no such file"),
    "directory": (lambda p: p.mkdir(), "directory"),
    "text-renamed": (lambda p: p.write_text("just some notes\n" * 20), "not a PDF"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "truncated": (_truncated, "truncated"),
    "encrypted": (_encrypted, "password"),
    "zero-pages": (lambda p: p.write_bytes(_ZERO_PAGES), "no pages"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_document_load_error(tmp_path: Path, case: str) -> None:
    make, message = BAD_INPUTS[case]
    path = tmp_path / "bad.pdf"
    make(path)
    with pytest.raises(DocumentLoadError, match=message) as info:
        _load(path)
    assert info.value.path == path
    assert str(path) in str(info.value)


def test_padding_after_the_end_marker_is_not_truncation(manual_pdf: Path, tmp_path: Path) -> None:
    padded = tmp_path / "padded.pdf"
    padded.write_bytes(manual_pdf.read_bytes() + b"\0" * 5000)
    assert _load(padded).pages == pdfs.PAGES


def test_one_broken_page_is_skipped_with_a_warning(
    manual_pdf: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = pymupdf.Page.get_text

    def broken_on_page_2(self: pymupdf.Page, *args: Any, **kwargs: Any) -> Any:
        if self.number == 1:
            raise pymupdf.mupdf.FzErrorFormat("syntax error in content stream")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pymupdf.Page, "get_text", broken_on_page_2)
    with caplog.at_level(logging.WARNING, logger="multimodal_rag.loading.pdf"):
        loaded = _load(manual_pdf)
    assert loaded.skipped_pages == (2,)
    assert loaded.pages == pdfs.PAGES
    assert {c.page for c in loaded.chunks} == {1, 3, 4}
    assert "page 2" in caplog.text
    assert "2 Troubleshooting" in _page_text(loaded, 4)


def test_no_readable_page_is_an_error(manual_pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: pymupdf.Page, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot read page")

    monkeypatch.setattr(pymupdf.Page, "get_text", broken)
    with pytest.raises(DocumentLoadError, match="no page could be read"):
        _load(manual_pdf)


def test_with_the_real_figure_finder(manual_pdf: Path) -> None:
    pytest.importorskip("multimodal_rag.loading.figures", reason="figures.py not written yet")
    loaded = load_pdf(manual_pdf, CONFIG)
    by_label = {f.label: f for f in loaded.figures}
    assert set(by_label) == {e["label"] for e in pdfs.EXPECTED_FIGURES}
    assert by_label["Figure 1.1"].section == "1 Getting Started > 1.1 Front Panel"
    assert by_label["Figure 1.2"].section == "1 Getting Started > 1.2 Signal Flow"
    assert pdfs.REFERENCE_SENTENCE in by_label["Figure 1.1"].context_text


def _real(name: str) -> LoadedDocument:
    path = CORPORA / name
    if not path.exists():
        pytest.skip(f"dev manual {path} is not available")
    return load_pdf(path, CONFIG, figure_finder=StubFinder)


@pytest.mark.slow
def test_real_manual_without_outline_en_eyes() -> None:
    loaded = _real("en-eyes.pdf")
    assert loaded.pages == 130 and loaded.skipped_pages == ()
    assert not any("\ufb01" in c.text or "\ufb02" in c.text for c in loaded.chunks)
    furniture = [c for c in loaded.chunks if c.role == "furniture"]
    # The page number footer of every page but the title page.
    assert {c.page for c in furniture} == set(range(2, 131))
    assert all(c.text == str(c.page) for c in furniture)
    # The table of contents (pages 5-7) is kept but not indexed; nothing else is taken for it.
    assert {c.page for c in loaded.chunks if c.role == "contents"} == {5, 6, 7}
    assert not [c for c in loaded.chunks if c.page in (5, 6, 7) and c.role == "content"]
    sections = {c.section for c in loaded.chunks}
    assert "Chapter 1 Getting Started > 1.1 Introduction" in sections
    assert any(s and s.startswith("2.19 AC phase shift in RC circuits") for s in sections)


@pytest.mark.slow
def test_real_manual_with_outline_gpredict() -> None:
    loaded = _real("gpredict-user-manual.pdf")
    with pymupdf.open(CORPORA / "gpredict-user-manual.pdf") as doc:
        titles = {t for _, t, _ in doc.get_toc()}
        for c in loaded.chunks:  # every word of a chunk is printed on its page
            page_words = set(
                re.findall(r"\w+", unicodedata.normalize("NFKC", doc[c.page - 1].get_text()))
            )
            for w in set(re.findall(r"\w+", c.text)) - page_words:
                # "re-" + "distribute" printed across a line end
                assert any(w.startswith(a) and w[len(a) :] in page_words for a in page_words), w
    leaves = {s.split(" > ")[-1] for c in loaded.chunks if (s := c.section)}
    assert leaves <= titles
    assert len(leaves) > 40
    furniture = Counter(re.sub(r"\d+", "#", c.text) for c in loaded.chunks if c.role == "furniture")
    assert furniture["#"] >= 55 and furniture["Gpredict User Manual"] >= 25
    assert furniture["Getting Started with Gpredict"] >= 4
    content = " ".join(c.text for c in loaded.chunks if c.role == "content")
    assert "Gpredict User Manual Getting" not in content
    # Table of contents (p3) and lists of figures and tables (p4).
    assert {c.page for c in loaded.chunks if c.role == "contents"} == {3, 4}
