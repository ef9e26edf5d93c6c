"""Ingest speed and memory: pages/s, peak RSS, the ratio to the embedding floor,
int8 vs fp32 (speed and dev-set retrieval), a 5x larger manual, and a cold re-ingest.

The floor is the time the text model alone takes to embed exactly the texts the
ingest embedded (passages and figure texts), the way the ingest hands them over
(per document, longest first), measured in the same process with the same
embedder. A ratio of 1.0 means loading, figures and Chroma cost nothing.

Each ingest runs in a fresh subprocess so peak RSS is its own; int8 and fp32
runs are interleaved so that a busy neighbour slows both alike. The "large" run
ingests the dev manuals concatenated N times into one PDF (default 5, about 970
pages) to check that memory does not grow with the document. The re-ingest is
``mmrag ingest`` run a second time on an unchanged store, timed from outside
(process wall, cold imports included).

Usage:
    python benchmarks/bench_ingest.py [--repeat 3] [--ocr] [--copies 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared"
PRECISIONS = ("int8", "fp32")

_CHILD = r"""
import json, resource, sys, time
from multimodal_rag.config import LoaderConfig
from multimodal_rag.index import MultimodalIndex
store, ocr, floor, precision, evaluate, *pdfs = sys.argv[1:]
config = LoaderConfig(ocr=ocr == "1")
index = MultimodalIndex.open(
    store, profile_name="offline", loader_config=config, text_precision=precision
)
index.text_embedder.get_text_embedding("warm up")  # model load is not ingest work
class Bar:
    def update(self, n): pass
# The texts were extracted by the parent, so this process imports the loader during
# its ingest, as a real one does.
docs = json.loads(open(floor).read()) if floor != "0" else []
def embed_all():
    started = time.perf_counter()
    for texts in docs:
        index._embed(texts, Bar())  # the ingest's own call, per document
    return time.perf_counter() - started
