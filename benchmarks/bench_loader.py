"""Benchmark the PDF loader on the development manuals.

Loads each manual N times in three modes and reports the median pages per second:
``text`` (text side alone: a figure finder that finds nothing), ``ocr_off`` (the
full loader, OCR disabled) and ``ocr_on`` (the full loader with Tesseract OCR of
raster figures, when Tesseract is installed). Also reports the chunks each manual
yields (count and median length of the content chunks).

Prints one JSON object on stdout and a one-line summary on stderr.

Usage:
    python benchmarks/bench_loader.py [--repeat 3] [--corpora ../shared/corpora] [PDF ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from multimodal_rag.config import LoaderConfig
from multimodal_rag.loading import ocr
from multimodal_rag.loading.pdf import FigureFinderFactory, load_pdf
from multimodal_rag.records import Figure, TextChunk

DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
MANUALS = ("en-eyes.pdf", "gpredict-user-manual.pdf")


class _NoFigures:
    """A figure finder that finds nothing, to time the text side alone."""

    def __init__(self, doc: Any, doc_name: str, config: LoaderConfig) -> None:
        del doc, doc_name, config

    def find(self, page: Any, text_dict: dict[str, Any]) -> list[Figure]:
        return []

    def finish(self, figures: list[Figure], chunks: Sequence[TextChunk]) -> list[Figure]:
        return figures


def _time(path: Path, config: LoaderConfig, finder: FigureFinderFactory | None, n: int) -> float:
    """Median seconds of ``n`` loads."""
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        load_pdf(path, config, figure_finder=finder)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdfs", nargs="*", type=Path, help="PDFs (default: the dev manuals)")
    parser.add_argument("--repeat", type=int, default=3, help="loads per mode (median)")
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    args = parser.parse_args(argv)
    paths = list(args.pdfs) or [args.corpora / name for name in MANUALS]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"bench_loader: missing {', '.join(missing)}", file=sys.stderr)
        return 2

    modes: dict[str, tuple[LoaderConfig, FigureFinderFactory | None]] = {
        "text": (LoaderConfig(ocr=False), _NoFigures),
        "ocr_off": (LoaderConfig(ocr=False), None),
    }
    if ocr.ocr_enabled(None):
        modes["ocr_on"] = (LoaderConfig(ocr=True), None)
    documents = []
    totals = {mode: [0, 0.0] for mode in modes}
    for path in paths:
        loaded = load_pdf(path, LoaderConfig(ocr=False))
        content = [len(c.text) for c in loaded.chunks if c.role == "content"]
        row: dict[str, Any] = {
            "doc": loaded.doc,
            "pages": loaded.pages,
            "content_chunks": len(content),
            "furniture_chunks": len(loaded.chunks) - len(content),
            "median_chunk_chars": statistics.median(content) if content else 0,
            "figures": len(loaded.figures),
        }
        for mode, (config, finder) in modes.items():
            seconds = _time(path, config, finder, args.repeat)
            row[f"{mode}_pages_per_s"] = round(loaded.pages / seconds, 1)
            totals[mode][0] += loaded.pages
            totals[mode][1] += seconds
        documents.append(row)

    overall = {f"{m}_pages_per_s": round(p / s, 1) for m, (p, s) in totals.items()}
    result = {
        "benchmark": "loader",
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tesseract": ocr.ocr_enabled(None),
        "overall": overall,
        "documents": documents,
    }
    print(json.dumps(result, indent=2))
    summary = ", ".join(f"{k.removesuffix('_pages_per_s')} {v} pages/s" for k, v in overall.items())
    print(f"bench_loader: {summary} (median of {args.repeat})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
