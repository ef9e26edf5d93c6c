"""Optional OCR of pixel-only labels in raster figures, with Tesseract.

Two ways to reach the same Tesseract, chosen by ``LoaderConfig.ocr_engine``:

- ``"libtesseract"``: the system's Tesseract library (the one the command
  links) in-process through its C API and ctypes, one engine per OCR thread,
  kept for the life of the thread. The command loads its model for every
  image; on the dev manuals' 174 figure images this takes OCR from 30 to about
  13 CPU-seconds, and the words read are the same, byte for byte. ctypes
  releases the GIL, so a thread pool reads figures while pages are parsed.
- ``"tesseract"``: the ``tesseract`` command, PNG on stdin and TSV on stdout,
  one single-threaded process per image: the fallback where the library
  cannot be loaded.
- ``"auto"`` (default): the library when it loads, else the command.

The ``tesserocr`` wheel was measured too: as fast, but it bundles its own
Tesseract (5.5), whose page layout reads different words from these figures and
cost 0.026 dev MRR@10; ``rapidocr-onnxruntime`` took 20x the CPU time.

Images that cannot hold words (see :func:`too_small`) or whose words the PDF
already has as text (see :func:`text_already_in_pdf`) are not read at all.
Without Tesseract the loader still works; it logs once that OCR is off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from ..config import OcrEngine

if TYPE_CHECKING:
    from PIL import Image

    from ..records import BBox

logger = logging.getLogger(__name__)

OCR_ENGINES: tuple[OcrEngine, ...] = get_args(OcrEngine)

# Tesseract reads small print poorly (wiring sketches of ~240x45 px need
# upscaling), while pixels beyond a couple of thousand only cost time.
_MIN_SIDE_PX = 800
_MAX_SIDE_PX = 1600
_MIN_CONFIDENCE = 60.0
_TIMEOUT_S = 30
MAX_LABEL_CHARS = 1000
_WORD_RE = re.compile(r"\w")
# A line of print needs ~8 px of height to be read even after 4x upscaling, and
# a label shown under 6 pt on the page is not meant to be read.
MIN_TEXT_PX = 12
MIN_TEXT_PT = 6.0
# PDF text over a raster that covers this share of it already holds its words: the
# lines of a scanned page's OCR layer fill about half of it, margins and leading
# aside, while labels typeset over a photo or a screenshot cover a few per cent.
TEXT_COVER_SHARE = 0.3
MIN_PDF_WORDS = 3
_PSM_SPARSE_TEXT = 11
_TSV_WORD_LEVEL = "5"
_L_SEVERITY_NONE = 6
_warned = False
_local = threading.local()


def too_small(px: tuple[int, int], bbox: BBox) -> bool:
    """Whether an image is too small to hold a readable word.

    Args:
        px: Its size in pixels (width, height).
        bbox: Where it is drawn on the page, in points.

    Returns:
        True when either side has fewer than :data:`MIN_TEXT_PX` pixels or the
        drawn image is under :data:`MIN_TEXT_PT` points high or wide.

    Example:
        >>> too_small((600, 10), (0, 0, 300, 5))
        True
        >>> too_small((238, 42), (0, 0, 119, 21))
        False
    """
    shown = min(bbox[2] - bbox[0], bbox[3] - bbox[1])
    return min(px) < MIN_TEXT_PX or shown < MIN_TEXT_PT


def text_already_in_pdf(bbox: BBox, text_boxes: Iterable[tuple[BBox, str]]) -> bool:
    """Whether the PDF's own text over an image already carries its words.

    Args:
        bbox: The image on the page, in points.
        text_boxes: ``(bbox, text)`` of the page's text lines lying inside it.

    Returns:
        True when those lines hold at least :data:`MIN_PDF_WORDS` words and
        cover at least :data:`TEXT_COVER_SHARE` of the image's area (a scan
        with an OCR text layer, a photo with typeset labels), so OCR would
        only read them again.

    Example:
        >>> lines = [((0, y, 100, y + 10), "a line of words") for y in range(0, 100, 12)]
        >>> text_already_in_pdf((0, 0, 100, 100), lines)
        True
        >>> text_already_in_pdf((0, 0, 100, 100), [((0, 0, 40, 10), "GND")])
        False
    """
    area = max(1e-6, (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]))
    covered, words = 0.0, 0
    for (x0, y0, x1, y1), text in text_boxes:
        w = min(x1, bbox[2]) - max(x0, bbox[0])
        h = min(y1, bbox[3]) - max(y0, bbox[1])
        if w > 0 and h > 0:
            covered += w * h
            words += len(text.split())
    return words >= MIN_PDF_WORDS and covered >= TEXT_COVER_SHARE * area


@functools.lru_cache(maxsize=1)
def tesseract_path() -> str | None:
    """The ``tesseract`` executable that answers ``--version``, or None."""
    exe = shutil.which("tesseract")
    if exe is None:
        return None
    try:
        subprocess.run([exe, "--version"], capture_output=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return exe


class _CApi:
    """Tesseract's C API (``capi.h``) in the system library, through ctypes.

    ctypes releases the GIL for each foreign call, so threads recognise in parallel.
    """

    def __init__(self, lib: ctypes.CDLL) -> None:
        vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for name, args, res in (
            ("TessVersion", [], cp),
            ("TessBaseAPICreate", [], vp),
            ("TessBaseAPIDelete", [vp], None),
            ("TessBaseAPISetVariable", [vp, cp, cp], i),
            ("TessBaseAPIInit3", [vp, cp, cp], i),
            ("TessBaseAPISetPageSegMode", [vp, i], None),
            ("TessBaseAPISetImage", [vp, cp, i, i, i, i], None),
            ("TessBaseAPISetSourceResolution", [vp, i], None),
            ("TessBaseAPIRecognize", [vp, vp], i),
            ("TessBaseAPIGetTsvText", [vp, i], vp),
            ("TessBaseAPIGetLSTMBoxText", [vp, i], vp),
            ("TessBaseAPIAllWordConfidences", [vp], ctypes.POINTER(i)),
            ("TessDeleteIntArray", [ctypes.POINTER(i)], None),
            ("TessDeleteText", [vp], None),
            ("TessBaseAPIClear", [vp], None),
        ):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
        self.lib = lib
        self.version = (lib.TessVersion() or b"?").decode()


class _Engine:
    """One initialised Tesseract (English, sparse text) owned by one thread."""

    def __init__(self, capi: _CApi) -> None:
        self._capi = capi
        lib = capi.lib
        self._handle = lib.TessBaseAPICreate()
        # The library prints its diagnostics ("Estimating resolution as ...") to stderr,
        # which belongs to the CLI's progress and errors.
        lib.TessBaseAPISetVariable(self._handle, b"debug_file", os.devnull.encode())
        if lib.TessBaseAPIInit3(self._handle, None, b"eng") != 0:
            lib.TessBaseAPIDelete(self._handle)
            raise OSError("Tesseract found no English language data (tesseract-ocr-eng)")
        lib.TessBaseAPISetPageSegMode(self._handle, _PSM_SPARSE_TEXT)

    def read(self, img: Image.Image) -> list[tuple[str, float]] | None:
        """(word, confidence) pairs for a grayscale image, or None when recognition fails."""
        lib, data = self._capi.lib, img.tobytes()
        try:
            lib.TessBaseAPISetImage(self._handle, data, img.width, img.height, 1, img.width)
            # What the command assumes for a PNG without a resolution, so both read alike.
            lib.TessBaseAPISetSourceResolution(self._handle, 70)
            if lib.TessBaseAPIRecognize(self._handle, None) != 0:
                logger.warning("OCR failed on a %dx%d figure", img.width, img.height)
                return None
            pairs = self._pairs()
            return pairs if pairs is not None else _tsv_pairs(self._text("GetTsvText"))
        finally:
            lib.TessBaseAPIClear(self._handle)

    def _text(self, getter: str) -> list[str]:
        lib = self._capi.lib
        text = getattr(lib, f"TessBaseAPI{getter}")(self._handle, 0)
        if not text:
            return []
        try:
            return ctypes.string_at(text).decode("utf-8", "replace").split("\n")
        finally:
            lib.TessDeleteText(text)

    def _pairs(self) -> list[tuple[str, float]] | None:
        """The words from the box text, each with its confidence, or None if they
        cannot be paired.

        The TSV text walks the results with an iterator that restarts its paragraph
        from the top of the page at every line: on a full-window screenshot that
        took a third of the recognition time. The box text and the confidences walk
        the words once, in the same order (checked against the TSV on every dev
        figure: the same words).
        """
        lib = self._capi.lib
        words: list[str] = []
        symbols: list[str] = []
        for row in self._text("GetLSTMBoxText"):
            # "<symbol> <left> <bottom> <right> <top> <page>"; a space ends a word, a tab a line.
            symbol = row.rsplit(" ", 5)[0] if row.count(" ") >= 5 else ""
            if symbol in (" ", "\t") or not row:
                if symbols:
                    words.append("".join(symbols))
                    symbols = []
            elif symbol:
                symbols.append(symbol)
        if symbols:
            words.append("".join(symbols))
        confidences: list[float] = []
        array = lib.TessBaseAPIAllWordConfidences(self._handle)
        if array:
            try:
                while array[len(confidences)] >= 0:
                    confidences.append(float(array[len(confidences)]))
            finally:
                lib.TessDeleteIntArray(array)
        if len(confidences) != len(words):
            return None
        return list(zip(words, confidences, strict=True))

    def __del__(self) -> None:
        self._capi.lib.TessBaseAPIDelete(self._handle)


@functools.lru_cache(maxsize=1)
def _capi() -> _CApi | None:
    """The system's libtesseract (the one the ``tesseract`` command uses), or None."""
    names = [ctypes.util.find_library("tesseract"), "libtesseract.so.5", "libtesseract.so.4"]
    for name in dict.fromkeys(n for n in names if n):
        try:
            capi = _CApi(_load_single_threaded(name))
        except (OSError, AttributeError):
            continue
        if _omp_thread_limit() not in (None, 1):
            # Loaded earlier without the limit: every image would take four threads
            # that spin between calls, which costs more than a process per image.
            logger.info("libtesseract's OpenMP was set up by another library; using the command")
            return None
        _quiet_leptonica()
        return capi
    return None


