"""Optional OCR of pixel-only labels in raster figures, with the Tesseract command.

Tesseract is run directly (PNG on stdin, TSV on stdout) rather than through
pytesseract: no temporary files, and each process is limited to one OpenMP
thread, which halves the time per image and lets figures be read in parallel.
Without Tesseract the loader still works; it logs once that OCR is off.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import shutil
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

# Tesseract reads small print poorly (wiring sketches of ~240x45 px need
# upscaling), while pixels beyond a couple of thousand only cost time.
_MIN_SIDE_PX = 800
_MAX_SIDE_PX = 1600
_MIN_CONFIDENCE = 60.0
_TIMEOUT_S = 30
MAX_LABEL_CHARS = 1000
_WORD_RE = re.compile(r"\w")
_warned = False


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


def ocr_enabled(setting: bool | None) -> bool:
    """Resolve ``LoaderConfig.ocr``: ``None`` means "when Tesseract is installed".

    Logs once per process when OCR is wanted or defaulted but unavailable.
    """
    global _warned
    if setting is False:
        return False
    if tesseract_path() is not None:
        return True
    if not _warned:
        _warned = True
        msg = "OCR of figure labels is off: the tesseract command (tesseract-ocr) is not installed"
        (logger.warning if setting else logger.info)(msg)
    return False


def _prepare(img: Image.Image) -> bytes:
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
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _words(tsv: str) -> list[str]:
    words: list[str] = []
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12:
            continue
        word = cols[11].strip()
        try:
            conf = float(cols[10])
        except ValueError:
            continue
        if conf < _MIN_CONFIDENCE or not _WORD_RE.search(word):
            continue
        if len(word) < 2 and not word.isdigit():
            continue
        if not words or words[-1] != word:
            words.append(word)
    return words


def ocr_words(img: Image.Image) -> str:
    """Words Tesseract reads with confidence in an image, in reading order.

    Sparse-text mode (``--psm 11``) suits diagrams and screenshots, where labels
    are scattered rather than set in paragraphs. Returns ``""`` when Tesseract
    is missing, fails or times out (logged); never raises for a bad image.
    """
    exe = tesseract_path()
    if exe is None:
        return ""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        proc = subprocess.run(
            [exe, "stdin", "stdout", "--psm", "11", "tsv"],
            input=_prepare(img),
            capture_output=True,
            timeout=_TIMEOUT_S,
            env=env,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as e:
        logger.warning("OCR failed on a figure: %s", e)
        return ""
    return " ".join(_words(proc.stdout.decode("utf-8", "replace")))[:MAX_LABEL_CHARS]
