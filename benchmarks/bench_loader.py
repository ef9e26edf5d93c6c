"""Benchmark the PDF loader on the development manuals.

Loads each manual N times in each mode and reports the median pages per second and
the median CPU seconds (threads and child processes included): ``text`` (text side
alone: a figure finder that finds nothing), ``ocr_off`` (the full loader, OCR
disabled), and the full loader with Tesseract OCR of raster figures through each
engine installed: ``ocr_libtesseract`` (in-process) and ``ocr_tesseract`` (the command).
Also reports the chunks each manual yields (count and median length of the content
chunks).

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


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _time(
    path: Path, config: LoaderConfig, finder: FigureFinderFactory | None, n: int
) -> tuple[float, float]:
    """Median wall and CPU seconds of ``n`` loads."""
    seconds, cpu = [], []
    for _ in range(n):
        started, cpu0 = time.perf_counter(), _cpu()
        load_pdf(path, config, figure_finder=finder)
        seconds.append(time.perf_counter() - started)
        cpu.append(_cpu() - cpu0)
    return statistics.median(seconds), statistics.median(cpu)


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
    for engine in ("libtesseract", "tesseract"):
        if ocr.resolve_engine(engine) == engine:
            modes[f"ocr_{engine}"] = (LoaderConfig(ocr=True, ocr_engine=engine), None)
    documents = []
    totals = {mode: [0, 0.0, 0.0] for mode in modes}
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
            seconds, cpu = _time(path, config, finder, args.repeat)
            row[f"{mode}_pages_per_s"] = round(loaded.pages / seconds, 1)
            row[f"{mode}_cpu_s"] = round(cpu, 2)
            totals[mode][0] += loaded.pages
            totals[mode][1] += seconds
            totals[mode][2] += cpu
        documents.append(row)

    overall: dict[str, float] = {}
    for m, (p, s, c) in totals.items():
        overall[f"{m}_pages_per_s"] = round(p / s, 1)
        overall[f"{m}_cpu_s"] = round(c, 2)
    result = {
        "benchmark": "loader",
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "ocr_engines": [m.removeprefix("ocr_") for m in modes if m.startswith("ocr_t")],
        "overall": overall,
        "documents": documents,
    }
    print(json.dumps(result, indent=2))
    summary = ", ".join(
        f"{m} {overall[f'{m}_pages_per_s']} pages/s {overall[f'{m}_cpu_s']} CPU-s" for m in modes
    )
    print(f"bench_loader: {summary} (median of {args.repeat})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
