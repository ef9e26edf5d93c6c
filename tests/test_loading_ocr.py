# mypy: disable-error-code="no-untyped-call"
"""OCR of figure labels: both Tesseract engines on printed words, and the skip rules."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pymupdf
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydantic import ValidationError

from multimodal_rag.config import LoaderConfig, OcrEngine
from multimodal_rag.loading import ocr
from multimodal_rag.loading.figures import FigureFinder
from multimodal_rag.records import Figure

ENGINES: tuple[OcrEngine, ...] = ("libtesseract", "tesseract")
SHARED = Path(__file__).resolve().parents[2] / "shared"
SCREENSHOT_PDF = SHARED / "corpora" / "gpredict-user-manual.pdf"


def _label_image(words: str, size: tuple[int, int] = (520, 160), font_px: int = 40) -> Image.Image:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    # A wire and a terminal, as in a wiring sketch (a frame all round hides big print
    # from Tesseract's page layout).
    if size[1] >= 100:
        y = size[1] - 8
        draw.line([(4, y), (size[0] // 2, y)], fill=(40, 90, 160), width=3)
        draw.ellipse([size[0] // 2, y - 6, size[0] // 2 + 12, y + 6], outline="black")
    draw.text((24, size[1] // 3), words, fill="black", font=ImageFont.load_default(font_px))
    return img


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _installed(engine: OcrEngine) -> bool:
    return ocr.resolve_engine(engine) == engine


def _figures(doc: pymupdf.Document, config: LoaderConfig) -> list[Figure]:
    finder = FigureFinder(doc, "t.pdf", config)
    figures: list[Figure] = []
    for page in doc:  # type: ignore[attr-defined]
        figures += finder.find(page, page.get_text("dict"))
    return finder.finish(figures, [])


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record the size of every image handed to OCR (the real OCR still runs)."""
    seen: list[tuple[int, int]] = []
    real: Callable[..., str] = ocr.ocr_words

    def counted(img: Image.Image, engine: OcrEngine = "auto") -> str:
        seen.append(img.size)
        return real(img, engine)

    monkeypatch.setattr(ocr, "ocr_words", counted)
    return seen


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_reads_printed_words(engine: OcrEngine) -> None:
    if not _installed(engine):
        pytest.skip(f"{engine} is not installed")
    words = ocr.ocr_words(_label_image("SENSOR GROUND 470"), engine).split()
    assert "SENSOR" in words
    assert "GROUND" in words
    assert "470" in words


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_reads_small_print_after_upscaling(engine: OcrEngine) -> None:
    if not _installed(engine):
        pytest.skip(f"{engine} is not installed")
    small = _label_image("PULSE COIL", size=(240, 45), font_px=16)
    assert ocr.ocr_words(small, engine).split() == ["PULSE", "COIL"]


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_finds_no_words_in_a_drawing(engine: OcrEngine) -> None:
    if not _installed(engine):
        pytest.skip(f"{engine} is not installed")
    img = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(img)
    for i in range(0, 400, 40):
        draw.line([(i, 0), (400 - i, 300)], fill=(30, 30, 30), width=3)
    assert ocr.ocr_words(img, engine) == ""


def test_engines_agree_on_clear_print() -> None:
    if not all(_installed(e) for e in ENGINES):
        pytest.skip("needs both the Tesseract library and command")
    img = _label_image("Azimuth Elevation Range")
    assert ocr.ocr_words(img, "libtesseract") == ocr.ocr_words(img, "tesseract")


