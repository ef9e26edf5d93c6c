"""Page text: visual rows from ``page.get_text("dict")``, paragraphs, and chunks.

Nothing here imports PyMuPDF; it works on the text dict and on plain strings, so it
is cheap to test. :mod:`multimodal_rag.loading.pdf` decides which rows are running
headers/footers and where sections start, then calls :func:`paragraphs` and
:func:`chunk_paragraphs` once per page and section.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..records import BBox

_WS_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"\w(?:[\w\-]*\w)?")
# A sentence ends at . ! ? (optionally closed by a quote or bracket) before a space.
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]?\s+")
_LIST_ITEM_RE = re.compile(r"^(?:\(?\d{1,2}[.)]|\(?[a-z][.)]|[\u2022\u25cf\u25aa\u2013*-])\s")
_HYPHENS = ("-", "\u2010")
_SOFT_HYPHEN = "\u00ad"
_BOLD_FLAG = 16  # TEXT_FONT_BOLD in span["flags"]


@dataclass(frozen=True)
class Row:
    """One visual line of a page: the PDF lines of one block that share a baseline.

    Attributes:
        text: NFKC-normalised text, whitespace collapsed; a line-end hyphen is kept.
        bbox: Union of the row's lines.
        size: Font size carrying most of the row's characters.
        bold: Every visible span of the row is bold.
        block: Index of the text block the row came from.
    """

    text: str
    bbox: BBox
    size: float
    bold: bool
    block: int


@dataclass(frozen=True)
class Paragraph:
    """Running text of consecutive rows, line-end hyphenation resolved.

    Attributes:
        text: The text.
        bbox: Union of its rows.
        heading: It is a heading (never left dangling at the end of a chunk).
        segment: Caller's id of the section segment it belongs to.
    """

    text: str
    bbox: BBox
    heading: bool = False
    segment: int = 0


@dataclass(frozen=True)
class Chunk:
    """A chunk of text and the section segments its new text came from, with sizes."""

    text: str
    bbox: BBox
    segments: tuple[tuple[int, int], ...]


def normalize(text: str) -> str:
    """NFKC-normalise (ligatures such as "ﬁ" become "fi") and collapse whitespace.

    Example:
        >>> normalize("the  \\ufb01rst \\ufb02ow")
        'the first flow'
    """
    return _WS_RE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def _union(boxes: Iterable[BBox]) -> BBox:
    bs = list(boxes)
    return (
        min(b[0] for b in bs),
        min(b[1] for b in bs),
        max(b[2] for b in bs),
        max(b[3] for b in bs),
    )


def _is_bold(span: dict[str, Any]) -> bool:
    font = str(span.get("font", ""))
    # TeX fonts (CMBX10) do not set the bold flag; their names say it.
    return bool(int(span.get("flags", 0)) & _BOLD_FLAG) or "Bold" in font or "CMBX" in font


def page_rows(text_dict: dict[str, Any]) -> list[Row]:
    """The visual rows of a page, block by block in the dict's order.

    PyMuPDF splits one printed line into several ``line`` entries where spacing is
    wide (justified text, a bold run-in heading); lines of a block whose vertical
    middles fall inside each other's extent are joined left to right.
    """
    out: list[Row] = []
    for bno, block in enumerate(text_dict.get("blocks", [])):
        if block.get("type", 0) != 0:
            continue
        rows: list[list[dict[str, Any]]] = []
        for line in block.get("lines", []):
            mid = (line["bbox"][1] + line["bbox"][3]) / 2
            for row in rows:
                if row[0]["bbox"][1] <= mid <= row[0]["bbox"][3]:
                    row.append(line)
                    break
            else:
                rows.append([line])
        for row in rows:
            row.sort(key=lambda ln: ln["bbox"][0])
            spans = [s for ln in row for s in ln["spans"] if s["text"].strip()]
            text = normalize(" ".join("".join(s["text"] for s in ln["spans"]) for ln in row))
            if not text or not spans:
                continue
            weight: Counter[float] = Counter()
            for s in spans:
                weight[round(float(s["size"]), 1)] += len(s["text"])
            out.append(
                Row(
                    text=text,
                    bbox=_union(tuple(ln["bbox"]) for ln in row),
                    size=weight.most_common(1)[0][0],
                    bold=all(_is_bold(s) for s in spans),
                    block=bno,
                )
            )
    return out


def compound_words(texts: Iterable[str]) -> Counter[str]:
    """Casefolded word counts, hyphenated compounds counted as one word.

    Only words inside lines count (a line's last word may be a hyphenated break);
    :func:`join_rows` uses these counts to tell "wave-form" from "conti-nue".
    """
    counts: Counter[str] = Counter()
    for text in texts:
        words = _WORD_RE.findall(text)
        if text.rstrip().endswith(_HYPHENS) and words:
            words = words[:-1]
        counts.update(w.casefold() for w in words)
    return counts


def join_rows(parts: Sequence[str], vocabulary: Counter[str] | None = None) -> str:
    """Join wrapped rows into running text, undoing line-end hyphenation.

    A row ending in "letter-" followed by a lowercase word is a hyphenated break
    and is joined ("conti-" + "nue" -> "continue") unless the document writes the
    hyphenated compound elsewhere and never the joined word ("wave-form"). A
    capital or digit after the hyphen keeps it ("Geiger-" + "Muller").

    Example:
        >>> join_rows(["To conti-", "nue, press", "the Geiger-", "Muller key."])
        'To continue, press the Geiger-Muller key.'
    """
    vocab = vocabulary if vocabulary is not None else Counter()
    out = ""
    glue = False  # the previous row ended in a soft hyphen: a break the author marked
    for raw in parts:
        part = raw.strip()
        soft = part.endswith(_SOFT_HYPHEN)
        part = part.replace(_SOFT_HYPHEN, "")
        if not part:
            continue
        if not out or glue:
            out += part
        elif out.endswith(_HYPHENS) and len(out) > 1 and out[-2].isalnum():
            if out[-2].isalpha() and part[0].islower():
                head = _WORD_RE.findall(out[:-1])[-1]
                tail = _WORD_RE.findall(part)[0] if _WORD_RE.match(part) else ""
                compound = f"{head}-{tail}".casefold()
                joined = f"{head}{tail}".casefold()
                keep = vocab[compound] > 0 and vocab[joined] == 0
                out = out + part if keep else out[:-1] + part
            else:
                out = out + part
        else:
            out = f"{out} {part}"
        glue = soft
    return out


def paragraphs(
    rows: Sequence[Row], headings: set[int], vocabulary: Counter[str]
) -> list[Paragraph]:
    """Group consecutive rows into paragraphs.

    A new paragraph starts at a new block, a heading (indices in ``headings``), a
    vertical gap of over half a row's height, a list item, or an indented row after
    a sentence end.
    """
    out: list[Paragraph] = []
    group: list[Row] = []

    first = 0

    def flush() -> None:
        if group:
            text = join_rows([r.text for r in group], vocabulary)
            out.append(Paragraph(text, _union(r.bbox for r in group), first in headings))
            group.clear()

    for i, row in enumerate(rows):
        if group:
            prev = group[-1]
            height = max(prev.bbox[3] - prev.bbox[1], 1.0)
            new = (
                i in headings
                or (i - 1) in headings
                or row.block != prev.block
                or row.bbox[1] - prev.bbox[3] > 0.5 * height
                or bool(_LIST_ITEM_RE.match(row.text))
                or (row.bbox[0] - prev.bbox[0] > 6 and prev.text.endswith((".", ":", "!", "?")))
            )
            if new:
                flush()
        if not group:
            first = i
        group.append(row)
    flush()
    return out


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END_RE.split(text) if s]


def _split_words(text: str, size: int) -> list[str]:
    """Cut text longer than ``size`` at spaces (a hard cut only inside a huge token)."""
    pieces: list[str] = []
    while len(text) > size:
        cut = text.rfind(" ", 0, size + 1)
        if cut <= 0:
            cut = size
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        pieces.append(text)
    return pieces


def _units(para: Paragraph, size: int) -> list[str]:
    if len(para.text) <= size:
        return [para.text]
    units: list[str] = []
    for sentence in _sentences(para.text):
        units.extend(_split_words(sentence, size) if len(sentence) > size else [sentence])
    return units


def _tail(text: str, overlap: int) -> str:
    """The last whole sentences of ``text`` within ``overlap`` chars, else its last words."""
    if overlap <= 0:
        return ""
    picked = ""
    for sentence in reversed(_sentences(text)):
        candidate = f"{sentence} {picked}".strip()
        if len(candidate) > overlap:
            break
        picked = candidate
    if picked:
        return picked
    cut = text.find(" ", len(text) - overlap)
    return text[cut + 1 :] if cut >= 0 else ""


def chunk_paragraphs(paras: Sequence[Paragraph], size: int, overlap: int) -> list[Chunk]:
    """Pack paragraphs into chunks of at most about ``size`` characters.

    Chunks break between paragraphs, else between sentences, else between words.
    A new segment (a section start) begins a new chunk unless the chunk so far is
    under a third of ``size``: tiny sections ("Objective" and one sentence) join
    their neighbours instead of becoming fragments. A heading is never the last
    paragraph of a chunk. Within a segment, each chunk starts with up to ``overlap``
    characters (whole sentences where they fit) from the end of the previous one.

    Example:
        >>> paras = [Paragraph("One. Two.", (0, 0, 1, 1)), Paragraph("Three.", (0, 2, 1, 3))]
        >>> [c.text for c in chunk_paragraphs(paras, size=12, overlap=0)]
        ['One. Two.', 'Three.']
    """
    chunks: list[Chunk] = []
    entries: list[tuple[str, Paragraph, bool]] = []  # (unit, its paragraph, starts it)
    tail = ""

    def text_of(items: Sequence[tuple[str, Paragraph, bool]]) -> str:
        out = tail
        for unit, _, first in items:
            out = f"{out}{chr(10) if first else ' '}{unit}" if out else unit
        return out

    def emit(items: Sequence[tuple[str, Paragraph, bool]]) -> None:
        sizes: dict[int, int] = {}
        for unit, para, _ in items:
            sizes[para.segment] = sizes.get(para.segment, 0) + len(unit)
        bbox = _union(p.bbox for _, p, _ in items)
        chunks.append(Chunk(text_of(items), bbox, tuple(sizes.items())))

    prev: Paragraph | None = None
    for para in paras:
        new_segment = prev is not None and para.segment != prev.segment
        for n, unit in enumerate(_units(para, size)):
            current = len(text_of(entries)) if entries else 0
            full = entries and current + 1 + len(unit) > size
            if entries and (full or (new_segment and n == 0 and current >= size // 3)):
                carry: list[tuple[str, Paragraph, bool]] = []
                while full and len(carry) < len(entries) - 1 and entries[-1][1].heading:
                    carry.insert(0, entries.pop())
                emit(entries)
                keep = full and not carry and not (new_segment and n == 0)
                tail = _tail(text_of(entries), overlap) if keep else ""
                entries = carry
                if tail and len(text_of(entries)) + 1 + len(unit) > size:
                    tail = ""
            entries.append((unit, para, n == 0))
        prev = para
    if entries:
        emit(entries)
    return chunks
