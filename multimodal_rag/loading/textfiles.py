"""Decode the bytes of a text article: UTF-8, UTF-16/32 by their byte-order mark, else refuse.

Editors on Windows save "Unicode" text as UTF-16, with a byte-order mark and
usually without one when exported by tools; read as UTF-8 or cp1252 such a
file becomes text full of NUL characters that embeds as noise. Files that are
neither UTF-8 nor UTF-16 are read as cp1252 (the usual legacy encoding of
Western text, which decodes any byte), except when they hold NUL bytes: then
they are binary, or in an encoding we cannot guess, and are refused.
"""

from __future__ import annotations

import codecs
import logging
from pathlib import Path

from ..errors import DocumentLoadError

__all__ = ["decode_text"]

logger = logging.getLogger(__name__)

# Longest marks first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# In UTF-16 text of a Latin script about every other byte is NUL; in any text
# encoding worth reading as such, NUL bytes are absent.
_UTF16_NUL_SHARE = 0.3
_SAMPLE = 4096


def _utf16_without_bom(raw: bytes) -> str | None:
    sample = raw[: _SAMPLE * 2]
    pairs = len(sample) // 2
    if len(raw) % 2 or not pairs:
        return None
    even = sample[0::2].count(0) / pairs  # high byte first: big-endian
    odd = sample[1::2].count(0) / pairs
    if max(even, odd) < _UTF16_NUL_SHARE or min(even, odd) > 0.05:
        return None
    try:
        return raw.decode("utf-16-be" if even > odd else "utf-16-le")
    except UnicodeDecodeError:
        return None


def decode_text(raw: bytes, *, path: str | Path) -> str:
    """The text of an article file.

    Args:
        raw: The file's bytes.
        path: The file, for messages.

    Returns:
        The decoded text, without a byte-order mark.

    Raises:
        DocumentLoadError: A byte-order mark whose encoding does not decode the
            bytes, or NUL bytes in a file that is not UTF-16.

    Example:
        >>> decode_text("\\ufeffCaf\\u00e9".encode("utf-16-le"), path="a.md")
        'Café'
        >>> decode_text("Café".encode("utf-16-le"), path="a.md")
        'Café'
    """
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom) :].decode(encoding)
            except UnicodeDecodeError as e:
                raise DocumentLoadError(
                    f"starts with a {encoding} byte-order mark but is not valid {encoding} "
                    f"(byte {e.start + len(bom)}); save it as UTF-8",
                    path=path,
                ) from e
    if b"\0" in raw:
        text = _utf16_without_bom(raw)
        if text is not None:
            logger.info("%s: read as UTF-16 (no byte-order mark)", path)
            return text
        raise DocumentLoadError(
            "holds NUL bytes: binary data or an unknown text encoding; save it as UTF-8",
            path=path,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        logger.info("%s: not UTF-8, read as cp1252", path)
        return raw.decode("cp1252", errors="replace")
