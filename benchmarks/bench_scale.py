"""Query latency and memory of MultiModalRetriever on a large synthetic store.

Builds, with ``multimodal_rag.storage`` only (``open_store``, ``store.upsert``,
``write_manifest``, ``write_document``), a store the retriever cannot tell from an
ingested one: ``--chunks`` text chunks of ~150 words (words drawn with a Zipf law
from the dev manuals' vocabulary, some naming a figure, so BM25 and figure links
do real work) and ``--figures`` figures (a text vector each and, unless
``--image-dim 0``, an image vector in the image collection). Vectors are random
unit vectors: the search cost does not depend on what they mean.

Then, in a fresh process (so its peak RSS is the query side's alone), it opens the
store with the real offline text model (query embeddings are real and also timed
alone) and a stand-in image embedder (random unit vectors for the CLIP text list),
times the retriever's first query, then the warm latency of the dev questions over
``--passes`` passes, and profiles one warm pass and the first query with cProfile.

The first query is measured twice, each in its own process: with the search
state (BM25, record places, figure links) persisted beside the store, as
``ingest`` keeps it (the build writes it once, timed as ``state_build_s``), and
without it (a store from before persisted state, or one on a Chroma server),
where the first query rebuilds it from every record in Chroma.

Usage:
    python benchmarks/bench_scale.py [--chunks 100000] [--figures 10000] [--passes 3]
        [--store DIR] [--out benchmarks/results]
Quick run: ``--chunks 5000 --figures 500``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from multimodal_rag.config import OFFLINE_TEXT_MODEL

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
TEXT_DIM = 384
WORDS_PER_CHUNK = 150
CHUNKS_PER_PAGE = 4
PAGES_PER_DOC = 250  # 1,000 chunks per document: a long manual
SYNTHETIC_IMAGE_MODEL = "synthetic/unit-vectors"
TARGET_P50_MS = 150.0


def vocabulary() -> list[str]:
    """Words of the dev manuals, most frequent first (a synthetic list when absent)."""
    pdfs = sorted((SHARED / "corpora").glob("*.pdf"))
    counts: dict[str, int] = {}
    if pdfs:
        import pymupdf

        for pdf in pdfs:
            with pymupdf.open(pdf) as doc:  # type: ignore[no-untyped-call]
                for page in doc:
                    for w in re.findall(r"[A-Za-z][A-Za-z0-9\-]+", page.get_text()):
                        counts[w.lower()] = counts.get(w.lower(), 0) + 1
    words = sorted(counts, key=lambda w: -counts[w])
    rng = np.random.default_rng(1)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    # A long tail of rare terms, as a large corpus has.
    words += ["".join(rng.choice(letters, size=rng.integers(4, 10))) for _ in range(30000)]
    return words


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> list[list[float]]:
    """``n`` random directions in ``dim`` dimensions (what a normalised embedder returns)."""
    v = rng.standard_normal((n, dim))
    rows: list[list[float]] = (v / np.linalg.norm(v, axis=1, keepdims=True)).tolist()
    return rows


def build(store_dir: Path, chunks: int, figures: int, image_dim: int) -> dict[str, Any]:
    """Write the synthetic store; returns counts and seconds."""
    from multimodal_rag.loading.images import save_png
    from multimodal_rag.storage import DocumentEntry, Manifest, open_store

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    words = np.array(vocabulary())
    weights = 1.0 / np.arange(1, len(words) + 1) ** 1.05
    weights /= weights.sum()
    store = open_store(store_dir)
    store.write_manifest(
        Manifest(
            profile="offline" if not image_dim else "synthetic",
            text_model=OFFLINE_TEXT_MODEL,
            text_dim=TEXT_DIM,
            image_model=SYNTHETIC_IMAGE_MODEL if image_dim else None,
            image_dim=image_dim or None,
        )
    )
    # One real PNG shared by every figure: the retriever only checks that the file exists.
    png = _tiny_png()
    image_path = str(save_png(png, store.figures_dir))
    per_doc = CHUNKS_PER_PAGE * PAGES_PER_DOC
    docs = max(1, -(-chunks // per_doc))
    figs_per_doc = -(-figures // docs) if figures else 0
    batch = 5000
    for start in range(0, chunks, batch):
        n = min(batch, chunks - start)
        sample = rng.choice(words, size=(n, WORDS_PER_CHUNK), p=weights)
        ids, texts, metas = [], [], []
        for j in range(n):
            i = start + j
            d, within = divmod(i, per_doc)
            page = within // CHUNKS_PER_PAGE + 1
            text = " ".join(sample[j])
            if figs_per_doc and rng.random() < 0.05:
                text += f" (see Figure {d}.{int(rng.integers(figs_per_doc))})"
            ids.append(f"doc{d}.pdf::p{page}::t{within}")
            texts.append(text)
            metas.append(_meta(f"doc{d}.pdf", page, "text"))
        store.upsert(store.text, ids, unit_vectors(rng, n, TEXT_DIM), texts, metas)
        print(f"chunks: {start + n}/{chunks}", file=sys.stderr)
    for start in range(0, figures, batch):
        n = min(batch, figures - start)
        sample = rng.choice(words, size=(n, 30), p=weights)
        ids, texts, metas = [], [], []
        for j in range(n):
            i = start + j
            d, f = divmod(i, figs_per_doc)
            page = int(rng.integers(1, PAGES_PER_DOC + 1))
            label = f"Figure {d}.{f}"
            ids.append(f"doc{d}.pdf::p{page}::f::{i:016x}")
            texts.append(f"{label} " + " ".join(sample[j]))
            metas.append(_meta(f"doc{d}.pdf", page, "figure", label, image_path))
        store.upsert(store.text, ids, unit_vectors(rng, n, TEXT_DIM), texts, metas)
        if image_dim:
            store.upsert(store.image, ids, unit_vectors(rng, n, image_dim), texts, metas)
    for d in range(docs):
        in_doc = min(per_doc, chunks - d * per_doc)
        store.write_document(
            DocumentEntry(
                doc=f"doc{d}.pdf",
                content_hash=f"{d:064x}",
                path=f"/synthetic/doc{d}.pdf",
                pages=PAGES_PER_DOC,
                text_chunks=in_doc,
                figures=max(0, min(figs_per_doc, figures - d * figs_per_doc)),
            )
        )
    generation = store.bump_generation()
    build_s = time.perf_counter() - started
    # What ingest keeps up to date document by document, written here in one go.
    from multimodal_rag.search_state import SearchState

    started = time.perf_counter()
    SearchState.rebuild(store).save(generation)
    return {
        "chunks": chunks,
        "figures": figures,
        "docs": docs,
        "build_s": build_s,
        "state_build_s": time.perf_counter() - started,
        "counts": store.counts(),
    }


def _meta(doc: str, page: int, kind: str, label: str = "", image: str = "") -> dict[str, Any]:
    return {
        "doc": doc,
        "page": page,
        "section": f"Section {page // 10}",
        "kind": kind,
        "figure": label,
        "caption": label and f"caption of {label}",
        "image_path": image,
        "bbox": "",
        "figure_kind": "raster" if kind == "figure" else "",
        "generated_caption": "",
    }


def _tiny_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def stand_in_image_embedder(dim: int) -> Any:
    """A CLIP stand-in: deterministic random unit vectors, so the image list costs what
    a real one costs minus the CLIP text encoder (not installed offline)."""
    import hashlib

    from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding

    def vector(key: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
        return unit_vectors(np.random.default_rng(seed), 1, dim)[0]

    class StandIn(MultiModalEmbedding):
        @property
        def dim(self) -> int:
            return dim

        def _get_query_embedding(self, query: str) -> list[float]:
            return vector(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return vector(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return vector(text)

        def _get_image_embedding(self, img_file_path: Any) -> list[float]:
            return vector(str(img_file_path))

        async def _aget_image_embedding(self, img_file_path: Any) -> list[float]:
            return vector(str(img_file_path))

    return StandIn(model_name=SYNTHETIC_IMAGE_MODEL)


def _questions() -> list[str]:
    path = SHARED / "eval" / "dev-qa.jsonl"
    if path.is_file():
        return [json.loads(ln)["query"] for ln in path.read_text().splitlines() if ln.strip()]
    return ["how do I calibrate the sensor", "fruit battery wiring", "SQ1 output", "-h option"]


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50_ms": pick(0.5), "p95_ms": pick(0.95), "max_ms": ordered[-1]}


def _top(profile: cProfile.Profile, sort: str, n: int = 25) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(n)
    return out.getvalue()


def measure(store_dir: Path, passes: int, image_dim: int, profile_first: bool) -> dict[str, Any]:
    """Open the store, time the first and the warm queries, profile; runs in a child."""
    from multimodal_rag.index import MultimodalIndex

    started = time.perf_counter()
    image = stand_in_image_embedder(image_dim) if image_dim else None
    index = MultimodalIndex.open(store_dir, create=False, image_embedder=image)
    embedder = index.text_embedder
    embedder.get_query_embedding("warm up the model")
    load_s = time.perf_counter() - started
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    questions = _questions()

    retriever = index.as_retriever()
    t = time.perf_counter()
    retriever.search(questions[0])
    first_ms = (time.perf_counter() - t) * 1000
    rss_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    passes_ms: list[list[float]] = []
    for _ in range(passes):
        times = []
        for q in questions:
            t = time.perf_counter()
            retriever.search(q)
            times.append((time.perf_counter() - t) * 1000)
        passes_ms.append(times)

    # The parts alone, through the same objects the retriever uses.
    parts: dict[str, list[float]] = {
        "embed": [],
        "chroma_text": [],
        "chroma_image": [],
        "bm25": [],
        "fetch_hits": [],
    }
    # Typed loosely, as the retriever does: Chroma's stubs reject plain float lists.
    text_collection: Any = index.store.text
    image_collection: Any = index.store.image
    bm25 = retriever._bm25  # noqa: SLF001 - a benchmark may look inside
    for q in questions:
        t = time.perf_counter()
        vec = embedder.get_query_embedding(q)
        parts["embed"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        text_collection.query(
            query_embeddings=[vec],
            n_results=40,
            include=["distances"],
        )
        parts["chroma_text"].append((time.perf_counter() - t) * 1000)
        if image is not None:
            t = time.perf_counter()
            image_collection.query(
                query_embeddings=[image.get_text_embedding(q)],
                n_results=40,
                include=["distances"],
            )
            parts["chroma_image"].append((time.perf_counter() - t) * 1000)
        if bm25 is not None:
            t = time.perf_counter()
            top = bm25.search(q, 40)
            parts["bm25"].append((time.perf_counter() - t) * 1000)
            # Texts and metadata of the 10 hits shown, read from Chroma by id (uncached).
            records = retriever._records  # noqa: SLF001
            records._cache.clear()  # noqa: SLF001
            t = time.perf_counter()
            records.fetch([rid for rid, _ in top[:10]])
            parts["fetch_hits"].append((time.perf_counter() - t) * 1000)

    warm_profile = cProfile.Profile()
    warm_profile.enable()
    for q in questions:
        retriever.search(q)
    warm_profile.disable()
    profiles = {
        "profile_warm_cumulative": _top(warm_profile, "cumulative"),
        "profile_warm_tottime": _top(warm_profile, "tottime"),
    }
    if profile_first:
        # A second retriever pays the first-query cost again, now under the profiler.
        first_profile = cProfile.Profile()
        fresh = index.as_retriever()
        first_profile.enable()
        fresh.search(questions[0])
        first_profile.disable()
        profiles["profile_first_cumulative"] = _top(first_profile, "cumulative")

    summary = {name: _ms(values) for name, values in parts.items() if values}
    return {
        "load_s": load_s,
        "first_query_ms": first_ms,
        "warm": {
            "p50_ms": statistics.median(_ms(p)["p50_ms"] for p in passes_ms),
            "p95_ms": statistics.median(_ms(p)["p95_ms"] for p in passes_ms),
            "passes": passes,
            "queries": len(questions),
        },
        "parts": summary,
        "rss_after_load_mib": rss_loaded,
        "rss_after_first_query_mib": rss_first,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **profiles,
    }


def child(args: list[str]) -> tuple[dict[str, Any], float, float]:
    """Run this script in a fresh process; returns its JSON, wall seconds and peak RSS (MiB)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed with exit code {proc.returncode}")
    return json.loads(text.splitlines()[-1]), wall, usage.ru_maxrss / 1024


