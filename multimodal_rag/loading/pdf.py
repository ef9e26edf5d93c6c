"""Load a PDF manual into text chunks and figures.

One pass over the pages: each page's ``get_text("dict")`` (without image bytes) is
read once, handed to the figure finder, and reduced to compact :class:`~.text.Row`
records; the dict is then dropped, so memory grows with the text, not with the
page dicts. Decisions that need the whole document come after that pass:

- running headers and footers (rows in the outer fifth of the page repeated,
  digits aside, at the same height on several pages) become ``furniture``;
- sections come from the PDF outline when it has one (each entry placed at its
  heading on the page), else from headings recognised by a larger or bold font;
- chunks are cut per page and section, so a citation's page is always exact.

A chunk's ``section`` is the heading path's last two levels, e.g.
``"2.3 Configuring the Module > 2.3.1 Setting Up the Ground Station"``; sections
too small to stand alone share a chunk with their neighbours, which then takes
the section holding most of its text. The section stays in metadata and is not
prefixed to the chunk text: on the dev questions (MiniLM, page-level MRR@10)
the prefix did not help (0.730 without, 0.704 with the path, 0.712 with the
leaf title).
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..config import LoaderConfig
from ..errors import DocumentLoadError
from ..records import BBox, ChunkRole, Figure, LoadedDocument, TextChunk
from .names import printable
from .text import Paragraph, Row, chunk_paragraphs, compound_words, normalize, page_rows, paragraphs

if TYPE_CHECKING:
    import pymupdf

__all__ = ["FigureFinderFactory", "FigureFinderLike", "load_pdf"]

logger = logging.getLogger(__name__)

_EDGE = 0.2  # headers/footers live in the top and bottom fifth of the page
_EDGE_ROWS = 2
_BAND_PT = 4.0
# %%EOF ends every complete PDF; writers may pad after it, so look a little further back.
_TAIL_BYTES = 64 * 1024
_DIGITS_RE = re.compile(r"\d+")


class FigureFinderLike(Protocol):
    """What :func:`load_pdf` needs from a figure finder (see ``loading/figures.py``)."""

    def find(self, page: pymupdf.Page, text_dict: dict[str, Any]) -> list[Figure]:
        """Figures on one page; ``text_dict`` is that page's ``get_text("dict")``."""
        ...

    def finish(self, figures: list[Figure], chunks: Sequence[TextChunk]) -> list[Figure]:
        """Complete the figures once all pages are read (e.g. referring sentences)."""
        ...


FigureFinderFactory = Callable[["pymupdf.Document", str, LoaderConfig], FigureFinderLike]


@dataclass
class _Page:
    number: int  # 1-based
    height: float
    rows: list[Row]


def _page_errors() -> tuple[type[BaseException], ...]:
    import pymupdf

    return (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase)


