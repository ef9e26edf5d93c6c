"""Figures in PDF pages: raster images and vector drawings, grouped under their captions.

:class:`FigureFinder` is driven page by page by the PDF loader. Per page it
collects the images actually drawn and clusters the vector paths
(:mod:`.figure_regions`), finds captions (:mod:`.figure_text`), lets each
caption claim the graphics right above or below it, and turns each group into a
:class:`~multimodal_rag.records.Figure` with PNG pixels (:mod:`.figure_render`).
OCR of raster labels runs in background threads and is collected by
:meth:`FigureFinder.finish`, which also attaches the sentences that cite each figure.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..config import LoaderConfig
from ..cpus import usable_cpus
from ..errors import DocumentLoadError
from ..records import BBox, Figure, FigureKind, TextChunk
from . import ocr
from .figure_layout import DIRECTIONS, Group, assign, assign_beside, grow, other
from .figure_regions import (
    Element,
    area,
    clusters,
    image_key,
    intersection,
    raster_elements,
    union,
    vector_elements,
)
from .figure_render import extract_image, is_blank, render_region
from .figure_text import Caption, TextLine, context_for, find_captions, page_lines, reference_index
from .images import to_png

if TYPE_CHECKING:
    import pymupdf
    from PIL import Image

logger = logging.getLogger(__name__)

# Parts of one figure touch or nearly touch (en-eyes puts a sketch and a plot edge to edge).
GROUP_GAP_PT = 12.0


def _ocr_threads(processes: int = 1) -> int:
    """OCR threads for one of ``processes`` loading side by side: each Tesseract engine
    runs one thread (see .ocr), so a few figures are read at once, and the usable CPUs
    are split between the processes (at least one thread each)."""
    return max(1, min(4, usable_cpus() // max(1, processes)))


_OCR_WORKERS = _ocr_threads()


class FigureFinder:
    """Finds the figures of one PDF, page by page.

    Args:
        doc: The open document (pre-scanned once for images repeated on most pages).
        doc_name: File name used in the records.
        config: Loader settings (``render_dpi``, ``max_image_pixels``, ``ocr``).

    Example:
        >>> import pymupdf
        >>> doc = pymupdf.open()
        >>> page = doc.new_page()
        >>> finder = FigureFinder(doc, "empty.pdf", LoaderConfig(ocr=False))
        >>> finder.finish(finder.find(page, page.get_text("dict")), [])
        []
    """

    def __init__(self, doc: pymupdf.Document, doc_name: str, config: LoaderConfig) -> None:
        self._doc = doc
        self._name = doc_name
        self._config = config
        self._votes: Counter[str] = Counter()
        self._ocr = ocr.ocr_enabled(config.ocr, config.ocr_engine)
        self._pending: dict[tuple[int, BBox, str], list[Future[str]]] = {}
        self._read: dict[bytes, Future[str]] = {}  # pixels already sent to OCR
        self._infos: dict[int, list[dict[str, Any]]] = {}
        pages_with: Counter[bytes] = Counter()
        spots: Counter[tuple[bytes, tuple[int, ...]]] = Counter()
        # By index, not `for page in doc`: a page that cannot be loaded (a cycle in the
        # page tree) must cost that page, which the loader skips, not the document.
        for index in range(doc.page_count):
            try:
                page = doc.load_page(index)  # type: ignore[no-untyped-call]
                infos = self._image_infos(page)
            except _mupdf_errors():
                continue  # find() meets the broken page again and reports it
            self._infos[page.number] = infos
            keys = {image_key(i) for i in infos}
            pages_with.update(keys)
            spots.update({(image_key(i), tuple(round(v) for v in i["bbox"])) for i in infos})
        # Logos and page ornaments: on most pages, or on the same spot of several pages.
        many = max(3, doc.page_count // 2)
        self._decorations = {k for k, n in pages_with.items() if n >= many}
        self._decorations |= {k for (k, _), n in spots.items() if n >= 3}

    def find(self, page: pymupdf.Page, text_dict: dict[str, Any]) -> list[Figure]:
        """Figures drawn on one page.

        Args:
            page: The page.
            text_dict: ``page.get_text("dict")`` of that page (image blocks are ignored).

        Returns:
            The page's figures; a figure whose image cannot be decoded is skipped
            with a warning.

        Raises:
            DocumentLoadError: MuPDF cannot read the page's images or drawings.
        """
        page_rect: BBox = tuple(page.rect)
        lines = page_lines(text_dict)
        captions = find_captions(lines)
        try:
            infos = self._infos.pop(page.number, None)
            if infos is None:
                infos = self._image_infos(page)
            drawings = page.get_drawings()
        except _mupdf_errors() as e:
            raise DocumentLoadError(
                f"cannot read the page's graphics: {e}", path=self._name, page=page.number + 1
            ) from e
        rasters = raster_elements(infos, page_rect, self._decorations)
        vectors = vector_elements(drawings, page_rect, rasters, lines, [c.bbox for c in captions])
        groups = self._groups(rasters, vectors)
        claims = self._claim(captions, groups, lines)
        figures: list[Figure] = []
        claimed = {g for gs in claims.values() for g in gs}
        for ci, gis in claims.items():
            fig = self._figure(page, [groups[g] for g in gis], captions[ci], lines)
            figures += [fig] if fig else []
        for gi, group in enumerate(groups):
            if gi not in claimed and group.standalone:
                fig = self._figure(page, [group], None, lines)
                figures += [fig] if fig else []
        figures.sort(key=lambda f: (f.bbox[1], f.bbox[0]))
        return figures

    def _image_infos(self, page: pymupdf.Page) -> list[dict[str, Any]]:
        """The images drawn on a page, with pixel digests when that is safe.

        A digest needs the decoded pixels, so the sizes are read first (from the
        images' headers, nothing decoded): with an image over the pixel cap on the
        page, a 30000x30000 "decompression bomb" that would take a gigabyte to
        hash, the page's images go without digests (:func:`image_key` then falls
        back to their sizes) and :meth:`_pixels` refuses the big one.
        """
        cap = self._config.max_image_pixels
        infos: list[dict[str, Any]] = page.get_image_info(hashes=False)
        if any(int(i.get("width", 0)) * int(i.get("height", 0)) > cap for i in infos):
            return infos
        return page.get_image_info(hashes=True)

    def finish(self, figures: list[Figure], chunks: Sequence[TextChunk]) -> list[Figure]:
        """Attach OCR'd labels and referring sentences, once every page is done.

        Args:
            figures: Figures from :meth:`find` (fields other than the text ones may
                have been filled in by the caller, e.g. ``section``).
            chunks: The document's text chunks, for sentences citing a figure.

        Returns:
            The figures, in the same order, with ``labels_in_figure`` and
            ``context_text`` completed.
        """
        index = reference_index(chunks)
        out: list[Figure] = []
        for fig in figures:
            futures = self._pending.pop((fig.page, fig.bbox, fig.image_sha), [])
            words = [f.result() for f in futures]
            if any(words):
                labels = " ".join(w for w in [fig.labels_in_figure, *words] if w)
                fig = replace(fig, labels_in_figure=labels[: ocr.MAX_LABEL_CHARS])
            if fig.label:
                context = context_for(fig.label, fig.caption, fig.page, index)
                fig = replace(fig, context_text=context)
            out.append(fig)
        self._pending.clear()
        self._read.clear()
        return out

    def _groups(self, rasters: list[Element], vectors: list[Element]) -> list[Group]:
        """Touching rasters and drawings form one group; drawings over a raster annotate it."""
        free: list[Element] = []
        annotations: dict[int, list[Element]] = {}
        for v in vectors:
            hit = [i for i, r in enumerate(rasters) if intersection(v.bbox, r.bbox) > 0]
            if not hit:
                free.append(v)
            elif v.shapes:  # arrows or circles drawn over a screenshot
                annotations.setdefault(hit[0], []).append(v)
        # A weak drawing (a grid, a few boxes) only stands alone, under a caption.
        linked = [*rasters, *(v for v in free if v.strong)]
        groups: list[Group] = []
        for members in clusters([e.bbox for e in linked], GROUP_GAP_PT):
            elems = [linked[i] for i in members]
            notes = [a for i in members if i < len(rasters) for a in annotations.get(i, [])]
            groups.append(Group(elems, notes))
        groups += [Group([v]) for v in free if not v.strong]
        return groups

    def _claim(
        self, captions: list[Caption], groups: list[Group], lines: list[TextLine]
    ) -> dict[int, list[int]]:
        """Which groups each caption labels; captions below or above, as the page fits best."""
        if not captions or not groups:
            return {}
        tries = {d: assign(d, captions, groups, lines) for d in DIRECTIONS}
        best = max(DIRECTIONS, key=lambda d: (len(tries[d]), self._votes[d], d == "below"))
        if tries[best] and not tries[other(best)]:
            self._votes[best] += 1
        claims = tries[best]
        # A caption that found nothing in the usual direction may sit on the other side.
        rest = [i for i in range(len(captions)) if i not in claims]
        if rest:
            taken = {g for gs in claims.values() for g in gs}
            more = assign(other(best), captions, groups, lines, skip=set(claims), taken=taken)
            claims.update(more)
        rest = [i for i in range(len(captions)) if i not in claims]
        if rest:  # neither below nor above: a caption in a side column
            taken = {g for gs in claims.values() for g in gs}
            claims.update(assign_beside(captions, groups, lines, skip=set(claims), taken=taken))
        return claims

    def _figure(
        self,
        page: pymupdf.Page,
        groups: list[Group],
        caption: Caption | None,
        lines: list[TextLine],
    ) -> Figure | None:
        elements = [e for g in groups for e in g.elements]
        notes = [a for g in groups for a in g.annotations]
        bbox = union(g.bbox for g in groups)
        skip = set(caption.lines) if caption else set()
        inside = [
            ln
            for i, ln in enumerate(lines)
            if i not in skip and intersection(ln.bbox, grow(bbox, 2)) >= 0.5 * area(ln.bbox)
        ]
        kinds = {e.kind for e in elements} | ({"vector"} if notes else set())
        kind: FigureKind = (
            "mixed" if len(kinds) > 1 else ("raster" if "raster" in kinds else "vector")
        )
        if kind != "raster" and inside:
            bbox = union([bbox, *(ln.bbox for ln in inside)])  # axis labels poke out of drawings
        pno = page.number + 1
        try:
            images = self._pixels(page, elements, notes, bbox, parts=self._ocr)
        except DocumentLoadError as e:
            logger.warning("skipping a figure: %s", e)
            return None
        if is_blank(images[0]):
            return None
        fig = Figure(
            doc=self._name,
            page=pno,
            bbox=tuple(round(v, 2) for v in bbox),  # type: ignore[arg-type]
            kind=kind,
            image_png=to_png(images[0]),
            label=caption.label if caption else None,
            caption=(caption.text or None) if caption else None,
            labels_in_figure=" ".join(ln.text for ln in inside),
            parts=len(elements),
        )
        if self._ocr and kind != "vector":
            rasters = [e for e in elements if e.kind == "raster"]
            key = (fig.page, fig.bbox, fig.image_sha)
            self._pending[key] = [
                self._submit(img)
                for e, img in zip(rasters, images[1:], strict=True)
                if not ocr.too_small(e.px, e.bbox)
                and not ocr.text_already_in_pdf(e.bbox, ((ln.bbox, ln.text) for ln in lines))
            ]
        return fig

    def _submit(self, img: Image.Image) -> Future[str]:
        """OCR an image in the background, once per distinct image in the document."""
        digest = hashlib.blake2b(img.tobytes(), digest_size=16)
        digest.update(f"{img.mode}{img.size}".encode())
        seen = self._read.get(digest.digest())
        if seen is not None:
            return seen
        future = _ocr_pool().submit(ocr.ocr_words, img, self._config.ocr_engine)
        self._read[digest.digest()] = future
        return future

    def _pixels(
        self,
        page: pymupdf.Page,
        elements: list[Element],
        notes: list[Element],
        bbox: BBox,
        *,
        parts: bool,
    ) -> list[Image.Image]:
        """The figure's image first, then (``parts``) each raster part at full resolution.

        A lone image is extracted as stored; groups and drawings are rendered.
        The parts feed OCR, which reads small print better at native resolution.
        """
        cap, dpi, pno = self._config.max_image_pixels, self._config.render_dpi, page.number + 1
        single = len(elements) == 1 and not notes
        images: list[Image.Image] = []
        for e in elements:
            # Checked for every raster, rendered or not: rendering the region decodes it too.
            if e.kind == "raster" and e.px[0] * e.px[1] > cap:
                raise DocumentLoadError(
                    f"image of {e.px[0]}x{e.px[1]} pixels exceeds the limit of {cap} pixels",
                    path=self._name,
                    page=pno,
                )
        for e in elements:
            if e.kind != "raster" or not (parts or single):
                continue
            xref = 0 if e.masked else _xref_for(page, e)
            if xref:
                img = extract_image(self._doc, xref, max_pixels=cap, path=self._name, page=pno)
            else:  # inline, masked or ambiguous: render it at its own resolution
                native = min(300, max(dpi, round(72 * e.px[0] / max(1.0, e.bbox[2] - e.bbox[0]))))
                img = render_region(page, e.bbox, dpi=native, max_pixels=cap, path=self._name)
            images.append(img)
        if single and images:
            return [images[0], *images] if parts else images
        whole = render_region(page, bbox, dpi=dpi, max_pixels=cap, path=self._name)
        return [whole, *images]


def share_ocr_threads(processes: int) -> None:
    """Size this process's OCR threads for ``processes`` loading side by side (see
    :func:`_ocr_threads`), so that loader processes do not run more OCR threads than
    there are cores. Call it before the first OCR."""
    global _OCR_WORKERS
    _OCR_WORKERS = _ocr_threads(processes)
    _ocr_pool.cache_clear()


@functools.lru_cache(maxsize=1)
def _ocr_pool() -> ThreadPoolExecutor:
    """OCR threads shared by every document of the process; each keeps its engine."""
    return ThreadPoolExecutor(_OCR_WORKERS, thread_name_prefix="mmrag-ocr")


# A forked worker inherits the pool object but not its threads: work sent to it would
# wait forever, so a child starts its own pool.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ocr_pool.cache_clear)


def _mupdf_errors() -> tuple[type[Exception], ...]:
    import pymupdf

    return (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase)


def _xref_for(page: pymupdf.Page, e: Element) -> int:
    """The xref of a drawn image, when its pixel size identifies it among the page's images."""
    listed = page.get_images(full=True)  # type: ignore[no-untyped-call]
    found = [img[0] for img in listed if (img[2], img[3]) == e.px]
    return found[0] if len(set(found)) == 1 else 0