def render(result: dict[str, Any]) -> str:
    b, m = result["build"], result["measure"]
    w = m["warm"]
    verdict = "meets" if w["p50_ms"] <= TARGET_P50_MS else "MISSES"
    lines = [
        f"# Scale: {b['chunks']:,} chunks + {b['figures']:,} figures "
        f"(image dim {result['image_dim'] or 'none'})",
        "",
        f"Store built in {b['build_s']:.0f} s ({b['counts']}), build peak RSS "
        f"{result['build_peak_rss_mib']:.0f} MiB. Load average at the end: "
        f"{', '.join(f'{x:.1f}' for x in result['load_average'])}.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| open store + load text model + first embedding | {m['load_s']:.2f} s |",
        f"| **first query**, search state persisted (loads it) | {m['first_query_ms']:.0f} ms |",
        f"| first query, no persisted state (rebuilds it from Chroma) "
        f"| {result['rebuild']['first_query_ms']:.0f} ms |",
        f"| warm query p50 ({w['queries']} questions x {w['passes']} passes) "
        f"| {w['p50_ms']:.1f} ms |",
        f"| warm query p95 | {w['p95_ms']:.1f} ms |",
        f"| target p50 <= {TARGET_P50_MS:.0f} ms | {verdict} |",
        f"| RSS after model load | {m['rss_after_load_mib']:.0f} MiB |",
        f"| RSS after first query | {m['rss_after_first_query_mib']:.0f} MiB |",
        f"| peak RSS of the query process | {result['query_peak_rss_mib']:.0f} MiB |",
        f"| peak RSS of the query process that rebuilt the state "
        f"| {result['rebuild_peak_rss_mib']:.0f} MiB |",
        f"| writing the search state once for the whole store (build) "
        f"| {b.get('state_build_s', float('nan')):.1f} s |",
        "",
        "Parts alone (same objects, same questions):",
        "",
        "| part | p50 ms | p95 ms |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} |" for k, v in m["parts"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--figures", type=int, default=10_000)
    parser.add_argument("--image-dim", type=int, default=512, help="0: no image collection")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--store", type=Path, default=None, help="reuse or keep the store here")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--name", default="scale", help="output file stem")
    parser.add_argument(
        "--profile-first",
        action="store_true",
        help="also profile the first query (pays its cost twice: slow on big stores)",
    )
    parser.add_argument("--phase", choices=("build", "measure"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "build":
        print(json.dumps(build(args.store, args.chunks, args.figures, args.image_dim)))
        return
    if args.phase == "measure":
        print(json.dumps(measure(args.store, args.passes, args.image_dim, args.profile_first)))
        return
    store = args.store or Path(tempfile.mkdtemp(prefix="mmrag-scale-")) / "store"
    common = ["--store", str(store), "--image-dim", str(args.image_dim)]
    # A kept store (--store) is reused when it was built with the same sizes.
    saved = store.parent / f"{store.name}.build.json"
    wanted = {"chunks": args.chunks, "figures": args.figures, "image_dim": args.image_dim}
    previous = json.loads(saved.read_text()) if saved.is_file() else {}
    if previous.get("wanted") == wanted:
        built, build_rss = previous["built"], previous["build_rss"]
    else:
        build_args = ["--phase", "build", "--chunks", str(args.chunks)]
        built, _, build_rss = child([*build_args, "--figures", str(args.figures), *common])
        saved.write_text(json.dumps({"wanted": wanted, "built": built, "build_rss": build_rss}))
    measure_args = ["--phase", "measure", "--passes", str(args.passes), *common]
    # Without persisted state first: that run rebuilds the state and saves it again.
    shutil.rmtree(store / "search", ignore_errors=True)
    rebuilt, _, rebuild_rss = child([*measure_args[:2], "--passes", "1", *common])
    if args.profile_first:
        measure_args.append("--profile-first")
    measured, _, query_rss = child(measure_args)
    result = {
        "load_average": os.getloadavg(),
        "image_dim": args.image_dim,
        "build": built,
        "measure": measured,
        "build_peak_rss_mib": build_rss,
        "query_peak_rss_mib": query_rss,
        "rebuild": {k: v for k, v in rebuilt.items() if not k.startswith("profile_")},
        "rebuild_peak_rss_mib": rebuild_rss,
        "target_p50_ms": TARGET_P50_MS,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    profiles = {k: measured.pop(k) for k in list(measured) if k.startswith("profile_")}
    (args.out / f"{args.name}-profile.txt").write_text(
        "\n\n".join(f"== {k} ==\n{v}" for k, v in profiles.items())
    )
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
