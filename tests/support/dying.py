"""Loaders that kill the worker process that runs them (for the parallel-ingest tests)."""

from __future__ import annotations

import os
from pathlib import Path

from multimodal_rag.config import LoaderConfig
from multimodal_rag.loading.pdf import load_pdf
from multimodal_rag.records import LoadedDocument


def die_once(marker: str, pdf: str) -> LoadedDocument:
    """Kill this process the first time (leaving ``marker``), load ``pdf`` the next."""
    if not Path(marker).exists():
        Path(marker).write_text("died")
        os._exit(9)
    return load_pdf(pdf, LoaderConfig(ocr=False))


def die_always(pdf: str) -> LoadedDocument:
    """Kill this process every time."""
    os._exit(9)


def counted(folder: str, pdf: str) -> LoadedDocument:
    """Load ``pdf``, leaving one file in ``folder`` per run (to count runs across processes)."""
    Path(folder, f"run-{os.getpid()}-{len(os.listdir(folder))}").write_text("ran")
    return load_pdf(pdf, LoaderConfig(ocr=False))


def stuck(seconds: float) -> LoadedDocument:
    """A load that takes ``seconds`` and then fails."""
    import time

    time.sleep(seconds)
    raise RuntimeError("a stuck load was waited for")