@pytest.mark.slow
@pytest.mark.skipif(not SCREENSHOT_PDF.is_file(), reason=f"dev corpora not found at {SHARED}")
def test_box_text_and_confidences_read_the_words_the_tsv_reads() -> None:
    # The busiest figure of the dev manuals: a full-window screenshot of ~160 words, where
    # the TSV's iterator cost a third of the recognition (see _Engine._pairs).
    if not _installed("libtesseract"):
        pytest.skip("libtesseract is not installed")
    with pymupdf.open(SCREENSHOT_PDF) as doc:
        xref, _ = max(
            ((i[0], i[2] * i[3]) for p in doc for i in p.get_images()), key=lambda x: x[1]
        )
        img = Image.open(io.BytesIO(doc.extract_image(xref)["image"]))
    engine = ocr._thread_engine()
    scaled = ocr._scaled(img)
    lib = engine._capi.lib
    lib.TessBaseAPISetImage(engine._handle, scaled.tobytes(), *scaled.size, 1, scaled.width)
    lib.TessBaseAPISetSourceResolution(engine._handle, 70)
    try:
        assert lib.TessBaseAPIRecognize(engine._handle, None) == 0
        pairs = engine._pairs()
        tsv = ocr._tsv_pairs(engine._text("GetTsvText"))
    finally:
        lib.TessBaseAPIClear(engine._handle)
    assert pairs is not None and len(pairs) > 100
    assert [w for w, _ in pairs] == [w for w, _ in tsv]
    # The TSV keeps decimals, the array whole numbers: the same >= 60 cut either way.
    assert [c >= 60 for _, c in pairs] == [c >= 60 for _, c in tsv]
    words = " ".join(ocr._words(tsv))[: ocr.MAX_LABEL_CHARS]
    assert ocr.ocr_words(img, "libtesseract") == words


def test_in_process_engine_reads_from_several_threads() -> None:
    if not _installed("libtesseract"):
        pytest.skip("libtesseract is not installed")
    from concurrent.futures import ThreadPoolExecutor

    images = [_label_image(f"PORT {n}0{n}") for n in range(1, 7)]
    with ThreadPoolExecutor(3) as pool:
        read = list(pool.map(lambda im: ocr.ocr_words(im, "libtesseract"), images))
    assert read == [f"PORT {n}0{n}" for n in range(1, 7)]


