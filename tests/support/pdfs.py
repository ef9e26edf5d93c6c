# mypy: disable-error-code="no-untyped-call"
"""A small, realistic, deterministic PDF manual for loader tests, built with PyMuPDF.

``make_manual_pdf(path)`` writes a 4-page A4 manual (595 x 842 pt):

====  ==================================================================================
page  content
====  ==================================================================================
1     heading "List of Figures" (18 pt bold) and two entries with dot leaders
      ("Figure 1.1: Front panel ... 2", "Figure 1.2: Signal flow ... 3"): not captions.
2     "1 Getting Started" (18 pt bold), "1.1 Front Panel" (14 pt bold); a paragraph with
      the ligatures U+FB01/U+FB02 ("ﬁrst", "conﬁgure", "ﬂow") and a line-end hyphenation
      "conti-" / "nue"; a raster image (a 160x100 PNG placed at :data:`RASTER_BBOX`) with
      the caption "Figure 1.1: Front panel of the widget with its connectors." below it.
3     "1.2 Signal Flow" (14 pt bold); a paragraph with a real hyphen "wave-form" inside a
      line and a line-end "Geiger-" / "Muller" (capital continuation: kept); a vector
      diagram (three boxes labelled "ADC", "DSP", "DAC" joined by lines, inside
      :data:`VECTOR_BBOX`) with the caption "Figure 1.2 Signal flow from input to output."
4     "2 Troubleshooting" (18 pt bold); a paragraph containing "as shown in Figure 1.1".
====  ==================================================================================

Every page has the running header "Acme Widget 3000 User Manual" at the top and its
page number as footer at the bottom. Body text is 11 pt Helvetica. With ``outline=True``
(the default) the PDF has an outline (:data:`OUTLINE`); ``outline=False`` leaves it out,
so sections must come from the heading fonts.

Example:
    >>> from tests.support.pdfs import make_manual_pdf  # doctest: +SKIP
    >>> pdf = make_manual_pdf(tmp_path / "manual.pdf")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PAGES = 4
HEADER = "Acme Widget 3000 User Manual"
OUTLINE: list[list[Any]] = [
    [1, "List of Figures", 1],
    [1, "1 Getting Started", 2],
    [2, "1.1 Front Panel", 2],
    [2, "1.2 Signal Flow", 3],
    [1, "2 Troubleshooting", 4],
]
"""The outline written with ``doc.set_toc``: ``[level, title, page]``."""

RASTER_BBOX = (150.0, 330.0, 450.0, 517.5)
VECTOR_BBOX = (100.0, 300.0, 500.0, 400.0)

EXPECTED_FIGURES: list[dict[str, Any]] = [
    {
        "page": 2,
        "label": "Figure 1.1",
        "caption": "Front panel of the widget with its connectors.",
        "kind": "raster",
        "bbox": RASTER_BBOX,
        "referred_from_page": 4,
    },
    {
        "page": 3,
        "label": "Figure 1.2",
        "caption": "Signal flow from input to output.",
        "kind": "vector",
        "bbox": VECTOR_BBOX,
        "labels_in_figure": ("ADC", "DSP", "DAC"),
    },
]
"""The figures a person sees in the manual (the List of Figures entries are not figures)."""

EXPECTED_SECTIONS: dict[str, int] = {
    "List of Figures": 1,
    "1 Getting Started": 2,
    "1.1 Front Panel": 2,
    "1.2 Signal Flow": 3,
    "2 Troubleshooting": 4,
}
"""Heading title -> page it starts on."""

LIGATURE_WORDS = ("first", "configure", "flow")
"""Words printed with ligature characters; extracted text must spell them plainly."""
HYPHEN_JOINED = "continue"
"""Printed as "conti-" at a line end and "nue" on the next line."""
HYPHEN_KEPT = ("wave-form", "Geiger-Muller")
"""Real hyphens that must survive (one inside a line, one before a capital at a line end)."""
REFERENCE_SENTENCE = "as shown in Figure 1.1"

_BODY = 11.0
_LEAD = 14.0
_LEFT = 72.0


class _Writer:
    """Writes lines of text top-down on one page with a TextWriter (keeps ligature glyphs)."""

    def __init__(self, page: Any, fonts: dict[str, Any], y: float) -> None:
        import pymupdf

        self.page = page
        self.fonts = fonts
        self.y = y
        self.tw = pymupdf.TextWriter(page.rect)

    def line(self, text: str, *, size: float = _BODY, bold: bool = False, x: float = _LEFT) -> None:
        self.y += size * 1.27
        self.tw.append(
            (x, self.y), text, font=self.fonts["hebo" if bold else "helv"], fontsize=size
        )

    def gap(self, points: float) -> None:
        self.y += points

    def flush(self) -> None:
        self.tw.write_text(self.page)


def _furniture(page: Any, fonts: dict[str, Any], number: int) -> None:
    import pymupdf

    tw = pymupdf.TextWriter(page.rect)
    tw.append((_LEFT, 50.0), HEADER, font=fonts["helv"], fontsize=9.0)
    tw.append((292.0, 800.0), str(number), font=fonts["helv"], fontsize=9.0)
    tw.write_text(page)


def _raster_png() -> bytes:
    """A 160x100 RGB test card: coloured quarters and a dark frame (deterministic bytes)."""
    import pymupdf

    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 160, 100), False)
    for y in range(100):
        for x in range(160):
            if x < 4 or y < 4 or x >= 156 or y >= 96:
                rgb = (20, 20, 20)
            else:
                rgb = ((220, 60, 40), (40, 160, 60), (40, 80, 200), (230, 200, 40))[
                    (x >= 80) + 2 * (y >= 50)
                ]
            pix.set_pixel(x, y, rgb)
    return bytes(pix.tobytes("png"))


def make_manual_pdf(path: Path, *, outline: bool = True) -> Path:
    """Write the test manual described in this module's docstring.

    Args:
        path: Where to write the PDF (its folder must exist).
        outline: Give the PDF an outline (bookmarks) matching :data:`OUTLINE`.

    Returns:
        ``path``.
    """
    import pymupdf

    doc = pymupdf.open()
    fonts = {"helv": pymupdf.Font("helv"), "hebo": pymupdf.Font("hebo")}
    for _ in range(PAGES):
        doc.new_page(width=595, height=842)
    # Page objects go stale when pages are added, so take them only once all exist.
    pages = [doc[i] for i in range(PAGES)]
    for number, page in enumerate(pages, start=1):
        _furniture(page, fonts, number)

    w = _Writer(pages[0], fonts, 80.0)
    w.line("List of Figures", size=18.0, bold=True)
    w.gap(12)
    w.line("Figure 1.1: Front panel of the widget . . . . . . . . . . . . . . . 2")
    w.line("Figure 1.2: Signal flow from input to output . . . . . . . . . . . 3")
    w.flush()

    w = _Writer(pages[1], fonts, 80.0)
    w.line("1 Getting Started", size=18.0, bold=True)
    w.gap(10)
    w.line("1.1 Front Panel", size=14.0, bold=True)
    w.gap(6)
    for text in (
        "Before the ﬁrst use, read this chapter completely. You will conﬁgure the",
        "widget once and the settings are kept when the power fails. To conti-",
        "nue with the setup, connect the sensor cable. The signal ﬂow is shown",
        "on the next page. The front panel carries every connector of the unit.",
    ):
        w.line(text)
    w.flush()
    page = pages[1]
    page.insert_image(pymupdf.Rect(RASTER_BBOX), stream=_raster_png())
    w = _Writer(page, fonts, RASTER_BBOX[3] + 4)
    w.line("Figure 1.1: Front panel of the widget with its connectors.", size=10.0, x=150.0)
    w.flush()

    page = pages[2]
    w = _Writer(page, fonts, 80.0)
    w.line("1.2 Signal Flow", size=14.0, bold=True)
    w.gap(6)
    for text in (
        "The input stage samples a wave-form at a fixed rate and passes it on to",
        "the processing stage. A radiation probe such as a Geiger-",
        "Muller tube can be connected to the auxiliary input of the unit.",
    ):
        w.line(text)
    w.flush()
    x0, y0, x1, y1 = VECTOR_BBOX
    shape = page.new_shape()
    shape.draw_rect(pymupdf.Rect(x0, y0, x1, y1))
    boxes = [
        pymupdf.Rect(x0 + 20 + i * 130, y0 + 30, x0 + 100 + i * 130, y0 + 70) for i in range(3)
    ]
    for box in boxes:
        shape.draw_rect(box)
    for left, right in zip(boxes, boxes[1:], strict=False):
        shape.draw_line(
            pymupdf.Point(left.x1, left.y0 + 20), pymupdf.Point(right.x0, right.y0 + 20)
        )
    shape.finish(color=(0, 0, 0), width=1.2)
    shape.commit()
    tw = pymupdf.TextWriter(page.rect)
    for box, label in zip(boxes, ("ADC", "DSP", "DAC"), strict=True):
        tw.append((box.x0 + 28, box.y0 + 24), label, font=fonts["helv"], fontsize=10.0)
    tw.write_text(page)
    w = _Writer(page, fonts, y1 + 6)
    w.line("Figure 1.2 Signal flow from input to output.", size=10.0, x=180.0)
    w.gap(20)
    w.line("The output stage drives the display and the alarm relay of the unit.")
    w.flush()

    w = _Writer(pages[3], fonts, 80.0)
    w.line("2 Troubleshooting", size=18.0, bold=True)
    w.gap(10)
    for text in (
        "If the display stays dark, check the power connector first. The connectors",
        "are on the front panel, as shown in Figure 1.1, next to the power switch.",
        "Replace the fuse only with the type printed on the rear label.",
    ):
        w.line(text)
    w.flush()

    if outline:
        doc.set_toc(OUTLINE)
    doc.set_metadata({"title": "Acme Widget 3000 User Manual", "creationDate": "", "modDate": ""})
    doc.save(path, garbage=3, deflate=True, no_new_id=True)
    doc.close()
    return path


def make_duplicate_image_pdf(path: Path) -> Path:
    """Two pages that print one raster image three times, each under its own caption.

    Manuals reuse an icon or a photo; the store must keep every figure, though their
    PNG bytes (and so their content addresses) are identical.
    """
    import pymupdf

    doc = pymupdf.open()
    fonts = {"helv": pymupdf.Font("helv"), "hebo": pymupdf.Font("hebo")}
    png = _raster_png()
    for _ in range(2):
        doc.new_page(width=595, height=842)
    pages = [doc[0], doc[1]]
    w = _Writer(pages[0], fonts, 80.0)
    w.line("Mounting the bracket", size=16.0, bold=True)
    w.gap(6)
    w.line("The bracket is fitted on the left side first, as Figure 1 shows, then on the")
    w.line("right side as in Figure 2. The same bracket holds the rear panel (Figure 3).")
    w.flush()
    for i, y in enumerate((180.0, 480.0)):
        pages[0].insert_image(pymupdf.Rect(150, y, 350, y + 125), stream=png)
        w = _Writer(pages[0], fonts, y + 130)
        w.line(f"Figure {i + 1}: Bracket on the {('left', 'right')[i]} side.", size=10.0, x=150)
        w.flush()
    pages[1].insert_image(pymupdf.Rect(150, 120, 350, 245), stream=png)
    w = _Writer(pages[1], fonts, 250.0)
    w.line("Figure 3: Bracket holding the rear panel.", size=10.0, x=150.0)
    w.gap(12)
    w.line("Tighten the four screws of the rear panel by hand, then a quarter turn more.")
    w.flush()
    doc.save(path, garbage=3, deflate=True, no_new_id=True)
    doc.close()
    return path