def _hash_and_check(path: Path) -> tuple[str, bool]:
    """SHA-256 of the file, and whether it ends like a complete PDF.

    Raises for files that cannot be a readable PDF at all.
    """
    if not path.exists():
        raise DocumentLoadError("no such file", path=path)
    if path.is_dir():
        raise DocumentLoadError("is a directory, not a PDF file", path=path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            head = fh.read(1024)
            digest.update(head)
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            size = fh.tell()
            fh.seek(max(0, size - _TAIL_BYTES))
            complete = b"%%EOF" in fh.read()
    except OSError as e:
        raise DocumentLoadError(f"cannot read file: {e}", path=path) from e
    if size == 0:
        raise DocumentLoadError("empty file", path=path)
    if b"%PDF-" not in head:
        raise DocumentLoadError("not a PDF file (no %PDF- header)", path=path)
    return digest.hexdigest(), complete


def _open(path: Path, complete: bool) -> pymupdf.Document:
    from . import import_pymupdf

    import_pymupdf()
    import pymupdf

    try:
        if printable(str(path)) == str(path):
            doc = pymupdf.open(path, filetype="pdf")  # type: ignore[no-untyped-call]
        else:
            # MuPDF takes file names as UTF-8 only; a name that is not (Latin-1 bytes
            # from an old archive) is opened from its bytes instead.
            doc = pymupdf.open(stream=path.read_bytes(), filetype="pdf")  # type: ignore[no-untyped-call]
    except OSError as e:
        raise DocumentLoadError(f"cannot read file: {e.strerror or e}", path=path) from e
    except _page_errors() as e:
        raise DocumentLoadError(f"cannot open PDF: {e}", path=path) from e
    problem = None
    try:
        if not complete and doc.is_repaired:
            # A cut-off download: the cross-reference table at the end is gone, and
            # MuPDF's repair silently drops whatever the missing bytes held.
            problem = "truncated PDF (no %%EOF marker at the end; MuPDF had to repair it)"
        elif doc.needs_pass:
            problem = "PDF is encrypted and needs a password"
        elif doc.page_count == 0:
            problem = "PDF has no pages"
    except _page_errors() as e:  # "Invalid number of pages": a /Count MuPDF cannot believe
        problem = f"broken page tree ({e})"
    if problem:
        doc.close()  # type: ignore[no-untyped-call]
        raise DocumentLoadError(problem, path=path)
    return doc


def _text_flags() -> int:
    import pymupdf

    # Image blocks would carry every image's bytes through the dict; figures are
    # found from get_image_info/get_drawings instead.
    return int(pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_IMAGES)


def _edge_rows(page: _Page) -> list[tuple[str, Row]]:
    """The outermost rows of a page's top and bottom fifth, tagged with their zone."""
    top = sorted((r for r in page.rows if r.bbox[3] <= _EDGE * page.height), key=_top_first)
    low = sorted((r for r in page.rows if r.bbox[1] >= (1 - _EDGE) * page.height), key=_low_first)
    return [("top", r) for r in top[:_EDGE_ROWS]] + [("bottom", r) for r in low[:_EDGE_ROWS]]


def _top_first(r: Row) -> float:
    return r.bbox[1]


def _low_first(r: Row) -> float:
    return -r.bbox[3]


def find_furniture(pages: Sequence[_Page]) -> set[tuple[int, Row]]:
    """Running headers and footers as (page number, row) pairs.

    A row is furniture when the same text (digits aside: page numbers) sits at the
    same height in the top or bottom fifth of several pages (at least half of a
    short document's pages, else three). Once such bands are known, any short edge
    row inside a band is furniture too: a chapter title that heads only the two
    pages of its chapter.
    """
    groups: dict[tuple[str, str], list[tuple[int, Row]]] = {}
    for page in pages:
        for zone, row in _edge_rows(page):
            key = (zone, _DIGITS_RE.sub("#", row.text.casefold()))
            groups.setdefault(key, []).append((page.number, row))
    need = max(2, min(3, (len(pages) + 1) // 2))
    bands: list[tuple[str, float]] = []
    out: set[tuple[int, Row]] = set()
    for (zone, _), members in groups.items():
        ys = sorted(r.bbox[1] for _, r in members)
        mid = ys[len(ys) // 2]
        near = [(n, r) for n, r in members if abs(r.bbox[1] - mid) <= _BAND_PT]
        if len({n for n, _ in near}) >= need:
            bands.append((zone, mid))
            out.update(near)
    for page in pages:
        for zone, row in _edge_rows(page):
            # Running chapter titles are short; a long line at header height is content.
            if len(row.text) <= 60 and any(
                z == zone and abs(row.bbox[1] - y) <= _BAND_PT for z, y in bands
            ):
                out.add((page.number, row))
    return out


def _read_pages(
    doc: pymupdf.Document, path: Path, finder: FigureFinderLike
) -> tuple[list[_Page], list[Figure], list[int]]:
    pages: list[_Page] = []
    figures: list[Figure] = []
    skipped: list[int] = []
    flags = _text_flags()
    errors = _page_errors()
    find_errors: tuple[type[BaseException], ...] = (DocumentLoadError, *errors)
    for index in range(doc.page_count):
        number = index + 1
        try:
            page = doc.load_page(index)  # type: ignore[no-untyped-call]
            text_dict = page.get_text("dict", flags=flags, sort=True)
            rows = page_rows(text_dict)
            height = float(page.rect.height)
        except errors as e:
            logger.warning("%s: skipping unreadable page %d: %s", path, number, e)
            skipped.append(number)
            continue
        pages.append(_Page(number, height, rows))
        try:
            figures.extend(finder.find(page, text_dict))
        except find_errors as e:
            # The page's text is fine; losing its figures beats losing the document.
            logger.warning("%s: no figures from page %d: %s", path, number, e)
        del text_dict
    return pages, figures, skipped


# ------------------------------------------------------------------ sections

Heads = dict[tuple[int, int], list[tuple[int, str]]]
"""(page, index of a body row) -> headings (level, title) that start at that row."""

_CAPTION_RE = re.compile(r"^(?:fig(?:ure)?|table)\.?\s*[A-Z]?\d", re.IGNORECASE)
_TOC_ENTRY_RE = re.compile(r"^\d[\d.]*\s.*\s\d+$")
# A dot leader ("Overview ........ 43", "Introduction . . . . 9") ends every entry of a
# table of contents or a list of figures, and almost never appears in running text.
_DOT_LEADER_RE = re.compile(r"(?:\.\s?){4,}\s*\d+")
# Listing entries run 60-130 characters with their leaders; a passage with a stray
# leader or two has far more text per leader.
_MAX_CHARS_PER_LEADER = 200


def is_contents_listing(text: str) -> bool:
    """Whether a chunk is table-of-contents (or list-of-figures) entries, not content.

    Such chunks repeat every heading of the manual with a page number: they match
    almost any query by words while answering none, so they are kept but not indexed.

    Example:
        >>> is_contents_listing("2.1 Wiring ........ 12  2.2 Calibration ........ 15")
        True
        >>> is_contents_listing("Tighten the screws (see page 12) . . . and then wait.")
        False
    """
    leaders = len(_DOT_LEADER_RE.findall(text))
    return leaders >= 2 and len(text) <= leaders * _MAX_CHARS_PER_LEADER


@dataclass(frozen=True)
class _Boundary:
    page: int
    y: float
    section: str | None


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", normalize(text).casefold())


def _match_title(rows: Sequence[Row], title: str, start: int) -> int | None:
    """Index of the row (possibly wrapped over up to 3 rows) that prints ``title``."""
    want = _key(title)
    if not want:
        return None
    for i in range(start, len(rows)):
        acc = ""
        for j in range(i, min(i + 3, len(rows))):
            acc += _key(rows[j].text)
            if acc == want:
                return i
            if not want.startswith(acc):
                break
    return None


def outline_heads(toc: Sequence[Sequence[Any]], body: dict[int, list[Row]]) -> Heads:
    """Place each outline entry at its heading row (or its link target's height)."""
    heads: Heads = {}
    after: dict[int, int] = {}
    for entry in toc:
        level, title, number = int(entry[0]), str(entry[1]), int(entry[2])
        rows = body.get(number)
        if rows is None:
            continue  # points nowhere, or at a skipped page
        start = after.get(number, 0)
        idx = _match_title(rows, title, start)
        if idx is None:
            dest = entry[3] if len(entry) > 3 and isinstance(entry[3], dict) else {}
            to = dest.get("to")
            y = float(to.y) if to is not None else 0.0
            idx = next((i for i in range(start, len(rows)) if rows[i].bbox[1] >= y - 2), len(rows))
        heads.setdefault((number, idx), []).append((level, normalize(title)))
        after[number] = idx
    return heads


def _looks_like_heading(row: Row, base: float) -> bool:
    text = row.text
    if len(text) > 100 or not any(c.isalpha() for c in text) or _CAPTION_RE.match(text):
        return False
    if row.size >= base * 1.15 and row.size - base >= 1.0:
        return True
    return (
        row.bold
        and abs(row.size - base) <= 0.6
        and len(text) <= 60
        and (text[0].isupper() or text[0].isdigit())
        and not text.endswith((".", ",", ";"))
        and not _TOC_ENTRY_RE.match(text)
    )


def font_heads(body: dict[int, list[Row]]) -> Heads:
    """Headings recognised by font: larger than the body text, or bold at body size.

    Larger sizes rank higher; bold body-size run-in titles rank lowest. A heading
    row directly followed by a heading row in a font at least as large ("Chapter 2"
    over "Electricity") forms one title with it.
    """
    weight: Counter[float] = Counter()
    for rows in body.values():
        for r in rows:
            weight[round(r.size * 2) / 2] += len(r.text)
    if not weight:
        return {}
    base = weight.most_common(1)[0][0]
    found: list[tuple[int, int, Row]] = [
        (n, i, r)
        for n, rows in body.items()
        for i, r in enumerate(rows)
        if _looks_like_heading(r, base)
    ]
    sizes = sorted(
        {round(r.size * 2) / 2 for _, _, r in found if r.size - base >= 1.0}, reverse=True
    )
    rank = {s: k + 1 for k, s in enumerate(sizes)}
    heads: Heads = {}
    skip: set[tuple[int, int]] = set()
    for n, i, r in found:
        if (n, i) in skip:
            continue
        level, title = rank.get(round(r.size * 2) / 2, len(sizes) + 1), r.text
        rows = body[n]
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        if (
            nxt is not None
            and level <= len(sizes)
            and _looks_like_heading(nxt, base)
            and nxt.size >= r.size  # "Chapter 2" over a bigger "Electricity"; not a sub-heading
            and nxt.bbox[1] - r.bbox[3] < 2 * (r.bbox[3] - r.bbox[1])
        ):
            level = min(level, rank[round(nxt.size * 2) / 2])
            title = f"{title} {nxt.text}"
            skip.add((n, i + 1))
        heads[(n, i)] = [(level, title)]
    return heads


def _section_at(bounds: Sequence[_Boundary], page: int, y: float) -> str | None:
    """The section in effect at height ``y`` of ``page``."""
    keys = [(b.page, b.y) for b in bounds]
    i = bisect.bisect_right(keys, (page, y)) - 1
    return bounds[i].section if i >= 0 else None


# ------------------------------------------------------------------ chunks


def _bbox(rows: Sequence[Row]) -> tuple[float, float, float, float]:
    return (
        min(r.bbox[0] for r in rows),
        min(r.bbox[1] for r in rows),
        max(r.bbox[2] for r in rows),
        max(r.bbox[3] for r in rows),
    )


class _Chunker:
    """Cuts pages into chunks while tracking the heading stack across pages."""

    def __init__(self, doc: str, cfg: LoaderConfig, vocab: Counter[str]) -> None:
        self.doc, self.cfg, self.vocab = doc, cfg, vocab
        self.chunks: list[TextChunk] = []
        self.bounds: list[_Boundary] = []
        self.stack: list[tuple[int, str]] = []

    @property
    def section(self) -> str | None:
        return " > ".join(t for _, t in self.stack[-2:]) or None

    def _emit(self, text: str, page: int, section: str | None, bbox: BBox, role: ChunkRole) -> None:
        self.chunks.append(TextChunk(self.doc, page, section, text, bbox, len(self.chunks), role))

    def page(self, pg: _Page, furniture: set[tuple[int, Row]], heads: Heads) -> None:
        """Emit one page: top furniture, content split at headings, bottom furniture."""
        n = pg.number
        edge = [r for r in pg.rows if (n, r) in furniture]
        body = [r for r in pg.rows if (n, r) not in furniture]
        top = [r for r in edge if r.bbox[3] <= pg.height / 2]
        bottom = [r for r in edge if r.bbox[3] > pg.height / 2]
        if top:
            self._emit(" ".join(r.text for r in top), n, self.section, _bbox(top), "furniture")
        self.bounds.append(_Boundary(n, float("-inf"), self.section))
        sections = [self.section]
        paras: list[Paragraph] = []
        starts = sorted(i for (p, i) in heads if p == n)
        start = 0
        for cut in [*starts, None]:
            end = len(body) if cut is None else cut
            local = {i - start for i in starts if start <= i < end}
            for para in paragraphs(body[start:end], local, self.vocab):
                paras.append(replace(para, segment=len(sections) - 1))
            if cut is None:
                break
            for level, title in heads[(n, cut)]:
                self.stack[:] = [h for h in self.stack if h[0] < level] + [(level, title)]
            y = body[cut].bbox[1] if cut < len(body) else pg.height
            self.bounds.append(_Boundary(n, y, self.section))
            sections.append(self.section)
            start = cut
        # Judged for the whole page too, so small chunks of a listing page (one entry
        # each) are not taken for content; a chunk alone catches a listing that ends
        # on a page where the text begins.
        listing_page = is_contents_listing(" ".join(r.text for r in body))
        for c in chunk_paragraphs(paras, self.cfg.chunk_size, self.cfg.chunk_overlap):
            # The section holding most of the chunk's new text names it.
            seg = max(reversed(c.segments), key=lambda s: s[1])[0]
            listing = listing_page or is_contents_listing(c.text)
            self._emit(c.text, n, sections[seg], c.bbox, "contents" if listing else "content")
        if bottom:
            self._emit(
                " ".join(r.text for r in bottom), n, self.section, _bbox(bottom), "furniture"
            )


# ------------------------------------------------------------------ entry point


def _default_finder() -> FigureFinderFactory:
    from .figures import FigureFinder

    return FigureFinder


def load_pdf(
    path: str | Path,
    config: LoaderConfig | None = None,
    *,
    figure_finder: FigureFinderFactory | None = None,
) -> LoadedDocument:
    """Load a PDF into text chunks (content and furniture) and figures.

    Args:
        path: The PDF file.
        config: Chunking, OCR and rendering settings; defaults to ``LoaderConfig()``.
        figure_finder: Builds the figure finder from ``(document, doc name, config)``;
            defaults to :class:`multimodal_rag.loading.figures.FigureFinder`. Pass
            another to test or to time the text side alone.

    Returns:
        The document: chunks in reading order (page by page), figures in page order
        with their ``section`` set, pages that could not be read in ``skipped_pages``.

    Raises:
        DocumentLoadError: The path is missing, a folder, not a PDF, empty,
            truncated, encrypted, has no pages or a broken page tree, no page
            could be read, or MuPDF fails on the document as a whole. No MuPDF
            exception escapes: a page MuPDF cannot read is skipped with a
            warning and listed in ``skipped_pages``.

    Example:
        >>> loaded = load_pdf("manual.pdf")  # doctest: +SKIP
        >>> loaded.chunks[0].page, loaded.chunks[0].section  # doctest: +SKIP
        (1, None)
    """
    cfg = config or LoaderConfig()
    p = Path(path)
    started = time.perf_counter()
    content_hash, complete = _hash_and_check(p)
    doc = _open(p, complete)
    name = printable(p.name)
    try:
        return _load(doc, p, name, cfg, figure_finder or _default_finder(), content_hash, started)
    except _page_errors() as e:
        # The pages are read one by one and each failure costs its page only; what is
        # left (the outline, a page count that changes under repair) fails the document.
        logger.debug("%s: MuPDF failed", p, exc_info=True)
        raise DocumentLoadError(f"MuPDF cannot read the PDF: {e}", path=p) from e
    finally:
        doc.close()  # type: ignore[no-untyped-call]


def _load(
    doc: pymupdf.Document,
    p: Path,
    name: str,
    cfg: LoaderConfig,
    figure_finder: FigureFinderFactory,
    content_hash: str,
    started: float,
) -> LoadedDocument:
    finder = figure_finder(doc, name, cfg)
    pages, figures, skipped = _read_pages(doc, p, finder)
    if not pages:
        raise DocumentLoadError("no page could be read", path=p)
    page_count = doc.page_count
    try:
        toc = doc.get_toc(simple=False)
    except _page_errors() as e:
        logger.warning("%s: outline unreadable (%s); sections come from the fonts", p, e)
        toc = []
    furniture = find_furniture(pages)
    body = {pg.number: [r for r in pg.rows if (pg.number, r) not in furniture] for pg in pages}
    heads = outline_heads(toc, body) if toc else font_heads(body)
    chunker = _Chunker(name, cfg, compound_words(r.text for pg in pages for r in pg.rows))
    for pg in pages:
        chunker.page(pg, furniture, heads)
    figures = finder.finish(figures, chunker.chunks)
    figures = [replace(f, section=_section_at(chunker.bounds, f.page, f.bbox[1])) for f in figures]
    logger.debug(
        "%s: %d pages, %d chunks, %d figures in %.2fs",
        name,
        page_count,
        len(chunker.chunks),
        len(figures),
        time.perf_counter() - started,
    )
    return LoadedDocument(
        doc=name,
        path=printable(str(p)),
        content_hash=content_hash,
        pages=page_count,
        chunks=tuple(chunker.chunks),
        figures=tuple(figures),
        skipped_pages=tuple(skipped),
    )
