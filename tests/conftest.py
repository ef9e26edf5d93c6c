"""Session-wide set-up that must happen before any test module is imported."""

from __future__ import annotations

from multimodal_rag.loading import ocr

# The in-process Tesseract engine is usable only when libtesseract loads before a library
# that brings its own OpenMP runtime (torch does; see loading/ocr.py). `mmrag ingest` of
# the offline profile loads it first; so does the test session, whatever order the test
# modules import torch in, so the OCR tests never depend on which test ran before them.
ocr.libtesseract_version()
