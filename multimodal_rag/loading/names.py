"""Document names that survive any file name on disk.

On POSIX a file name is bytes; Python hands names that are not valid UTF-8 to
us with "surrogate escapes" (``b"caf\\xe9.pdf"`` becomes ``"caf\\udce9.pdf"``),
and those strings cannot be encoded for Chroma, JSON or a terminal. The
document name keeps the bytes as they are on disk, writing each byte that is
not UTF-8 as ``\\xNN``, so the name is still unique, readable and stable.
"""

from __future__ import annotations

import os
from pathlib import PurePath

__all__ = ["doc_name", "printable"]


def printable(name: str) -> str:
    """``name`` with each undecodable byte written as ``\\xNN``; valid names are unchanged.

    Example:
        >>> printable("manual.pdf")
        'manual.pdf'
        >>> printable(os.fsdecode(b"caf\\xe9.pdf"))
        'caf\\\\xe9.pdf'
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", errors="backslashreplace")
    return name


def doc_name(path: PurePath) -> str:
    """The document name of a file: its (relative) path with ``/`` separators, printable.

    Example:
        >>> from pathlib import PurePosixPath
        >>> doc_name(PurePosixPath("animals/cat.md"))
        'animals/cat.md'
    """
    return printable(path.as_posix())
