"""Text around figures: page lines, caption detection and sentences that refer to a figure.

Used by :mod:`multimodal_rag.loading.figures`; works on ``page.get_text("dict")``
output, so it needs no PyMuPDF import of its own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..records import BBox, TextChunk

# "Figure 2.3", "Fig. 12", "FIGURE A.1", "figure5.8", "Figure 3-2", "Fig. 4b".
_NUM = r"(?:[A-Z]\.)?\d+(?:[.\-\u2010\u2013]\d+)*[a-z]?"
_CAPTION_RE = re.compile(
    rf"^\s*(?P<word>fig(?:ure)?\.?)\s*(?P<num>{_NUM})(?![\d])"
    r"\s*(?P<sep>[:.|\-\u2013\u2014]?)\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_MENTION_RE = re.compile(rf"\b(?:fig(?:ure)?s?\.?)\s*(?P<num>{_NUM})(?![\d])", re.IGNORECASE)
# "Figure 2.1: Caption ........ 9": an entry of a List of Figures, not a caption.
_LEADER_RE = re.compile(r"(?:\.\s?){4,}\s*\d+\s*$|\s{3,}\d+\s*$")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_WS_RE = re.compile(r"\s+")

MAX_CAPTION_LINES = 8
MAX_CONTEXT_CHARS = 800
MAX_SENTENCE_CHARS = 300


@dataclass(frozen=True)
class TextLine:
    """One visual line of text: the PDF lines of one block that share a baseline."""

    bbox: BBox
    text: str
    size: float
    first_in_block: bool


@dataclass(frozen=True)
class Caption:
    """A figure caption found on a page.

    Attributes:
        label: Normalised label, ``"Figure 2.3"``.
        text: Caption text without the label.
        bbox: Union of the caption's lines.
        size: Font size of its first line.
        lines: Indices (into the page's lines) of the lines it spans.
    """

    label: str
    text: str
    bbox: BBox
    size: float
    lines: tuple[int, ...]


def normalize_text(text: str) -> str:
    """NFKC-normalise (ligatures) and collapse whitespace."""
    return _WS_RE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def join_lines(parts: Iterable[str]) -> str:
    """Join wrapped lines, undoing line-end hyphenation ("inte-" + "grated")."""
    out = ""
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if out.endswith("-") and len(out) > 1 and out[-2].isalpha() and part[0].islower():
            out = out[:-1] + part
        else:
            out = f"{out} {part}" if out else part
    return normalize_text(out)


def normalize_label(num: str) -> str:
    """The canonical label for a figure number: ``"Figure 2.3"``."""
    return "Figure " + re.sub(r"[\u2010\u2013]", "-", num)


def page_lines(text_dict: dict[str, Any]) -> list[TextLine]:
    """Visual lines of a page in top-to-bottom order.

    PyMuPDF splits one printed line into several ``line`` entries when spacing
    is wide (justified text, "Figure 5.8:" then the caption); these are joined
    left to right so a caption's label and its text form one line.
    """
    out: list[TextLine] = []
    for block in text_dict.get("blocks", []):
        if block.get("type", 0) != 0:
            continue
        rows: list[list[dict[str, Any]]] = []
        for line in block.get("lines", []):
            y0, y1 = line["bbox"][1], line["bbox"][3]
            mid = (y0 + y1) / 2
            for row in rows:
                ry0, ry1 = row[0]["bbox"][1], row[0]["bbox"][3]
                if ry0 <= mid <= ry1:
                    row.append(line)
                    break
            else:
                rows.append([line])
        for i, row in enumerate(rows):
            row.sort(key=lambda ln: ln["bbox"][0])
            for k, part in enumerate(_caption_segments(row)):
                text = normalize_text(
                    " ".join("".join(s["text"] for s in ln["spans"]) for ln in part)
                )
                if not text:
                    continue
                sizes = [s["size"] for ln in part for s in ln["spans"] if s["text"].strip()]
                bbox = (
                    min(ln["bbox"][0] for ln in part),
                    min(ln["bbox"][1] for ln in part),
                    max(ln["bbox"][2] for ln in part),
                    max(ln["bbox"][3] for ln in part),
                )
                out.append(TextLine(bbox, text, max(sizes) if sizes else 0.0, i == 0 or k > 0))
    out = [part for ln in out for part in split_caption_row(ln)]
    out.sort(key=lambda ln: (round(ln.bbox[1]), ln.bbox[0]))
    return out


def _line_text(line: dict[str, Any]) -> str:
    return normalize_text("".join(s["text"] for s in line["spans"]))


def _caption_segments(row: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A row's PDF lines, cut before each one that starts a caption when the row does.

    Captions of figures set side by side share a row (and a block): each is its
    own line, so it is matched to the figure above it, not merged with its neighbour.
    """
    if len(row) < 2 or _CAPTION_RE.match(_line_text(row[0])) is None:
        return [row]
    parts: list[list[dict[str, Any]]] = [[row[0]]]
    for ln in row[1:]:
        if _CAPTION_RE.match(_line_text(ln)):
            parts.append([ln])
        else:
            parts[-1].append(ln)
    return parts


# A second caption label inside a line: "Figure 5.1: Front panel   Figure 5.2: Rear panel".
_SECOND_LABEL_RE = re.compile(rf"\s(?=fig(?:ure)?\.?\s*{_NUM}(?![\d])\s*[:.|\-\u2013\u2014])", re.I)


def split_caption_row(line: TextLine) -> list[TextLine]:
    """Split a line holding the captions of figures set side by side into one line each.

    Two captions printed on one row share a text block, and often one PDF line;
    each part gets the share of the line's width its characters take, which is
    enough to tell which figure it sits under.

    Example:
        >>> row = TextLine((72, 270, 500, 280), "Figure 5.1: Front Figure 5.2: Rear", 9, True)
        >>> [(ln.text, round(ln.bbox[0])) for ln in split_caption_row(row)]
        [('Figure 5.1: Front', 72), ('Figure 5.2: Rear', 286)]
    """
    if _CAPTION_RE.match(line.text) is None:
        return [line]
    cuts = [m.start() for m in _SECOND_LABEL_RE.finditer(line.text) if m.start() > 0]
    if not cuts:
        return [line]
    x0, y0, x1, y1 = line.bbox
    width, n = x1 - x0, len(line.text)
    out: list[TextLine] = []
    for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, n], strict=True)):
        text = line.text[a:b].strip()
        if text:
            box = (x0 + width * a / n, y0, x0 + width * b / n, y1)
            out.append(TextLine(box, text, line.size, line.first_in_block or i > 0))
    return out


