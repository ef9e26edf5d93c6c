# mypy: disable-error-code="no-untyped-call"
"""FigureFinder on small PDFs built here: captions, grouping, decorations, bad images."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path

import pymupdf
import pytest
from PIL import Image, ImageDraw, ImageFont

from multimodal_rag.config import LoaderConfig
from multimodal_rag.loading import ocr
from multimodal_rag.loading.figure_text import (
    context_for,
    find_captions,
    page_lines,
    reference_index,
)
from multimodal_rag.loading.figures import FigureFinder
from multimodal_rag.records import Figure, TextChunk

NO_OCR = LoaderConfig(ocr=False)
BODY = (
    "The apparatus is connected as described in the previous section and the readings "
    "are taken at regular intervals of time."
)


def _png(w: int, h: int, seed: int = 0, text: str = "") -> bytes:
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    for i in range(0, w, 17):
        draw.line([(i, 0), (w - i, h)], fill=((i * 7 + seed * 50) % 256, 90, 160), width=2)
    if text:
        draw.rectangle([w // 8, h // 3, w * 7 // 8, h * 2 // 3], fill="white")
        draw.text((w // 6, h // 3 + 4), text, fill="black", font=ImageFont.load_default(48))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _text(page: pymupdf.Page, y: float, text: str, x: float = 72, size: float = 10) -> None:
    page.insert_text((x, y), text, fontsize=size)


def _run(
    doc: pymupdf.Document, config: LoaderConfig = NO_OCR, chunks: list[TextChunk] | None = None
) -> list[Figure]:
    finder = FigureFinder(doc, "t.pdf", config)
    figures: list[Figure] = []
    for page in doc:  # type: ignore[attr-defined]
        figures += finder.find(page, page.get_text("dict"))
    return finder.finish(figures, chunks or [])


def _chunks(doc: pymupdf.Document) -> list[TextChunk]:
    return [
        TextChunk("t.pdf", p.number + 1, None, " ".join(p.get_text().split()), index=p.number)
        for p in doc  # type: ignore[attr-defined]
    ]


def _decoded(fig: Figure) -> Image.Image:
    return Image.open(io.BytesIO(fig.image_png))


def test_raster_image_with_caption_below() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    _text(page, 90, BODY[:90])
    page.insert_image(
        pymupdf.Rect(150, 110, 450, 290), stream=_png(400, 240), keep_proportion=False
    )
    _text(page, 305, "Figure 1.2: The measuring set-up with the filter and its inte-")
    _text(page, 317, "grated amplifier.")
    _text(page, 345, BODY[:90])
    figs = _run(doc)
    assert len(figs) == 1
    fig = figs[0]
    assert (fig.page, fig.label, fig.kind, fig.parts) == (1, "Figure 1.2", "raster", 1)
    assert fig.caption == "The measuring set-up with the filter and its integrated amplifier."
    assert fig.bbox == (150.0, 110.0, 450.0, 290.0)
    assert _decoded(fig).size == (400, 240)  # the stored image, not a rendering


def test_vector_diagram_with_labels_and_caption_above() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    _text(page, 100, "Figure 2.1: Signal path of the receiver")
    shape = page.new_shape()
    shape.draw_circle((160, 150), 30)
    shape.finish(color=(0, 0, 0), width=1.5)
    shape.draw_circle((420, 150), 30)
    shape.draw_line((190, 150), (390, 150))
    shape.draw_polyline([(380, 145), (390, 150), (380, 155)])
    shape.draw_bezier((160, 180), (220, 250), (360, 250), (420, 180))
    shape.finish(color=(0, 0, 0), width=1.5)
    shape.commit()
    _text(page, 153, "Antenna", x=138, size=8)
    _text(page, 153, "Mixer", x=408, size=8)
    _text(page, 380, BODY[:90])
    figs = _run(doc)
    assert len(figs) == 1
    fig = figs[0]
    assert (fig.label, fig.caption, fig.kind) == (
        "Figure 2.1",
        "Signal path of the receiver",
        "vector",
    )
    assert "Antenna" in fig.labels_in_figure and "Mixer" in fig.labels_in_figure
    assert fig.bbox[1] > 100 and fig.bbox[3] < 370  # neither caption nor body text
    width, height = _decoded(fig).size
    assert width == pytest.approx((fig.bbox[2] - fig.bbox[0]) * 110 / 72, abs=2)


def _plot(page: pymupdf.Page, x: float, y: float) -> None:
    """A small line chart: axes, a zig-zag curve and a circle marker."""
    shape = page.new_shape()
    shape.draw_line((x, y), (x, y + 120))
    shape.draw_line((x, y + 120), (x + 200, y + 120))
    shape.draw_polyline([(x + 10 + 20 * i, y + 110 - (37 * i) % 90) for i in range(10)])
    shape.draw_circle((x + 150, y + 40), 8)
    shape.finish(color=(0, 0, 1), width=1)
    shape.commit()


def test_uncaptioned_drawing_is_a_figure_and_text_is_not() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    _text(page, 80, BODY[:90])
    _plot(page, 100, 150)
    _text(page, 320, BODY[:90])
    figs = _run(doc)
    assert [(f.label, f.kind) for f in figs] == [(None, "vector")]
    assert figs[0].bbox[1] < 151 and figs[0].bbox[3] > 269


def test_drawing_over_a_screenshot_makes_a_mixed_figure() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(
        pymupdf.Rect(100, 100, 400, 300), stream=_png(300, 200), keep_proportion=False
    )
    shape = page.new_shape()
    shape.draw_circle((250, 200), 40)  # a callout ring on the screenshot
    shape.draw_line((290, 200), (420, 150))
    shape.finish(color=(1, 0, 0), width=2)
    shape.commit()
    _text(page, 315, "Figure 6: The settings dialogue")
    figs = _run(doc)
    assert [(f.label, f.kind, f.parts) for f in figs] == [("Figure 6", "mixed", 1)]
    assert figs[0].bbox[2] > 419  # the callout line reaches past the image


def test_table_rules_and_underlines_are_not_figures() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    shape = page.new_shape()
    for y in (100, 120, 140, 160):
        shape.draw_line((72, y), (400, y))
    for x in (72, 200, 400):
        shape.draw_line((x, 100), (x, 160))
    shape.draw_line((72, 300), (250, 300))  # an underline
    shape.draw_rect(pymupdf.Rect(60, 400, 500, 480))  # a note box around text
    shape.finish(color=(0, 0, 0), width=0.5)
    shape.commit()
    _text(page, 115, "Pin     Voltage", x=80)
    _text(page, 440, BODY[:80], x=70)
    assert _run(doc) == []


def test_two_images_under_one_caption_are_one_figure() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(
        pymupdf.Rect(100, 100, 250, 200), stream=_png(300, 200, seed=1), keep_proportion=False
    )
    page.insert_image(
        pymupdf.Rect(250, 90, 450, 200), stream=_png(400, 220, seed=2), keep_proportion=False
    )
    _text(page, 215, "Figure 3: (a) Wiring (b) Result")
    figs = _run(doc)
    assert [(f.label, f.parts, f.kind) for f in figs] == [("Figure 3", 2, "raster")]
    assert figs[0].bbox == (100.0, 90.0, 450.0, 200.0)
    assert _decoded(figs[0]).size == pytest.approx((350 * 110 / 72, 110 * 110 / 72), abs=2)


def test_repeated_logo_and_small_icons_are_skipped() -> None:
    doc = pymupdf.open()
    logo = _png(300, 100, seed=3)
    for n in range(4):
        page = doc.new_page()
        page.insert_image(pymupdf.Rect(400, 20, 550, 70), stream=logo)
        _text(page, 100, BODY[:90])
        if n == 2:
            page.insert_image(
                pymupdf.Rect(72, 300, 110, 338), stream=_png(48, 48), keep_proportion=False
            )  # icon
            _text(page, 320, "Note: keep the icon out of the figures.", x=120)
            page.insert_image(
                pymupdf.Rect(150, 400, 450, 560),
                stream=_png(320, 200, seed=4),
                keep_proportion=False,
            )
    figs = _run(doc)
    assert [(f.page, f.bbox, f.label) for f in figs] == [(3, (150.0, 400.0, 450.0, 560.0), None)]


def test_list_of_figures_and_reference_sentences_are_not_captions() -> None:
    doc = pymupdf.open()
    lof = doc.new_page()
    _text(lof, 80, "List of Figures", size=14)
    _text(lof, 110, "Figure 1: Front panel of the unit ............................ 2")
    _text(lof, 124, "Figure 2: Rear panel of the unit ............................. 2")
    page = doc.new_page()
    page.insert_image(
        pymupdf.Rect(150, 100, 450, 260), stream=_png(300, 160, seed=5), keep_proportion=False
    )
    _text(page, 275, "Figure 1: Front panel of the unit")
    page.insert_image(
        pymupdf.Rect(150, 330, 450, 490), stream=_png(300, 160, seed=6), keep_proportion=False
    )
    _text(page, 505, "Figure 2 shows the rear panel, where the cables are plugged in.")
    _text(page, 560, "The connectors are described in Fig. 1 and in the next section.")
    figs = _run(doc, chunks=_chunks(doc))
    assert [(f.page, f.label) for f in figs] == [(2, "Figure 1"), (2, None)]
    assert figs[0].caption == "Front panel of the unit"
    assert "The connectors are described in Fig. 1 and in the next section." in figs[0].context_text
    assert "...." not in figs[0].context_text


def test_captions_pick_the_side_that_fits_the_page() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(
        pymupdf.Rect(150, 100, 450, 200), stream=_png(300, 100, seed=7), keep_proportion=False
    )
    _text(page, 215, "Figure 5.1: Upper plot")
    page.insert_image(
        pymupdf.Rect(150, 230, 450, 330), stream=_png(300, 100, seed=8), keep_proportion=False
    )
    _text(page, 345, "Figure 5.2: Lower plot")
    figs = _run(doc)
    assert [(f.label, f.bbox[1]) for f in figs] == [("Figure 5.1", 100.0), ("Figure 5.2", 230.0)]


def test_undecodable_and_oversized_images_are_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    bad = page.insert_image(
        pymupdf.Rect(100, 100, 300, 220), stream=_png(200, 120, seed=9), keep_proportion=False
    )
    _text(page, 235, "Figure 1: Broken")
    page.insert_image(
        pymupdf.Rect(100, 400, 300, 520), stream=_png(210, 130, seed=10), keep_proportion=False
    )
    _text(page, 535, "Figure 2: Fine")
    doc.update_stream(bad, b"this is not a JPEG", compress=False)
    doc.xref_set_key(bad, "Filter", "/DCTDecode")
    doc = pymupdf.open("pdf", doc.tobytes())
    with caplog.at_level(logging.WARNING, logger="multimodal_rag.loading.figures"):
        figs = _run(doc)
    assert [f.label for f in figs] == ["Figure 2"]
    assert any("cannot decode image" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="multimodal_rag.loading.figures"):
        figs = _run(doc, LoaderConfig(ocr=False, max_image_pixels=25_000))
    assert [f.label for f in figs] == []  # 27,300 pixels is over the limit
    assert any("exceeds the limit" in r.getMessage() for r in caplog.records)


def test_reference_index_finds_sentences_by_label() -> None:
    chunks = [
        TextChunk("t.pdf", 3, None, "As Figure 2.3 shows, the output rises. Fig. 2.30 differs."),
        TextChunk("t.pdf", 9, None, "See figure2.3(b) for the wiring. Nothing here."),
        TextChunk("t.pdf", 3, None, "As Figure 2.3 shows, the output rises."),
    ]
    index = reference_index(chunks)
    assert context_for("Figure 2.3", None, 9, index) == (
        "See figure2.3(b) for the wiring. As Figure 2.3 shows, the output rises."
    )
    assert context_for("Figure 2.30", None, 3, index) == "Fig. 2.30 differs."
    assert len(context_for("Figure 2.3", None, 3, index, max_chars=50)) <= 50


def test_caption_lines_joined_and_fig_normalised() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    _text(page, 100, "FIG. 7 Block diagram of the power")
    _text(page, 112, "supply unit")
    _text(page, 140, "Figure 8 shows the output stage.")
    caps = find_captions(page_lines(page.get_text("dict")))
    assert [(c.label, c.text) for c in caps] == [
        ("Figure 7", "Block diagram of the power supply unit")
    ]


needs_tesseract: Callable[..., object] = pytest.mark.skipif(
    ocr.tesseract_path() is None, reason="tesseract-ocr is not installed"
)


@needs_tesseract
def test_ocr_reads_pixel_labels_only_when_enabled(tmp_path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(
        pymupdf.Rect(100, 100, 400, 250),
        stream=_png(600, 300, text="GROUND"),
        keep_proportion=False,
    )
    _text(page, 265, "Figure 4: Terminal")
    with_ocr = _run(doc, LoaderConfig(ocr=True))
    without = _run(doc, NO_OCR)
    assert "GROUND" in with_ocr[0].labels_in_figure
    assert without[0].labels_in_figure == ""


def test_a_toolbar_strip_is_big_enough_but_an_icon_is_not() -> None:
    from multimodal_rag.loading.figure_regions import _big_enough

    assert _big_enough(333, 27)  # a toolbar screenshot: 27 px tall, 333 wide
    assert _big_enough(40, 40)
    assert not _big_enough(26, 26)  # a toolbar icon beside the text
    assert not _big_enough(200, 27)  # short and not long: a button crop
    assert not _big_enough(600, 12)  # a rule or a hairline, not a strip


def test_captions_in_a_side_column_are_linked_and_their_hyphens_undone() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    _text(page, 70, BODY[:90])
    page.insert_image(pymupdf.Rect(72, 100, 400, 300), stream=_png(660, 400, 1))
    page.insert_image(pymupdf.Rect(72, 330, 400, 530), stream=_png(660, 400, 2))
    page.insert_textbox(
        pymupdf.Rect(420, 100, 540, 200),
        "Figure 4.1: The main win-\ndow with the map editor\nand the tree editor",
        fontsize=8,
    )
    page.insert_textbox(
        pymupdf.Rect(420, 330, 540, 430), "Figure 4.2: The settings\ndialog", fontsize=8
    )
    figs = _run(doc)
    assert [(f.label, f.caption, round(f.bbox[1], -1)) for f in figs] == [
        ("Figure 4.1", "The main window with the map editor and the tree editor", 100.0),
        ("Figure 4.2", "The settings dialog", 330.0),
    ]


def test_two_captions_sharing_a_row_label_their_own_figures() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    _text(page, 70, BODY[:90])
    page.insert_image(pymupdf.Rect(72, 100, 290, 260), stream=_png(440, 320, 3))
    page.insert_image(pymupdf.Rect(320, 100, 538, 260), stream=_png(440, 320, 4))
    _text(page, 275, "Figure 5.1: Front panel", size=9)
    _text(page, 275, "Figure 5.2: Rear panel", x=320, size=9)
    lines = page_lines(page.get_text("dict"))
    assert [c.label for c in find_captions(lines)] == ["Figure 5.1", "Figure 5.2"]
    figs = _run(doc)
    assert [(f.label, f.caption, round(f.bbox[0], -1)) for f in figs] == [
        ("Figure 5.1", "Front panel", 70.0),
        ("Figure 5.2", "Rear panel", 320.0),
    ]


def _arrow(shape: pymupdf.Shape, p: pymupdf.Point, q: pymupdf.Point) -> None:
    shape.draw_line(p, q)
    length = abs(q - p)
    ux, uy = (q.x - p.x) / length, (q.y - p.y) / length
    a = pymupdf.Point(q.x - 6 * ux + 3 * uy, q.y - 6 * uy - 3 * ux)
    b = pymupdf.Point(q.x - 6 * ux - 3 * uy, q.y - 6 * uy + 3 * ux)
    shape.draw_polyline([q, a, b, q])


def test_a_box_and_arrow_diagram_with_rotated_labels_is_one_figure() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    for i in range(3):
        _text(page, 72 + 14 * i, BODY[:90])
    top = 130.0
    shape = page.new_shape()
    xs = [72, 200, 328, 456]
    for x in xs:
        shape.draw_rect(pymupdf.Rect(x, top, x + 80, top + 40))
    shape.draw_rect(pymupdf.Rect(200, top + 110, 408, top + 150))
    shape.finish(color=(0, 0, 0), width=1)
    for x in xs[:-1]:  # arrows stop short of the boxes, as drawing tools leave them
        _arrow(shape, pymupdf.Point(x + 92, top + 20), pymupdf.Point(x + 116, top + 20))
    _arrow(shape, pymupdf.Point(240, top + 98), pymupdf.Point(240, top + 52))
    _arrow(shape, pymupdf.Point(368, top + 52), pymupdf.Point(368, top + 98))
    shape.finish(color=(0, 0, 0), fill=(0, 0, 0), width=1)
    shape.commit()
    for x, word in zip(xs, ["Input", "Filter", "Encode", "Output"], strict=True):
        _text(page, top + 25, word, x=x + 10, size=9)
    _text(page, top + 135, "Controller", x=300, size=9)
    page.insert_text((230, top + 95), "status", fontsize=8, rotate=90)
    page.insert_text((380, top + 92), "commands", fontsize=8, rotate=90)
    page.insert_text((72, top + 190), "Figure 6.1: The processing chain and", fontname="hebo")
    page.insert_text((72, top + 202), "its controller", fontname="hebo")
    figs = _run(doc)
    assert len(figs) == 1
    fig = figs[0]
    assert (fig.label, fig.caption, fig.kind) == (
        "Figure 6.1",
        "The processing chain and its controller",
        "vector",
    )
    assert fig.bbox[1] <= top and fig.bbox[3] >= top + 150  # both rows of boxes
    assert "Controller" in fig.labels_in_figure


@pytest.mark.parametrize("text_between", [False, True])
def test_a_caption_below_a_drawing_after_an_empty_gap_is_linked(text_between: bool) -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    _text(page, 72, BODY[:90])
    shape = page.new_shape()
    for i in range(3):  # boxes and a rule only: a weak drawing, a figure only with a caption
        shape.draw_rect(pymupdf.Rect(100 + 130 * i, 120, 200 + 130 * i, 180))
    shape.draw_line(pymupdf.Point(200, 150), pymupdf.Point(230, 150))
    shape.finish(color=(0, 0, 0), width=1)
    shape.commit()
    if text_between:
        _text(page, 205, BODY[:90])
    page.insert_text((100, 245), "Figure 7.1: Three stages of the pipeline", fontname="hebo")
    figs = _run(doc)
    if text_between:  # running text between: the caption belongs to something else
        assert not [f for f in figs if f.label]
    else:
        assert [(f.label, f.kind) for f in figs] == [("Figure 7.1", "vector")]
