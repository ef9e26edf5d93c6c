"""Reading a store that cannot be written: a read-only folder, or a full disk.

Chroma's embedded client writes when it opens a database (its SQLite journal
and migrations), so ``chromadb.PersistentClient`` on a read-only folder or on
a full disk fails with "attempt to write a readonly database" or "database or
disk is full" before anything is read. Commands that only read (``info``,
``query``, ``ask``, ``eval``) then open a private copy of the store in the
temporary folder instead; the figure images are not copied (they are read in
place). Commands that change the store refuse with one clear line.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import StoreError

__all__ = ["MIN_FREE_BYTES", "private_copy", "writable"]

logger = logging.getLogger(__name__)

MIN_FREE_BYTES = 1 << 20
"""Below this much free space a store is treated as unwritable: SQLite needs room for
its journal before it can even read."""

_NOT_COPIED = ("figures",)  # read in place; the copy needs only what Chroma opens


def writable(folder: str | Path) -> tuple[bool, str]:
    """Whether the store folder can be written, and if not, why (without writing).

    Example:
        >>> import tempfile
        >>> writable(tempfile.mkdtemp())
        (True, '')
    """
    path = Path(folder)
    if not os.access(path, os.W_OK):
        return False, "is read-only"
    try:
        stat = os.statvfs(path)
    except (OSError, AttributeError):  # no statvfs (Windows): let the write tell
        return True, ""
    if stat.f_bavail * stat.f_frsize < MIN_FREE_BYTES:
        return False, "is on a full disk"
    return True, ""


@contextmanager
def private_copy(folder: str | Path, why: str) -> Iterator[Path]:
    """A temporary copy of a store folder (without its figure images), removed afterwards.

    Args:
        folder: The store folder.
        why: What :func:`writable` said, for messages.

    Raises:
        StoreError: The copy cannot be made (often: the temporary folder is on
            the same full disk).
    """
    source = Path(folder)
    with tempfile.TemporaryDirectory(prefix="mmrag-readonly-") as tmp:
        copy = Path(tmp) / "store"
        try:
            shutil.copytree(source, copy, ignore=functools.partial(_skipped, source))
        except (OSError, shutil.Error) as e:
            raise StoreError(
                f"{why} and cannot be opened in place, and a private copy to read it from "
                f"cannot be made in {tmp} ({_reason(e)})",
                location=source,
            ) from e
        logger.info("store %s %s: reading a private copy in %s", source, why, copy)
        yield copy


def _skipped(source: Path, folder: str, names: list[str]) -> list[str]:
    return [n for n in names if Path(folder) == source and n in _NOT_COPIED]


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e).splitlines()[0] if str(e) else type(e).__name__