def _load_single_threaded(name: str) -> ctypes.CDLL:
    """Load a library with OpenMP limited to one thread, as the command is run.

    Debian's libtesseract parallelises each text line over 4 OpenMP threads that
    spin while idle: on the dev manuals that doubles OCR's CPU time and, beside
    the OCR thread pool and the embedder, slows everything down. libgomp reads
    ``OMP_THREAD_LIMIT`` once, when it is loaded, so the variable is set only for
    the load and restored at once (wheels such as torch's bring their own libgomp).
    """
    saved = os.environ.get("OMP_THREAD_LIMIT")
    os.environ["OMP_THREAD_LIMIT"] = "1"
    try:
        return ctypes.CDLL(name)
    finally:
        if saved is None:
            del os.environ["OMP_THREAD_LIMIT"]
        else:
            os.environ["OMP_THREAD_LIMIT"] = saved


def _omp_thread_limit() -> int | None:
    """The thread limit of the system libgomp loaded in this process, or None if none is."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = {ln.split()[-1] for ln in maps.splitlines() if "/libgomp.so" in ln}
    if not paths:
        return None
    limits = [int(ctypes.CDLL(p).omp_get_thread_limit()) for p in sorted(paths)]
    return max(limits)


def _quiet_leptonica() -> None:
    """Leptonica reports harmless clipping errors on stderr; keep them off the CLI's."""
    name = ctypes.util.find_library("lept") or "liblept.so.5"
    try:
        ctypes.CDLL(name).setMsgSeverity(_L_SEVERITY_NONE)
    except (OSError, AttributeError):
        pass


