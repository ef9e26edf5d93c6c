"""Ingest speed and memory: pages/s, peak RSS, and the ratio to the embedding floor.

The floor is the time the text model alone takes to embed exactly the texts the
ingest embedded (passages and figure texts), measured in the same run with the
same embedder. A ratio of 1.0 means loading, figures and Chroma cost nothing.

Each ingest runs in a fresh subprocess so peak RSS is its own. The "large" run
ingests the dev manuals concatenated N times (default 5, about 970 pages) to
check that memory does not grow with the document.

Usage:
    python benchmarks/bench_ingest.py [--repeat 3] [--ocr] [--copies 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"

_CHILD = r"""
import json, resource, sys, time
from multimodal_rag.config import LoaderConfig
from multimodal_rag.index import MultimodalIndex, embedding_text
from multimodal_rag.loading.pdf import load_pdf
store, ocr, floor, *pdfs = sys.argv[1:]
config = LoaderConfig(ocr=ocr == "1")
index = MultimodalIndex.open(store, profile_name="offline", loader_config=config)
index.text_embedder.get_text_embedding("warm up")  # model load is not ingest work
started = time.perf_counter()
report = index.ingest(pdfs)
ingest = time.perf_counter() - started
result = {"ingest_s": ingest, "pages": sum(d.pages for d in report.documents),
          "embeddings": report.embeddings_computed,
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if floor == "1":
    texts = []
    for pdf in pdfs:
        doc = load_pdf(pdf, config)
        texts += [embedding_text(c) for c in doc.chunks if c.role == "content"]
        texts += [embedding_text(f) for f in doc.figures]
    started = time.perf_counter()
    for i in range(0, len(texts), 256):  # the ingest's own batching
        index.text_embedder.get_text_embedding_batch(texts[i : i + 256])
    result["floor_s"] = time.perf_counter() - started
    result["texts"] = len(texts)
print(json.dumps(result))
"""


def _run(pdfs: list[Path], *, ocr: bool, floor: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as store:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD,
                store,
                "1" if ocr else "0",
                "1" if floor else "0",
                *map(str, pdfs),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _concatenate(pdfs: list[Path], copies: int, target: Path) -> Path:
    import pymupdf

    out = pymupdf.open()
    for _ in range(copies):
        for pdf in pdfs:
            with pymupdf.open(pdf) as src:
                out.insert_pdf(src)
    out.save(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ocr", action="store_true")
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    pdfs = sorted((SHARED / "corpora").glob("*.pdf"))
    runs = [_run(pdfs, ocr=args.ocr, floor=True) for _ in range(args.repeat)]
    ratios = [r["ingest_s"] / r["floor_s"] for r in runs]
    summary = {
        "ocr": args.ocr,
        "pages": runs[0]["pages"],
        "embedded_texts": runs[0]["texts"],
        "ingest_s_median": statistics.median(r["ingest_s"] for r in runs),
        "floor_s_median": statistics.median(r["floor_s"] for r in runs),
        "ratio_median": statistics.median(ratios),
        "pages_per_s_median": statistics.median(r["pages"] / r["ingest_s"] for r in runs),
        "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in runs),
        "runs": runs,
    }
    if args.copies > 1:
        with tempfile.TemporaryDirectory() as tmp:
            big = _concatenate(pdfs, args.copies, Path(tmp) / "concatenated.pdf")
            large = _run([big], ocr=args.ocr, floor=False)
        summary["large"] = large
        summary["large_rss_over_single"] = large["peak_rss_mb"] / summary["peak_rss_mb_median"]
    print(json.dumps(summary, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "ingest-ocr.json" if args.ocr else "ingest.json"
    (args.out / name).write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"ingest {summary['ingest_s_median']:.1f} s, floor {summary['floor_s_median']:.1f} s, "
        f"ratio {summary['ratio_median']:.2f}, {summary['pages_per_s_median']:.1f} pages/s, "
        f"peak RSS {summary['peak_rss_mb_median']:.0f} MB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
