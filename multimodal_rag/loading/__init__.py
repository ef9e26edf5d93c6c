"""Loaders: PDFs and folders of articles into text chunks and figures."""

from __future__ import annotations

import sys
from types import ModuleType


def import_pymupdf() -> None:
    """Import PyMuPDF without letting it load its optional layout analyser.

    ``import pymupdf`` imports ``pymupdf.layout`` when that package is installed
    (it is a dependency of recent PyMuPDF wheels), which loads an ONNX model:
    1 s and about 55 MB per process, for ``page.get_layout()``, which the
    loaders never call. The import is blocked only while PyMuPDF itself is
    imported, so ``import pymupdf.layout`` afterwards still works as usual.
    """
    if "pymupdf" in sys.modules:
        return
    block = "pymupdf.layout" not in sys.modules
    if block:
        # A None entry makes that import raise ImportError, which PyMuPDF tolerates.
        sys.modules["pymupdf.layout"] = None  # type: ignore[assignment]
    try:
        import pymupdf  # noqa: F401
    finally:
        if block and sys.modules.get("pymupdf.layout", ModuleType("x")) is None:
            del sys.modules["pymupdf.layout"]