def libtesseract_version() -> str | None:
    """Version of the Tesseract library used in-process, or None when it is missing.

    Example:
        >>> libtesseract_version() is None or libtesseract_version()[0].isdigit()
        True
    """
    capi = _capi()
    return capi.version if capi else None


def _thread_engine() -> _Engine:
    """This thread's engine, created on first use and kept with the thread."""
    engine: _Engine | None = getattr(_local, "engine", None)
    if engine is None:
        capi = _capi()
        if capi is None:
            raise OSError("libtesseract is not installed")
        engine = _local.engine = _Engine(capi)
    return engine


def resolve_engine(engine: OcrEngine) -> Literal["libtesseract", "tesseract"] | None:
    """The engine that ``engine`` means on this machine, or None when it is missing.

    Example:
        >>> resolve_engine("auto") in ("libtesseract", "tesseract", None)
        True
    """
    if engine not in OCR_ENGINES:
        raise ValueError(f"unknown OCR engine {engine!r}; choose one of: {', '.join(OCR_ENGINES)}")
    if engine in ("auto", "libtesseract") and _capi() is not None:
        return "libtesseract"
    if engine in ("auto", "tesseract") and tesseract_path() is not None:
        return "tesseract"
    return None


def ocr_enabled(setting: bool | None, engine: OcrEngine = "auto") -> bool:
    """Resolve ``LoaderConfig.ocr``: ``None`` means "when Tesseract is installed".

    Logs once per process when OCR is wanted or defaulted but unavailable.
    """
    global _warned
    if setting is False:
        return False
    if resolve_engine(engine) is not None:
        return True
    if not _warned:
        _warned = True
        need = {
            "auto": "Tesseract (tesseract-ocr) is not installed",
            "libtesseract": "the Tesseract library (libtesseract) is not installed",
            "tesseract": "the tesseract command (tesseract-ocr) is not installed",
        }[engine]
        (logger.warning if setting else logger.info)("OCR of figure labels is off: %s", need)
    return False


