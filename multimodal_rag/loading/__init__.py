"""Loaders: PDFs and folders of articles into text chunks and figures."""

from __future__ import annotations

import sys
from types import ModuleType


def import_pymupdf(*, extras: bool = True) -> None:
    """Import PyMuPDF without letting it load its optional layout analyser.

    ``import pymupdf`` imports ``pymupdf.layout`` when that package is installed
    (it is a dependency of recent PyMuPDF wheels), which loads an ONNX model:
    1 s and about 55 MB per process, for ``page.get_layout()``, which the
    loaders never call. The import is blocked only while PyMuPDF itself is
    imported, so ``import pymupdf.layout`` afterwards still works as usual.

    Args:
        extras: Let PyMuPDF import ``pymupdf4llm`` (which brings ONNX Runtime) for
            its ``to_markdown`` helpers. Loader processes, which run no code but
            the loaders, pass False: PyMuPDF then imports in 0.1 s and 47 MB
            instead of 0.4 s and 87 MB, and its own ``to_markdown`` helpers stay
            off in that process.
    """
    if "pymupdf" in sys.modules:
        return
    optional = ("pymupdf.layout",) if extras else ("pymupdf.layout", "pymupdf4llm")
    skipped = [m for m in optional if m not in sys.modules]
    for name in skipped:
        # A None entry makes that import raise ImportError, which PyMuPDF tolerates.
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import pymupdf  # noqa: F401
    finally:
        for name in skipped:
            if sys.modules.get(name, ModuleType("x")) is None:
                del sys.modules[name]
