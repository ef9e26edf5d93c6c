"""Retrieval ablation on the dev questions: which signals and which fusion earn their keep.

Ingests the dev manuals once (offline profile) into a store, then evaluates the
retriever with signals switched on one by one and both fusion methods.

Usage:
    python benchmarks/bench_retrieval.py [--store DIR] [--ocr] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from multimodal_rag.config import LoaderConfig
from multimodal_rag.evaluation import comparison_table, evaluate, load_questions
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.retrieval import DEFAULT_WEIGHTS, RetrieverConfig

SHARED = Path(__file__).resolve().parents[2] / "shared"

_BASE = RetrieverConfig(figures_lead=False)
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
    "+ links + figures lead (default)": RetrieverConfig(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--ocr", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    store = args.store or Path(tempfile.mkdtemp(prefix="mmrag-bench-"))
    index = MultimodalIndex.open(
        store, profile_name="offline", loader_config=LoaderConfig(ocr=args.ocr)
    )
    started = time.perf_counter()
    index.ingest(sorted((SHARED / "corpora").glob("*.pdf")))
    print(f"ingest: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    questions = load_questions(SHARED / "eval" / "dev-qa.jsonl")
    results = {}
    for name, config in VARIANTS.items():
        config = config.model_copy(update={"top_k": args.k})
        results[name] = evaluate(questions, index.as_retriever(config), k=args.k)
    table = comparison_table(results)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "ocr": args.ocr,
        "k": args.k,
        "weights": DEFAULT_WEIGHTS,
        "variants": {n: r.metrics for n, r in results.items()},
    }
    (args.out / "retrieval-ablation.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "retrieval-ablation.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
