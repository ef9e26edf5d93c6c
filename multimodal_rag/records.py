"""Plain records that flow through the pipeline.

The loader produces :class:`TextChunk` and :class:`Figure`; the index turns them
into LlamaIndex nodes in one place (:mod:`multimodal_rag.nodes`). Keeping them
as frozen dataclasses keeps the loader free of LlamaIndex and of any store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

BBox = tuple[float, float, float, float]
"""A rectangle in PDF points: (x0, y0, x1, y1), origin at the top left of the page."""

FigureKind = Literal["raster", "vector", "mixed"]
ChunkRole = Literal["content", "furniture", "contents"]


@dataclass(frozen=True)
class TextChunk:
    """A passage of a document's text that lies on one page.

    Attributes:
        doc: The document's file name (``"manual.pdf"``), the citation key.
        page: 1-based physical page index (PyMuPDF ``page.number + 1``).
        section: Title of the section the passage belongs to, when known.
        text: The passage, NFKC-normalised, line-end hyphenation undone.
        bbox: Union of the passage's blocks on the page, when known.
        index: Position of the chunk in the document (0-based, reading order).
        role: ``"furniture"`` for running headers and footers repeated on most
            pages, ``"contents"`` for table-of-contents and list-of-figures
            entries (titles with dot leaders and page numbers); both are kept
            for completeness but not indexed.
    """

    doc: str
    page: int
    section: str | None
    text: str
    bbox: BBox | None = None
    index: int = 0
    role: ChunkRole = "content"

    @property
    def chunk_id(self) -> str:
        """A stable id: document, page, position and a hash of the text."""
        digest = hashlib.sha1(self.text.encode("utf-8")).hexdigest()[:10]
        return f"{self.doc}::p{self.page}::t{self.index}::{digest}"


@dataclass(frozen=True)
class Figure:
    """A figure as a person sees it: one or more images or drawings under one caption.

    Attributes:
        doc: The document's file name.
        page: 1-based physical page index.
        bbox: Region of the page the figure covers (union of its parts).
        kind: ``"raster"`` (embedded images), ``"vector"`` (drawn with paths)
            or ``"mixed"``.
        image_png: The figure rendered (or extracted) as PNG bytes.
        label: Normalised label, e.g. ``"Figure 2.3"``, when captioned.
        caption: Caption text without the label, when captioned.
        labels_in_figure: Text inside the figure: vector text within its bbox
            and, where Tesseract is available, OCR of raster pixels.
        context_text: Sentences elsewhere in the document that refer to it.
        parts: Number of separate images/drawings grouped into this figure.
        section: Title of the section the figure sits in, when known.
        generated_caption: A caption produced by a captioning model for a
            figure that has none printed; never mixed into ``caption``.
    """

    doc: str
    page: int
    bbox: BBox
    kind: FigureKind
    image_png: bytes = field(repr=False)
    label: str | None = None
    caption: str | None = None
    labels_in_figure: str = ""
    context_text: str = ""
    parts: int = 1
    section: str | None = None
    generated_caption: str | None = None

    @property
    def image_sha(self) -> str:
        """Content address of the PNG (first 16 hex digits of its SHA-256)."""
        return hashlib.sha256(self.image_png).hexdigest()[:16]

    @property
    def figure_id(self) -> str:
        """A stable id: document, page and the image's content address."""
        return f"{self.doc}::p{self.page}::f::{self.image_sha}"

    @property
    def text(self) -> str:
        """Everything written about the figure, as one passage for text embedding."""
        parts = [
            " ".join(p for p in (self.label, self.caption) if p),
            self.generated_caption or "",
            self.labels_in_figure,
            self.context_text,
        ]
        return "\n".join(p for p in parts if p.strip())


@dataclass(frozen=True)
class LoadedDocument:
    """Everything the loader extracted from one document.

    Attributes:
        doc: File name (PDF) or folder-relative name (article) used in citations.
        path: Where it was read from.
        content_hash: SHA-256 of the source bytes; the index uses it to skip
            unchanged documents.
        pages: Number of pages (1 for an article).
        chunks: Text chunks in reading order (furniture included, marked).
        figures: Figures in page order.
        skipped_pages: 1-based pages that could not be read and were skipped.
    """

    doc: str
    path: str
    content_hash: str
    pages: int
    chunks: tuple[TextChunk, ...]
    figures: tuple[Figure, ...]
    skipped_pages: tuple[int, ...] = ()


HitKind = Literal["text", "figure"]


@dataclass(frozen=True)
class Hit:
    """One ranked search result, as ``mmrag query --json`` prints it.

    Attributes:
        rank: 1-based position in the fused ranking.
        kind: ``"text"`` for a passage, ``"figure"`` for a figure.
        doc: The document's file name.
        page: 1-based physical page index.
        figure: The figure's label (``"Figure 2.3"``), or ``None``.
        caption: The figure's caption, or ``None``.
        text: The passage, or the figure's text (caption, labels, references).
        image: Path of the figure's PNG, or ``None``.
        score: Fused score; comparable within one ranking only.
        node_id: Id of the underlying record in the store.
        section: Section title, when known.
        generated_caption: A figure's caption written by a captioning model (never
            printed in the manual), or ``None``.
    """

    rank: int
    kind: HitKind
    doc: str
    page: int
    figure: str | None
    caption: str | None
    text: str
    image: str | None
    score: float
    node_id: str = ""
    section: str | None = None
    generated_caption: str | None = None

    def to_json(self) -> dict[str, object]:
        """The hit as the CLI contract's JSON object."""
        return {
            "rank": self.rank,
            "kind": self.kind,
            "doc": self.doc,
            "page": self.page,
            "figure": self.figure,
            "caption": self.caption,
            "text": self.text,
            "image": self.image,
            "score": self.score,
        }