def _caption_start(line: TextLine, prev: TextLine | None) -> tuple[str, str] | None:
    """Label and first text of a caption starting on ``line``, or None for running text."""
    m = _CAPTION_RE.match(line.text)
    if m is None or _LEADER_RE.search(line.text):
        return None
    word, sep, rest = m.group("word"), m.group("sep"), m.group("rest")
    if not line.first_in_block and prev is not None and not prev.text.endswith((".", ":")):
        return None  # the label continues a sentence of the previous line
    # "Figure 2.3 shows ...", "figure 2.6 with ...", "Figure2.18(c) shows ...": references.
    head = re.sub(r"^(?:\(\w{1,3}\)\s*)+", "", rest)
    if not sep and head[:1].islower():
        return None
    if word[0].islower() and sep != ":":
        return None
    return normalize_label(m.group("num")), rest


def find_captions(lines: Sequence[TextLine]) -> list[Caption]:
    """Captions on a page: a label line plus the lines wrapped under it."""
    captions: list[Caption] = []
    used: set[int] = set()
    for i, line in enumerate(lines):
        if i in used:
            continue
        start = _caption_start(line, lines[i - 1] if i else None)
        if start is None:
            continue
        label, first = start
        parts, idx = [first], [i]
        x0, y0, x1, y1 = line.bbox
        last = line
        for j in range(i + 1, len(lines)):
            if len(idx) >= MAX_CAPTION_LINES:
                break
            nxt = lines[j]
            gap = nxt.bbox[1] - last.bbox[3]
            if gap < -0.5 * max(line.size, 1.0) or nxt.bbox[0] > x1 or nxt.bbox[2] < x0:
                continue  # beside the caption (another column), not under it
            if (
                gap > 0.8 * max(line.size, 1.0)
                or abs(nxt.size - line.size) > 0.6
                or _CAPTION_RE.match(nxt.text)
            ):
                break
            parts.append(nxt.text)
            idx.append(j)
            x0, y0 = min(x0, nxt.bbox[0]), min(y0, nxt.bbox[1])
            x1, y1 = max(x1, nxt.bbox[2]), max(y1, nxt.bbox[3])
            last = nxt
        used.update(idx)
        captions.append(Caption(label, join_lines(parts), (x0, y0, x1, y1), line.size, tuple(idx)))
    return captions


def mentioned_labels(sentence: str) -> set[str]:
    """Normalised labels of the figures a sentence mentions."""
    return {normalize_label(m.group("num")) for m in _MENTION_RE.finditer(sentence)}


def reference_index(chunks: Sequence[TextChunk]) -> dict[str, list[tuple[int, str]]]:
    """Map each mentioned figure label to the (page, sentence) pairs that mention it.

    Sentences are deduplicated (chunks overlap) and List-of-Figures entries skipped.
    """
    index: dict[str, list[tuple[int, str]]] = {}
    seen: set[str] = set()
    for chunk in chunks:
        if chunk.role != "content" or not _MENTION_RE.search(chunk.text):
            continue
        for sentence in _SENTENCE_END_RE.split(normalize_text(chunk.text)):
            if sentence in seen or _LEADER_RE.search(sentence) or "...." in sentence:
                continue
            labels = mentioned_labels(sentence)
            if not labels:
                continue
            seen.add(sentence)
            for label in labels:
                index.setdefault(label, []).append((chunk.page, sentence))
    return index


def context_for(
    label: str,
    caption: str | None,
    page: int,
    index: dict[str, list[tuple[int, str]]],
    max_chars: int = MAX_CONTEXT_CHARS,
) -> str:
    """Sentences that refer to ``label``, nearest pages first, within ``max_chars``.

    The caption itself (which appears in the page text too) is not a reference.
    """
    cap_key = normalize_text(caption or "").casefold()[:40]
    picked: list[str] = []
    total = 0
    for _, sentence in sorted(index.get(label, []), key=lambda ps: abs(ps[0] - page)):
        m = _CAPTION_RE.match(sentence)
        if m and cap_key and cap_key in sentence.casefold():
            continue
        if len(sentence) > MAX_SENTENCE_CHARS:
            sentence = sentence[: MAX_SENTENCE_CHARS - 1].rstrip() + "…"
        if total + len(sentence) > max_chars:
            break
        picked.append(sentence)
        total += len(sentence) + 1
    return " ".join(picked)
