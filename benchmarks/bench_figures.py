# mypy: disable-error-code="no-untyped-call"
"""Figure detection speed on the dev manuals, OCR off and on. Prints one JSON document.

Run: python benchmarks/bench_figures.py [--repeat 3] [--no-ocr]

For each manual in ../shared/corpora the whole FigureFinder pass is timed
(constructor pre-scan, ``find`` on every page given ``page.get_text("dict")``,
``finish`` waiting for OCR), best of ``--repeat`` runs. Text extraction is
timed separately and not counted, since the PDF loader does it anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from multimodal_rag.config import LoaderConfig
from multimodal_rag.loading import ocr
from multimodal_rag.loading.figures import FigureFinder

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def run(pdf: Path, config: LoaderConfig) -> dict[str, Any]:
    """One timed pass over a PDF."""
    import pymupdf

    with pymupdf.open(pdf) as doc:
        dicts = [page.get_text("dict") for page in doc]  # the loader's job, not timed
        start = time.perf_counter()
        finder = FigureFinder(doc, pdf.name, config)
        figures = []
        for page, text_dict in zip(doc, dicts, strict=True):
            figures += finder.find(page, text_dict)
        figures = finder.finish(figures, [])
        seconds = time.perf_counter() - start
        return {
            "pages": doc.page_count,
            "figures": len(figures),
            "seconds": round(seconds, 3),
            "pages_per_s": round(doc.page_count / seconds, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-ocr", action="store_true", help="skip the OCR-on runs")
    args = parser.parse_args()
    pdfs = sorted(CORPORA.glob("*.pdf"))
    if not pdfs:
        raise SystemExit(f"no PDFs in {CORPORA}")
    modes = {"ocr_off": False}
    if not args.no_ocr and ocr.tesseract_path() is not None:
        modes["ocr_on"] = True
    report: dict[str, Any] = {"cpus": os.cpu_count(), "modes": {}}
    for mode, use_ocr in modes.items():
        config = LoaderConfig(ocr=use_ocr)
        per_doc = {}
        for pdf in pdfs:
            runs = [run(pdf, config) for _ in range(max(1, args.repeat))]
            per_doc[pdf.name] = min(runs, key=lambda r: r["seconds"])
        pages = sum(r["pages"] for r in per_doc.values())
        seconds = sum(r["seconds"] for r in per_doc.values())
        report["modes"][mode] = {
            "documents": per_doc,
            "pages": pages,
            "seconds": round(seconds, 3),
            "pages_per_s": round(pages / seconds, 1),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