def test_unknown_engine_is_refused_with_the_choices() -> None:
    with pytest.raises(ValidationError, match="libtesseract"):
        LoaderConfig(ocr_engine="paddle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="auto, libtesseract, tesseract"):
        ocr.resolve_engine("paddle")  # type: ignore[arg-type]


def test_auto_prefers_the_in_process_engine() -> None:
    expected = "libtesseract" if _installed("libtesseract") else ocr.resolve_engine("tesseract")
    assert ocr.resolve_engine("auto") == expected


@pytest.mark.parametrize(
    ("px", "bbox", "small"),
    [
        ((600, 11), (0, 0, 300, 20), True),  # a strip one text line cannot fit in
        ((11, 600), (0, 0, 20, 300), True),
        ((600, 300), (0, 0, 300, 5.5), True),  # readable pixels shown under 6 pt
        ((238, 42), (0, 0, 119, 21), False),  # en-eyes wiring sketch: "R1 R2 CS GND"
        ((12, 12), (0, 0, 6, 6), False),
        ((2000, 1500), (0, 0, 400, 300), False),
    ],
)
def test_too_small(
    px: tuple[int, int], bbox: tuple[float, float, float, float], small: bool
) -> None:
    assert ocr.too_small(px, bbox) is small


def test_text_already_in_pdf_needs_words_and_cover() -> None:
    box = (100.0, 100.0, 300.0, 200.0)  # 200 x 100 pt
    layer = [((100.0, y, 300.0, y + 10.0), "scanned words of a line") for y in range(100, 200, 12)]
    assert ocr.text_already_in_pdf(box, layer)
    # Labels typeset over a photo: words, but most of the image is still pixels.
    labels = [((110.0, 110.0, 150.0, 120.0), "GND"), ((200.0, 150.0, 260.0, 160.0), "+5V out")]
    assert not ocr.text_already_in_pdf(box, labels)
    # One big word covers a lot but is not the image's text.
    assert not ocr.text_already_in_pdf(box, [((100.0, 100.0, 300.0, 180.0), "LOGO")])
    # Lines outside the image count for nothing, lines across its edge only inside it.
    assert not ocr.text_already_in_pdf(
        box, [((r[0][0], r[0][1] + 200, r[0][2], r[0][3] + 200), r[1]) for r in layer]
    )
    # 9 lines of 10 x 100 pt inside: 45 % of the image.
    half = [((0.0, y, 200.0, y + 10.0), t) for (_, y, _, _), t in layer]
    assert ocr.text_already_in_pdf(box, half)
    # The same lines mostly off the image's left edge: 20 pt of each inside, 9 %.
    edge = [((-180.0, y, 120.0, y + 10.0), t) for (_, y, _, _), t in layer]
    assert not ocr.text_already_in_pdf(box, edge)


def test_finder_skips_a_scan_with_a_text_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    if ocr.resolve_engine("auto") is None:
        pytest.skip("no Tesseract engine is installed")
    seen = _counting(monkeypatch)
    doc = pymupdf.open()
    page = doc.new_page()
    scan = pymupdf.Rect(72, 100, 472, 400)
    page.insert_image(scan, stream=_png(_label_image("PIXEL WORDS", (800, 600), 60)))
    for i, y in enumerate(range(110, 400, 14)):  # an invisible OCR layer, as scanners add
        line = f"line {i} of the text layer that a scanner puts under the pixels"
        page.insert_text((76, y), line, fontsize=11, render_mode=3)
    page.insert_text((72, 420), "Figure 1: A scanned page", fontsize=10)
    figures = _figures(doc, LoaderConfig(ocr=True))
    assert len(figures) == 1
    assert seen == []
    assert "PIXEL" not in figures[0].labels_in_figure


def test_finder_reads_each_distinct_image_once(monkeypatch: pytest.MonkeyPatch) -> None:
    if ocr.resolve_engine("auto") is None:
        pytest.skip("no Tesseract engine is installed")
    seen = _counting(monkeypatch)
    doc = pymupdf.open()
    same = _png(_label_image("SQR2 SEN LED"))
    other = _png(_label_image("PIEZO MIC"))
    for n, stream in enumerate([same, same, other], start=1):
        page = doc.new_page()
        page.insert_image(pymupdf.Rect(100, 100, 360, 180), stream=stream)
        page.insert_text((100, 200), f"Figure {n}: Wiring number {n}", fontsize=10)
    figures = _figures(doc, LoaderConfig(ocr=True))
    assert [f.label for f in figures] == ["Figure 1", "Figure 2", "Figure 3"]
    assert len(seen) == 2
    assert [f.labels_in_figure for f in figures] == ["SQR2 SEN LED", "SQR2 SEN LED", "PIEZO MIC"]


def test_finder_reads_nothing_when_ocr_is_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = _counting(monkeypatch)
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(100, 100, 360, 180), stream=_png(_label_image("GND")))
    page.insert_text((100, 200), "Figure 1: Wiring", fontsize=10)
    assert _figures(doc, LoaderConfig(ocr=False))[0].labels_in_figure == ""
    assert seen == []


def test_library_runs_single_threaded_and_leaves_the_environment() -> None:
    if not _installed("libtesseract"):
        pytest.skip("libtesseract is not installed")
    import os

    before = os.environ.get("OMP_THREAD_LIMIT")
    assert ocr.ocr_words(_label_image("TX RX"), "libtesseract") == "TX RX"
    assert os.environ.get("OMP_THREAD_LIMIT") == before
    # Debian's build parallelises with OpenMP; each OCR thread must stay one thread.
    assert ocr._omp_thread_limit() in (None, 1)  # noqa: SLF001


def _ocr_in_child(queue: object) -> None:
    from multimodal_rag.loading.figures import _ocr_pool

    words = _ocr_pool().submit(ocr.ocr_words, _label_image("CH1 CH2")).result(timeout=60)
    queue.put(words)  # type: ignore[attr-defined]


def test_a_forked_worker_gets_its_own_ocr_threads() -> None:
    if ocr.resolve_engine("auto") is None:
        pytest.skip("no Tesseract engine is installed")
    import multiprocessing

    from multimodal_rag.loading.figures import _ocr_pool

    assert _ocr_pool().submit(ocr.ocr_words, _label_image("CH1 CH2")).result() == "CH1 CH2"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_ocr_in_child, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=90) == "CH1 CH2"
    finally:
        child.join(timeout=30)
    assert child.exitcode == 0
