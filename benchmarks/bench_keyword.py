"""Benchmark the BM25 keyword index on a synthetic corpus of manual-like chunks.

Builds an index of N chunks of about W words (Zipf-distributed vocabulary plus
technical codes such as ``SQ12``, ``PV3``, ``0x1F``, ``--opt7``), then times
queries, incremental add/remove, save and load. Prints one JSON object.

Usage:
    python benchmarks/bench_keyword.py [--chunks 100000] [--words 150] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from multimodal_rag.keyword import BM25Index


def _rss_mb() -> float:
    """Current resident memory (Linux /proc); falls back to peak RSS elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _corpus(
    rng: np.random.Generator, n: int, words: int, vocab_size: int
) -> tuple[list[str], list[str], list[str]]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 11, size=vocab_size)
    vocab = ["".join(rng.choice(letters, size=int(k))) for k in lengths]
    codes = (
        [f"SQ{i}" for i in range(200)]
        + [f"PV{i}" for i in range(200)]
        + [f"0x{i:02X}" for i in range(256)]
        + [f"--opt{i}" for i in range(100)]
        + [f"v{i // 10}.{i % 10}" for i in range(100)]
    )
    p = 1.0 / np.arange(1, vocab_size + 1) ** 1.07
    p /= p.sum()
    draws = rng.choice(vocab_size, size=n * words, p=p)
    code_draws = rng.integers(0, len(codes), size=n * 2)
    texts = []
    for i in range(n):
        body = [vocab[j] for j in draws[i * words : (i + 1) * words]]
        body[5] = codes[code_draws[2 * i]]
        body[words // 2] = codes[code_draws[2 * i + 1]]
        texts.append(" ".join(body) + ".")
    return texts, vocab, codes


def _queries(rng: np.random.Generator, vocab: list[str], codes: list[str], count: int) -> list[str]:
    out = []
    for q in range(count):
        n_terms = int(rng.integers(1, 5))
        # A mix: common and rare words, with a code in half of the queries.
        terms = [vocab[int(min(rng.zipf(1.3) - 1, len(vocab) - 1))] for _ in range(n_terms)]
        if q % 2 == 0:
            terms.append(codes[int(rng.integers(0, len(codes)))])
        out.append(" ".join(terms))
    return out


def _ms(seconds: list[float], pct: float) -> float:
    return round(float(np.percentile(seconds, pct)) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=150)
    parser.add_argument("--vocab", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    texts, vocab, codes = _corpus(rng, args.chunks, args.words, args.vocab)
    ids = [f"manual-{i // 500}.pdf::p{i % 500 + 1}::t{i}" for i in range(len(texts))]
    queries = _queries(rng, vocab, codes, args.queries)

    rss0 = _rss_mb()
    index = BM25Index()
    t0 = time.perf_counter()
    index.add(ids, texts)
    t_add = time.perf_counter() - t0
    index.search("warm up", k=10)  # first search merges the postings
    t_build = time.perf_counter() - t0
    rss1 = _rss_mb()

    latencies = []
    for q in queries:
        t = time.perf_counter()
        index.search(q, k=10)
        latencies.append(time.perf_counter() - t)

    t = time.perf_counter()
    index.add([f"extra{i}" for i in range(100)], texts[:100])
    index.search(queries[0], k=10)
    t_incr_add = time.perf_counter() - t
    t = time.perf_counter()
    index.remove(ids[:100])
    index.search(queries[0], k=10)
    t_incr_remove = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keyword.npz"
        t = time.perf_counter()
        index.save(path)
        t_save = time.perf_counter() - t
        size = path.stat().st_size
        t = time.perf_counter()
        loaded = BM25Index.load(path)
        loaded.search(queries[0], k=10)
        t_load = time.perf_counter() - t

    result = {
        "chunks": args.chunks,
        "words_per_chunk": args.words,
        "vocab": args.vocab,
        "queries": len(queries),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "build_s": round(t_build, 2),
        "build_tokenize_add_s": round(t_add, 2),
        "query_p50_ms": _ms(latencies, 50),
        "query_p95_ms": _ms(latencies, 95),
        "query_max_ms": _ms(latencies, 100),
        "add_100_then_search_ms": round(t_incr_add * 1000, 1),
        "remove_100_then_search_ms": round(t_incr_remove * 1000, 1),
        "index_rss_mb": round(rss1 - rss0, 1),
        "save_s": round(t_save, 2),
        "load_s": round(t_load, 2),
        "file_mb": round(size / 2**20, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