def _scaled(img: Image.Image) -> Image.Image:
    from PIL import Image as PILImage

    img = img.convert("L")
    side = max(img.size)
    scale = 1.0
    if side < _MIN_SIDE_PX:
        scale = min(4.0, _MIN_SIDE_PX / side)
    elif side > _MAX_SIDE_PX:
        scale = _MAX_SIDE_PX / side
    if scale != 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, PILImage.Resampling.LANCZOS)
    return img


def _tsv_pairs(rows: Sequence[str]) -> list[tuple[str, float]]:
    """(word, confidence) of each word row of Tesseract's TSV (the header is skipped)."""
    pairs: list[tuple[str, float]] = []
    for row in rows:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != _TSV_WORD_LEVEL:  # page, block, ... rows have no text
            continue
        try:
            pairs.append((cols[11].strip(), float(cols[10])))
        except ValueError:
            continue
    return pairs


def _words(pairs: Iterable[tuple[str, float]]) -> list[str]:
    """Confident words, each kept once when Tesseract repeats it."""
    words: list[str] = []
    for word, conf in pairs:
        word = word.strip()
        if conf < _MIN_CONFIDENCE or not _WORD_RE.search(word):
            continue
        if len(word) < 2 and not word.isdigit():
            continue
        if not words or words[-1] != word:
            words.append(word)
    return words


def _read_by_command(img: Image.Image) -> list[tuple[str, float]] | None:
    exe = tesseract_path()
    if exe is None:
        return None
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        proc = subprocess.run(
            [exe, "stdin", "stdout", "--psm", "11", "tsv"],
            input=buf.getvalue(),
            capture_output=True,
            timeout=_TIMEOUT_S,
            env=env,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as e:
        logger.warning("OCR failed on a figure: %s", e)
        return None
    return _tsv_pairs(proc.stdout.decode("utf-8", "replace").splitlines()[1:])


def _read_in_process(img: Image.Image) -> list[tuple[str, float]] | None:
    try:
        return _thread_engine().read(img)
    except OSError as e:
        logger.warning("OCR failed on a figure: %s", e)
        return None


def ocr_words(img: Image.Image, engine: OcrEngine = "auto") -> str:
    """Words Tesseract reads with confidence in an image, in reading order.

    Sparse-text mode (page segmentation 11) suits diagrams and screenshots,
    where labels are scattered rather than set in paragraphs.

    Args:
        img: The image, any mode; it is read in grayscale, small ones upscaled
            (up to 4x, to 800 px) and large ones scaled down (to 1,600 px).
        engine: Which binding to use (see :data:`OcrEngine`).

    Returns:
        The words, space-separated, at most :data:`MAX_LABEL_CHARS` characters;
        ``""`` when Tesseract is missing, fails or times out (logged). Never
        raises for a bad image.
    """
    which = resolve_engine(engine)
    if which is None:
        return ""
    scaled = _scaled(img)
    pairs = _read_in_process(scaled) if which == "libtesseract" else _read_by_command(scaled)
    return " ".join(_words(pairs or []))[:MAX_LABEL_CHARS]
