"""Retrieval ablation on the dev questions: which signals and which fusion earn their keep.

Ingests the dev manuals once (offline profile) into a store, then evaluates the
retriever with signals switched on one by one and both fusion methods. Writes
the full metric table at ``--k`` and a targets table (Recall@5, Recall@k and
MRR@k per question kind, the numbers issue 4 sets targets for).

Usage:
    python benchmarks/bench_retrieval.py [--store DIR] [--ocr [--ocr-engine ENGINE]]
        [--out benchmarks/results] [--corpora DIR] [--questions FILE]
        [--name retrieval-ablation] [--variants A,B]

``--corpora`` and ``--questions`` default to the dev set in ``../shared/``; the held-out
set (``benchmarks/heldout/``) passes its own folder of PDFs and question file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import get_args

from multimodal_rag.config import LoaderConfig, OcrEngine, profile
from multimodal_rag.embedding import load_text_embedder
from multimodal_rag.evaluation import EvalResult, comparison_table, evaluate, load_questions
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.loading import ocr
from multimodal_rag.retrieval import DEFAULT_WEIGHTS, EXACT_WEIGHTS, VISUAL_WEIGHTS, RetrieverConfig

SHARED = Path(__file__).resolve().parents[2] / "shared"
GROUPS = ("figure", "page", "keyword", "all")
SHORT_K = 5

# Signals switched on one at a time; the rows up to "figures lead" are the issue 3
# ablation (links from naming passages only), the next three rows are issue 4's, the
# last one issue 12's.
_BASE = RetrieverConfig(
    figures_lead=False,
    link_pages=False,
    visual_intent=False,
    exact_intent=False,
    page_figures=0.0,
    page_spread=0,
)
VARIANTS: dict[str, RetrieverConfig] = {
    "text only": _BASE.model_copy(
        update={"use_keyword": False, "use_figure_text": False, "use_links": False}
    ),
    "+ figure text": _BASE.model_copy(update={"use_keyword": False, "use_links": False}),
    "+ BM25 (RRF)": _BASE.model_copy(update={"use_links": False, "fusion": "rrf"}),
    "+ BM25 (weighted)": _BASE.model_copy(update={"use_links": False}),
    "+ links (RRF)": _BASE.model_copy(update={"fusion": "rrf"}),
    "+ links (weighted)": _BASE,
    "+ links (weighted) + page boost": _BASE.model_copy(update={"page_boost": 0.3}),
    "+ links + figures lead": _BASE.model_copy(update={"figures_lead": True}),
    "+ page links": _BASE.model_copy(update={"figures_lead": True, "link_pages": True}),
    "+ visual intent": RetrieverConfig(exact_intent=False, page_spread=0),
    "+ exact-term intent": RetrieverConfig(page_spread=0),
    "+ page spread (default)": RetrieverConfig(),
}
# Not in the ablation table by default (``--variants`` runs them): the alternatives tried.
TRIED: dict[str, RetrieverConfig] = {
    "page spread 2": RetrieverConfig(page_spread=2),
    "page figures 0.9 alone": RetrieverConfig(page_figures=0.9, page_spread=0),
    "page figures 0.6 alone": RetrieverConfig(page_figures=0.6, page_spread=0),
    "page figures 0.9": RetrieverConfig(page_figures=0.9),
    "page figures 0.75": RetrieverConfig(page_figures=0.75),
    "page figures 0.6": RetrieverConfig(page_figures=0.6),
    "exact keyword 1.5": RetrieverConfig(exact_weights={"keyword": 1.5}),
    "exact keyword 2.0": RetrieverConfig(exact_weights={"keyword": 2.0}),
    "exact keyword 1.5 text 0.7": RetrieverConfig(exact_weights={"keyword": 1.5, "text": 0.7}),
}


def targets_table(at_k: dict[str, EvalResult], at_short: dict[str, EvalResult]) -> str:
    """Recall@5, Recall@k and MRR@k per question kind, one row per variant."""
    k = next(iter(at_k.values())).k
    head = [f"{g} R@{SHORT_K} / R@{k} / MRR@{k}" for g in GROUPS]
    lines = ["| system | " + " | ".join(head) + " |", "|---|" + "---:|" * len(GROUPS)]
    for name, result in at_k.items():
        cells = [
            f"{at_short[name].metrics[g]['recall']:.3f} / {result.metrics[g]['recall']:.3f}"
            f" / {result.metrics[g]['mrr']:.3f}"
            for g in GROUPS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--ocr", action="store_true")
    parser.add_argument(
        "--ocr-engine", choices=get_args(OcrEngine), default="auto", help="with --ocr"
    )
    parser.add_argument(
        "--precision", choices=("fp32", "int8"), default="fp32", help="text model weights"
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "openvino", "onnx"),
        default="auto",
        help="text model runtime (onnx: ONNX Runtime in fp32; openvino: bf16 where the CPU has it)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--corpora", type=Path, default=SHARED / "corpora", help="folder of PDFs to ingest"
    )
    parser.add_argument(
        "--questions", type=Path, default=SHARED / "eval" / "dev-qa.jsonl", help="QA JSONL"
    )
    parser.add_argument(
        "--name", default="retrieval-ablation", help="base name of the files written to --out"
    )
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated variant names to run (default: all), e.g. for a quick rerun",
    )
    args = parser.parse_args()
    pdfs = sorted(args.corpora.glob("*.pdf"))
    if not pdfs:
        parser.error(f"no PDF files in {args.corpora}")
    store = args.store or Path(tempfile.mkdtemp(prefix="mmrag-bench-"))
    offline = profile("offline")
    text = load_text_embedder(
        offline.text_model,
        query_instruction=offline.query_instruction,
        backend=args.backend,
        quantize=args.precision == "int8",
    )
    print(f"text model: {text.backend} {text.compute}", file=sys.stderr)
    index = MultimodalIndex.open(
        store,
        profile_name="offline",
        text_embedder=text,
        loader_config=LoaderConfig(ocr=args.ocr, ocr_engine=args.ocr_engine),
    )
    started = time.perf_counter()
    index.ingest(pdfs)
    print(f"ingest: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    questions = load_questions(args.questions)
    results: dict[str, EvalResult] = {}
    short: dict[str, EvalResult] = {}
    wanted = VARIANTS
    if args.variants:
        names = [n.strip() for n in args.variants.split(",")]
        known = {**VARIANTS, **TRIED}
        unknown = [n for n in names if n not in known]
        if unknown:
            parser.error(f"unknown variants {unknown}; choose from {list(known)}")
        wanted = {n: known[n] for n in names}
    for name, config in wanted.items():
        retriever = index.as_retriever(config.model_copy(update={"top_k": args.k}))
        results[name] = evaluate(questions, retriever, k=args.k)
        short[name] = evaluate(questions, retriever, k=SHORT_K)
    table = targets_table(results, short) + "\n\n" + comparison_table(results)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "corpora": [pdf.name for pdf in pdfs],
        "questions": args.questions.name,
        "ocr": args.ocr,
        "text_model": f"{text.backend} {text.compute}",
        "ocr_engine": ocr.resolve_engine(args.ocr_engine) if args.ocr else None,
        "k": args.k,
        "weights": DEFAULT_WEIGHTS,
        "visual_weights": VISUAL_WEIGHTS,
        "exact_weights": EXACT_WEIGHTS,
        "variants": {n: r.metrics for n, r in results.items()},
        f"recall@{SHORT_K}": {
            n: {g: r.metrics[g]["recall"] for g in GROUPS} for n, r in short.items()
        },
    }
    (args.out / f"{args.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