# The floor is taken before and after the ingest and averaged, so a neighbour's load
# that rises or falls during the run biases neither side.
before = embed_all() if docs else 0.0
started = time.perf_counter()
report = index.ingest(pdfs)
ingest = time.perf_counter() - started
result = {"ingest_s": ingest, "pages": sum(d.pages for d in report.documents),
          "embeddings": report.embeddings_computed, "precision": index.manifest.text_precision,
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if docs:
    after = embed_all()
    result.update(floor_s=(before + after) / 2, floor_before_s=before, floor_after_s=after,
                  texts=sum(map(len, docs)))
if evaluate == "1":
    import os
    from multimodal_rag.evaluation import evaluate as run_eval, load_questions
    questions = load_questions(os.environ["MMRAG_QA"])
    result["metrics"] = run_eval(questions, index.as_retriever(), k=10).metrics
print(json.dumps(result))
"""


def _texts(pdfs: list[Path], ocr: bool, target: Path) -> Path:
    """Write the texts an ingest embeds (per document, as JSON) for the floor."""
    from multimodal_rag.config import LoaderConfig
    from multimodal_rag.index import embedding_text
    from multimodal_rag.loading.pdf import load_pdf

    docs = []
    for pdf in pdfs:
        doc = load_pdf(pdf, LoaderConfig(ocr=ocr))
        chunks = [c for c in doc.chunks if c.role == "content"]
        docs.append([*map(embedding_text, chunks), *map(embedding_text, doc.figures)])
    target.write_text(json.dumps(docs))
    return target


def _run(
    pdfs: list[Path], store: Path, *, ocr: bool, floor: Path | None, precision: str, evaluate: bool
) -> dict[str, Any]:
    env = {**os.environ, "MMRAG_QA": str(SHARED / "eval" / "dev-qa.jsonl")}
    flags = ["1" if ocr else "0", str(floor or "0")]
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(store), *flags, precision, "1" if evaluate else "0"]
        + [str(p) for p in pdfs],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _reingest_wall(pdfs: list[Path], store: Path) -> dict[str, Any]:
    """``mmrag ingest`` on an unchanged store, timed from outside (cold process)."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "multimodal_rag.cli", "ingest", *map(str, pdfs)]
        + ["--store", str(store), "--profile", "offline", "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    payload = json.loads(out.stdout)
    return {"wall_s": wall, "embeddings_computed": payload["embeddings_computed"]}


def _concatenate(pdfs: list[Path], copies: int, target: Path) -> Path:
    import pymupdf

    out = pymupdf.open()
    for _ in range(copies):
        for pdf in pdfs:
            with pymupdf.open(pdf) as src:
                out.insert_pdf(src)
    out.save(target)
    return target


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "pages": runs[0]["pages"],
        "embedded_texts": runs[0]["texts"],
        "ingest_s_median": _median(runs, "ingest_s"),
        "floor_s_median": _median(runs, "floor_s"),
        "ratio_median": statistics.median(r["ingest_s"] / r["floor_s"] for r in runs),
        "pages_per_s_median": statistics.median(r["pages"] / r["ingest_s"] for r in runs),
        "peak_rss_mb_median": _median(runs, "peak_rss_mb"),
        "metrics": next((r["metrics"] for r in runs if "metrics" in r), None),
        "all": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ocr", action="store_true")
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    pdfs = sorted((SHARED / "corpora").glob("*.pdf"))
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PRECISIONS}
    summary: dict[str, Any] = {"ocr": args.ocr, "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        texts = _texts(pdfs, args.ocr, Path(tmp) / "texts.json")
        for i in range(args.repeat):
            for precision in PRECISIONS:
                store = Path(tmp) / f"{precision}-{i}"
                runs[precision].append(
                    _run(
                        pdfs, store, ocr=args.ocr, floor=texts, precision=precision, evaluate=i == 0
                    )
                )
                print(
                    f"{precision} run {i + 1}: {runs[precision][-1]['ingest_s']:.1f} s",
                    file=sys.stderr,
                )
        summary["reingest"] = [_reingest_wall(pdfs, Path(tmp) / "int8-0") for _ in range(3)]
        summary["reingest_wall_s_median"] = _median(summary["reingest"], "wall_s")
        for precision in PRECISIONS:
            summary[precision] = _summary(runs[precision])
        summary["int8_over_fp32_floor"] = statistics.median(
            a["floor_s"] / b["floor_s"] for a, b in zip(runs["int8"], runs["fp32"], strict=True)
        )
        summary["int8_over_fp32_ingest"] = statistics.median(
            a["ingest_s"] / b["ingest_s"] for a, b in zip(runs["int8"], runs["fp32"], strict=True)
        )
        if args.copies > 1:
            big = _concatenate(pdfs, args.copies, Path(tmp) / "concatenated.pdf")
            large = _run(
                [big],
                Path(tmp) / "large",
                ocr=args.ocr,
                floor=None,
                precision="int8",
                evaluate=False,
            )
            summary["large"] = large
            summary["large_rss_over_single"] = (
                large["peak_rss_mb"] / summary["int8"]["peak_rss_mb_median"]
            )
    summary["load_average_end"] = os.getloadavg()
    print(json.dumps(summary, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "ingest-ocr" if args.ocr else "ingest"
    (args.out / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(render(summary) + "\n")
    print(render(summary), file=sys.stderr)


def render(s: dict[str, Any]) -> str:
    """The summary as markdown tables."""
    lines = [
        f"# Ingest, dev manuals, offline profile{' + OCR' if s['ocr'] else ''}",
        "",
        f"Load average at start / end: {s['load_average_start'][0]:.1f} / "
        f"{s['load_average_end'][0]:.1f} (2 cores, shared). Medians over runs; "
        "int8 and fp32 runs interleaved.",
        "",
        "| precision | runs | texts | ingest s | pages/s | floor s | ingest / floor | "
        "peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in PRECISIONS:
        r = s[p]
        lines.append(
            f"| {p} | {r['runs']} | {r['embedded_texts']} | {r['ingest_s_median']:.1f} | "
            f"{r['pages_per_s_median']:.1f} | {r['floor_s_median']:.1f} | "
            f"{r['ratio_median']:.2f} | {r['peak_rss_mb_median']:.0f} |"
        )
    lines += [
        "",
        f"- int8 / fp32, same run: floor {s['int8_over_fp32_floor']:.2f}, "
        f"ingest {s['int8_over_fp32_ingest']:.2f}",
        f"- re-ingest of the unchanged manuals, `mmrag ingest` cold process wall: "
        f"{s['reingest_wall_s_median']:.1f} s (median of {len(s['reingest'])}), "
        f"{s['reingest'][0]['embeddings_computed']} embeddings computed",
    ]
    if "large" in s:
        big = s["large"]
        lines.append(
            f"- one {big['pages']}-page PDF (the manuals concatenated): {big['ingest_s']:.1f} s, "
            f"{big['pages'] / big['ingest_s']:.1f} pages/s, peak RSS {big['peak_rss_mb']:.0f} MiB "
            f"= {s['large_rss_over_single']:.2f}x the two-manual run"
        )
    lines += ["", "Retrieval at k=10 on the dev questions, store built (and queried) each way:", ""]
    lines += [
        "| group | precision | MRR@10 | Recall@10 | nDCG@10 |",
        "|---|---|---:|---:|---:|",
    ]
    groups = list((s["int8"]["metrics"] or {}).keys())
    for g in groups:
        for p in PRECISIONS:
            m = s[p]["metrics"][g]
            lines.append(f"| {g} | {p} | {m['mrr']:.3f} | {m['recall']:.3f} | {m['ndcg']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
