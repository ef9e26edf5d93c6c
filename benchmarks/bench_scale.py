"""Query latency, cold start and ingest cost on large synthetic stores, embedded and server.

For each size in ``--sizes`` (text chunks; figures are ``--figure-share`` of that),
builds with the :class:`~multimodal_rag.store.Store` methods alone a store the
retriever cannot tell from an ingested one: per synthetic document (1,000 chunks
of ~150 words drawn with a Zipf law from the dev manuals' vocabulary, some naming
a figure, and its figures) records with ids ``<chunk id>@<version>`` upserted as
LlamaIndex ``TextNode``/``ImageNode`` (SOURCE ``doc@version``) into the text
space and, for figures, the figure space; its search segment blob; then one
catalog commit. Vectors are random unit vectors: search cost does not depend on
what they mean. The store has the offline profile's manifest, so a real manual
can be ingested into it.

One build serves both modes: the Chroma folder is written through a
``PersistentClient`` with the blobs (catalog, segments, figure PNGs) written both
as the embedded store keeps them (``blobs/``) and as a server store keeps them
(the ``NAME_meta`` collection); ``--server`` then runs ``chroma run --path`` on
that folder. ``--http-build`` builds the server's copy through the server
instead, for sizes up to ``--http-build-max`` (timed; slower).

Measured, each in a fresh process and repeated ``--repeats`` times (medians):

- **cold first query**: open the store, load the offline text model, then time
  the first query, with an empty state cache (embedded: ``<store>/cache``
  removed; server: ``MMRAG_CACHE_DIR`` holding only the ONNX model export, i.e. a
  second client) and with
  the cache of the previous run;
- **warm** p50/p95 of every dev question over ``--passes`` passes, and of the
  picture-asking ones (``query_intent.asks_for_visual``) alone;
- **ingest**: time and peak RSS of ``MultimodalIndex.ingest`` of one real manual
  (offline profile, OCR off) into a copy of the largest store and into an empty
  store, alternating.

Usage:
    python benchmarks/bench_scale.py [--sizes 1000,20000,100000] [--server]
        [--repeats 3] [--passes 2] [--work DIR] [--out benchmarks/results] [--name scale]
Quick run: ``--sizes 1000,5000 --repeats 1``.
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
sys.path.insert(0, str(HERE.parent))
from tests.support.chroma_server import chroma_server  # noqa: E402  (the tests' own helper)

SHARED = HERE.parents[1] / "shared"
MANUAL = SHARED / "corpora" / "gpredict-user-manual.pdf"
TEXT_DIM = 384
WORDS_PER_CHUNK = 150
CHUNKS_PER_PAGE = 4
PAGES_PER_DOC = 250  # 1,000 chunks per document: a long manual
TARGET_COLD_RATIO = 1.5
TARGET_P95_RATIO = 3.0
TARGET_INGEST_RATIO = 1.1


def vocabulary() -> list[str]:
    """Words of the dev manuals, most frequent first, then a long tail of rare terms."""
    counts: dict[str, int] = {}
    import pymupdf

    for pdf in sorted((SHARED / "corpora").glob("*.pdf")):
        with pymupdf.open(pdf) as doc:  # type: ignore[no-untyped-call]
            for page in doc:
                for w in re.findall(r"[A-Za-z][A-Za-z0-9\-]+", page.get_text()):
                    counts[w.lower()] = counts.get(w.lower(), 0) + 1
    words = sorted(counts, key=lambda w: -counts[w])
    rng = np.random.default_rng(1)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words += ["".join(rng.choice(letters, size=rng.integers(4, 10))) for _ in range(30000)]
    return words


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray[Any, Any]:
    """``n`` random directions in ``dim`` dimensions (what a normalised embedder returns)."""
    v = rng.standard_normal((n, dim)).astype(np.float32)
    out: np.ndarray[Any, Any] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def _tiny_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


# -- build --------------------------------------------------------------------------------------


def _targets(folder: Path, url: str | None) -> tuple[Any, list[Any]]:
    """The store written for vectors, and every store that gets the blobs and the commit."""
    import chromadb
    from chromadb.config import Settings

    from multimodal_rag.store.chroma import ChromaStore, open_store

    if url is not None:
        server = open_store(url=url)
        return server, [server]
    client = chromadb.PersistentClient(
        path=str(folder), settings=Settings(anonymized_telemetry=False)
    )
    embedded = ChromaStore(client, location=str(folder), folder=folder)
    # The same Chroma folder as a server store sees it: blobs in NAME_meta.
    as_server = ChromaStore(client, location=str(folder), folder=None)
    return embedded, [embedded, as_server]


def build(folder: Path, chunks: int, figures: int, url: str | None) -> dict[str, Any]:
    """Write the synthetic store through the Store methods; returns counts and seconds."""
    from llama_index.core.schema import ImageNode, NodeRelationship, RelatedNodeInfo, TextNode

    from multimodal_rag.loading.images import png_name, save_png
    from multimodal_rag.search.segment import Segment
    from multimodal_rag.store.base import (
        Catalog,
        DocumentEntry,
        Manifest,
        new_version,
        record_id,
        ref_doc_id,
        segment_key,
    )

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    words = np.array(vocabulary())
    weights = 1.0 / np.arange(1, len(words) + 1) ** 1.05
    weights /= weights.sum()
    vectors_to, blobs_to = _targets(folder, url)
    manifest = Manifest(profile="offline", text_model=OFFLINE_TEXT_MODEL, text_dim=TEXT_DIM)
    png = _tiny_png()
    name = png_name(png)
    if vectors_to.figures_dir is not None:
        save_png(png, vectors_to.figures_dir)
    per_doc = CHUNKS_PER_PAGE * PAGES_PER_DOC
    docs = max(1, -(-chunks // per_doc))
    figs_per_doc = -(-figures // docs) if figures else 0
    entries: dict[str, DocumentEntry] = {}
    segment_s = 0.0
    for d in range(docs):
        doc = f"doc{d}.pdf"
        version = new_version()
        source = RelatedNodeInfo(node_id=ref_doc_id(doc, version))
        n_text = min(per_doc, chunks - d * per_doc)
        n_fig = max(0, min(figs_per_doc, figures - d * figs_per_doc))
        sample = rng.choice(words, size=(n_text, WORDS_PER_CHUNK), p=weights)
        nodes: list[Any] = []
        for j in range(n_text):
            page = j // CHUNKS_PER_PAGE + 1
            text = " ".join(sample[j])
            if n_fig and rng.random() < 0.05:
                text += f" (see Figure {d}.{int(rng.integers(n_fig))})"
            nodes.append(
                TextNode(
                    id_=record_id(f"{doc}::p{page}::t{j}", version),
                    text=text,
                    metadata=_meta(doc, page, "text"),
                    relationships={NodeRelationship.SOURCE: source},
                )
            )
        fig_nodes: list[Any] = []
        fig_words = rng.choice(words, size=(n_fig, 30), p=weights)
        for f in range(n_fig):
            page = int(rng.integers(1, PAGES_PER_DOC + 1))
            label = f"Figure {d}.{f}"
            # image_path is the PNG's name alone: readers resolve it through their own
            # figure folder or the store's PNG blob, as for any client of a server.
            fig_nodes.append(
                ImageNode(
                    id_=record_id(f"{doc}::p{page}::f::{f:08x}", version),
                    text=f"{label} " + " ".join(fig_words[f]),
                    image_path=name,
                    image_mimetype="image/png",
                    metadata=_meta(doc, page, "figure", label, name),
                    relationships={NodeRelationship.SOURCE: source},
                )
            )
        all_nodes = nodes + fig_nodes
        vectors = unit_vectors(rng, len(all_nodes), TEXT_DIM)
        vectors_to.upsert("text", all_nodes, vectors)
        if fig_nodes:
            vectors_to.upsert("figure", fig_nodes, vectors[n_text:])
        t = time.perf_counter()
        segment = Segment.build(
            doc, version, {n.node_id: (n.text, dict(n.metadata)) for n in all_nodes}
        ).to_bytes()
        segment_s += time.perf_counter() - t
        for store in blobs_to:
            store.put_blob(segment_key(doc, version), segment)
            if store.remote_pngs and fig_nodes:
                store.put_blob(store.png_key(doc, version, name), png)
        entries[doc] = DocumentEntry(
            doc=doc,
            content_hash=f"{d:064x}",
            path=f"/synthetic/{doc}",
            pages=PAGES_PER_DOC,
            text_chunks=n_text,
            figures=n_fig,
            version=version,
        )
        print(f"built {doc}: {(d + 1) * per_doc}/{chunks} chunks", file=sys.stderr)
    catalog = Catalog(manifest=manifest.model_copy(update={"generation": 1}), documents=entries)
    for store in blobs_to:
        store.commit(catalog)
    return {
        "chunks": chunks,
        "figures": figures,
        "docs": docs,
        "build_s": time.perf_counter() - started,
        "segments_s": segment_s,
        "counts": vectors_to.counts(),
        "catalog_counts": catalog.counts(),
        "via": "server (HTTP)" if url else "PersistentClient",
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


# -- query ------------------------------------------------------------------------------------


def _questions() -> list[str]:
    path = SHARED / "eval" / "dev-qa.jsonl"
    return [json.loads(ln)["query"] for ln in path.read_text().splitlines() if ln.strip()]


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50_ms": pick(0.5), "p95_ms": pick(0.95), "max_ms": ordered[-1], "n": len(values)}


def _top(profile: cProfile.Profile, sort: str, n: int = 25) -> str:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats(sort).print_stats(n)
    return out.getvalue()


def query(target: str, passes: int, profile: bool) -> dict[str, Any]:
    """Open the store, time the first query, then warm passes; runs in a fresh child."""
    from multimodal_rag.index import MultimodalIndex
    from multimodal_rag.query_intent import asks_for_visual

    started = time.perf_counter()
    where: dict[str, Any] = {"url": target} if target.startswith("http") else {"path": target}
    index = MultimodalIndex.open(**where, create=False)
    index.text_embedder.get_query_embedding("warm up the model")
    load_s = time.perf_counter() - started
    questions = _questions()
    retriever = index.as_retriever()
    first_profile = cProfile.Profile() if profile else None
    t = time.perf_counter()
    if first_profile is not None:
        first_profile.enable()
    retriever.search(questions[0])
    if first_profile is not None:
        first_profile.disable()
    first_ms = (time.perf_counter() - t) * 1000
    rss_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    every: list[list[float]] = []
    visual: list[list[float]] = []
    for _ in range(passes):
        times, vis = [], []
        for q in questions:
            t = time.perf_counter()
            retriever.search(q)
            ms = (time.perf_counter() - t) * 1000
            times.append(ms)
            if asks_for_visual(q):
                vis.append(ms)
        every.append(times)
        visual.append(vis)
    out: dict[str, Any] = {
        "load_s": load_s,
        "first_query_ms": first_ms,
        "rss_after_first_query_mib": rss_first,
        "questions": len(questions),
        "visual_questions": sum(asks_for_visual(q) for q in questions),
    }
    if passes:
        # Per pass, then the median over passes: one slow pass (a neighbour's burst) is dropped.
        out["warm_all"] = {
            k: statistics.median(_ms(p)[k] for p in every) for k in ("p50_ms", "p95_ms")
        }
        out["warm_visual"] = {
            k: statistics.median(_ms(p)[k] for p in visual) for k in ("p50_ms", "p95_ms")
        }
    if profile:
        warm = cProfile.Profile()
        warm.enable()
        for q in questions:
            retriever.search(q)
        warm.disable()
        assert first_profile is not None
        out["profile_first"] = _top(first_profile, "cumulative")
        out["profile_warm"] = _top(warm, "tottime")
    return out


# -- ingest -----------------------------------------------------------------------------------


def ingest(folder: Path, pdf: Path) -> dict[str, Any]:
    """Add one real manual (offline profile, OCR off) to a store; runs in a fresh child."""
    from multimodal_rag.config import LoaderConfig
    from multimodal_rag.index import MultimodalIndex

    started = time.perf_counter()
    index = MultimodalIndex.open(
        folder, profile_name="offline", loader_config=LoaderConfig(ocr=False)
    )
    open_s = time.perf_counter() - started
    t = time.perf_counter()
    report = index.ingest([pdf])
    ingest_s = time.perf_counter() - t
    if report.failed:
        raise RuntimeError(f"ingest failed: {report.failed}")
    return {
        "open_s": open_s,
        "ingest_s": ingest_s,
        "total_s": time.perf_counter() - started,
        "documents": [d.doc for d in report.documents],
        "text_chunks": sum(d.text_chunks for d in report.documents),
        "figures": sum(d.figures for d in report.documents),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# -- orchestration ----------------------------------------------------------------------------


def child(
    args: list[str], env: dict[str, str] | None = None
) -> tuple[dict[str, Any], float, float]:
    """Run this script in a fresh process; returns its JSON, wall seconds and peak RSS (MiB)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdout=out,
            env={**os.environ, **(env or {})},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode()
    if code != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed with exit code {code}")
    return json.loads(text.splitlines()[-1]), wall, usage.ru_maxrss / 1024


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def _query_runs(
    target: str, repeats: int, passes: int, cold: Any, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``repeats`` cold-cache and cached-state children, alternating; medians and runs."""
    runs: dict[str, list[dict[str, Any]]] = {"cold": [], "cached": []}
    for _ in range(repeats):
        cold()
        got, _, rss = child(["--phase", "query", "--target", target, "--passes", str(passes)], env)
        runs["cold"].append({**got, "peak_rss_mib": rss})
        got, _, rss = child(["--phase", "query", "--target", target, "--passes", "0"], env)
        runs["cached"].append({**got, "peak_rss_mib": rss})
    warm = [r for r in runs["cold"] if "warm_all" in r]
    return {
        "cold_first_query_ms": _median(runs["cold"], "first_query_ms"),
        "cached_first_query_ms": _median(runs["cached"], "first_query_ms"),
        "load_s": _median(runs["cold"], "load_s"),
        "cold_peak_rss_mib": _median(runs["cold"], "peak_rss_mib"),
        "warm_all": {
            k: statistics.median(r["warm_all"][k] for r in warm) for k in ("p50_ms", "p95_ms")
        },
        "warm_visual": {
            k: statistics.median(r["warm_visual"][k] for r in warm) for k in ("p50_ms", "p95_ms")
        },
        "visual_questions": warm[0]["visual_questions"],
        "questions": warm[0]["questions"],
        "runs": runs,
    }


def measure_size(work: Path, chunks: int, figures: int, args: argparse.Namespace) -> dict[str, Any]:
    """Build (or reuse) the store of one size and measure it embedded and on a server."""
    from multimodal_rag.embedding.onnx_backend import cache_root

    folder = work / f"store-{chunks}"
    saved = work / f"store-{chunks}.build.json"
    http = bool(args.server and args.http_build and chunks <= args.http_build_max)
    wanted = {"chunks": chunks, "figures": figures, "http": http}
    previous = json.loads(saved.read_text()) if saved.is_file() else {}
    if previous.get("wanted") == wanted and folder.is_dir():
        built = previous["built"]
    elif args.prebuilt:
        # A store that another process is building with --phase build: wait for its commit.
        while not (folder / "blobs" / "catalog.json").is_file():
            time.sleep(10)
        time.sleep(30)
        built = {"chunks": chunks, "figures": figures, "note": "built by another process"}
    else:
        shutil.rmtree(folder, ignore_errors=True)
        build_args = ["--phase", "build", "--target", str(folder), "--chunks", str(chunks)]
        got, wall, rss = child([*build_args, "--figures", str(figures)])
        built = {**got, "wall_s": wall, "peak_rss_mib": rss}
        if http:
            server_data = work / f"server-{chunks}"
            shutil.rmtree(server_data, ignore_errors=True)
            server_data.mkdir(parents=True)
            with chroma_server(server_data, timeout=120.0) as url:
                got, wall, rss = child([*build_args, "--figures", str(figures), "--url", url])
            built["http"] = {**got, "wall_s": wall, "peak_rss_mib": rss}
        saved.write_text(json.dumps({"wanted": wanted, "built": built}))
    print(f"== {chunks} chunks: built {built}", file=sys.stderr)
    result: dict[str, Any] = {"build": built}
    result["embedded"] = _query_runs(
        str(folder),
        args.repeats,
        args.passes,
        lambda: shutil.rmtree(folder / "cache", ignore_errors=True),
    )
    if args.server:
        data = work / f"server-{chunks}" if "http" in built else folder
        cache = work / f"client-cache-{chunks}"
        shutil.rmtree(cache, ignore_errors=True)
        # MMRAG_CACHE_DIR also holds the ONNX export of the text model; a client without it
        # exports the model at open (~550 MiB more peak RSS), which is not the store's cost.
        onnx = cache_root() / "onnx"
        if onnx.is_dir():
            shutil.copytree(onnx, cache / "onnx")
        with chroma_server(data, timeout=120.0) as url:
            result["server"] = _query_runs(
                url,
                args.repeats,
                args.passes,
                lambda: shutil.rmtree(cache / "stores", ignore_errors=True),
                env={"MMRAG_CACHE_DIR": str(cache)},
            )
            if args.profile:
                shutil.rmtree(cache / "stores", ignore_errors=True)
                got, _, _ = child(
                    ["--phase", "query", "--target", url, "--passes", "0", "--profile"],
                    {"MMRAG_CACHE_DIR": str(cache)},
                )
                result["server_profile"] = {k: got[k] for k in ("profile_first", "profile_warm")}
        result["cold_ratio_server_vs_embedded"] = (
            result["server"]["cold_first_query_ms"] / result["embedded"]["cold_first_query_ms"]
        )
    if args.profile:
        shutil.rmtree(folder / "cache", ignore_errors=True)
        got, _, _ = child(
            ["--phase", "query", "--target", str(folder), "--passes", "0", "--profile"]
        )
        result["embedded_profile"] = {k: got[k] for k in ("profile_first", "profile_warm")}
    return result


def measure_ingest(work: Path, big: Path, repeats: int) -> dict[str, Any]:
    """Add the manual to copies of ``big`` and to empty stores, alternating."""
    runs: dict[str, list[dict[str, Any]]] = {"empty": [], "large": []}
    for i in range(repeats):
        for kind in ("empty", "large"):
            target = work / f"ingest-{kind}"
            shutil.rmtree(target, ignore_errors=True)
            if kind == "large":
                shutil.copytree(big, target, ignore=shutil.ignore_patterns("cache"))
            got, wall, rss = child(["--phase", "ingest", "--target", str(target)])
            runs[kind].append({**got, "wall_s": wall, "child_peak_rss_mib": rss})
            print(
                f"ingest {kind} #{i + 1}: {got['ingest_s']:.1f} s, {rss:.0f} MiB", file=sys.stderr
            )
            shutil.rmtree(target, ignore_errors=True)
    out: dict[str, Any] = {"store": big.name, "manual": MANUAL.name, "runs": runs}
    for kind, rows in runs.items():
        out[kind] = {
            "ingest_s": _median(rows, "ingest_s"),
            "wall_s": _median(rows, "wall_s"),
            "peak_rss_mib": _median(rows, "child_peak_rss_mib"),
        }
    out["time_ratio"] = out["large"]["ingest_s"] / out["empty"]["ingest_s"]
    out["wall_ratio"] = out["large"]["wall_s"] / out["empty"]["wall_s"]
    out["rss_ratio"] = out["large"]["peak_rss_mib"] / out["empty"]["peak_rss_mib"]
    return out


def render(result: dict[str, Any]) -> str:
    sizes = result["sizes"]
    server = result["server"]
    lines = [
        f"# Scale: embedded{' and server' if server else ''} stores, "
        f"{', '.join(f'{s:,}' for s in sizes)} chunks (+{result['figure_share']:.0%} figures)",
        "",
        f"{result['repeats']} fresh processes per cell (medians), {result['passes']} warm passes "
        f"of {result['questions']} dev questions ({result['visual_questions']} picture-asking). "
        f"Load average at the end: {', '.join(f'{x:.1f}' for x in result['load_average'])}.",
        "",
        "| chunks | build s | mode | cold first query ms | cached first query ms "
        "| warm p50 / p95 ms | visual p50 / p95 ms | cold peak RSS MiB |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        cell = result["by_size"][str(size)]
        build = cell["build"]
        for mode in ("embedded", "server"):
            if mode not in cell:
                continue
            m = cell[mode]
            b = (
                f"{build['http']['build_s']:.0f} (HTTP)"
                if mode == "server" and "http" in build
                else f"{build['build_s']:.0f}"
                if "build_s" in build
                else "–"
            )
            lines.append(
                f"| {size:,} | {b} | {mode} | {m['cold_first_query_ms']:.0f} "
                f"| {m['cached_first_query_ms']:.0f} "
                f"| {m['warm_all']['p50_ms']:.0f} / {m['warm_all']['p95_ms']:.0f} "
                f"| {m['warm_visual']['p50_ms']:.0f} / {m['warm_visual']['p95_ms']:.0f} "
                f"| {m['cold_peak_rss_mib']:.0f} |"
            )
    lines += ["", "Targets:", ""]
    small, big = str(sizes[0]), str(sizes[-1])
    for size in sizes:
        cell = result["by_size"][str(size)]
        if "cold_ratio_server_vs_embedded" in cell:
            r = cell["cold_ratio_server_vs_embedded"]
            ok = "meets" if r <= TARGET_COLD_RATIO else "MISSES"
            lines.append(
                f"- {size:,}: second client's cold first query on the server / embedded cold "
                f"first query = **{r:.2f}x** (target <= {TARGET_COLD_RATIO}x: {ok})"
            )
    for mode in ("embedded", "server"):
        if mode not in result["by_size"][big]:
            continue
        for which in ("warm_all", "warm_visual"):
            r = (
                result["by_size"][big][mode][which]["p95_ms"]
                / result["by_size"][small][mode][which]["p95_ms"]
            )
            ok = "meets" if r <= TARGET_P95_RATIO else "MISSES"
            lines.append(
                f"- {mode}, {which.replace('warm_', '')} questions: p95 at {int(big):,} / p95 at "
                f"{int(small):,} = **{r:.2f}x** (target <= {TARGET_P95_RATIO}x: {ok})"
            )
    ing = result.get("ingest")
    if ing:
        ok = "meets" if ing["time_ratio"] <= TARGET_INGEST_RATIO else "MISSES"
        ok_rss = "meets" if ing["rss_ratio"] <= TARGET_INGEST_RATIO else "MISSES"
        lines += [
            "",
            f"Adding {ing['manual']} (offline profile, OCR off), "
            f"{len(ing['runs']['empty'])} runs each, alternating:",
            "",
            "| into | ingest s | process wall s | peak RSS MiB |",
            "|---|---:|---:|---:|",
            f"| empty store | {ing['empty']['ingest_s']:.1f} | {ing['empty']['wall_s']:.1f} "
            f"| {ing['empty']['peak_rss_mib']:.0f} |",
            f"| {ing['store']} | {ing['large']['ingest_s']:.1f} | {ing['large']['wall_s']:.1f} "
            f"| {ing['large']['peak_rss_mib']:.0f} |",
            "",
            f"- time ratio **{ing['time_ratio']:.2f}x** (target <= {TARGET_INGEST_RATIO}x: {ok}); "
            f"peak RSS ratio **{ing['rss_ratio']:.2f}x** ({ok_rss})",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,20000,100000", help="text chunks, comma-separated")
    parser.add_argument("--figure-share", type=float, default=0.1)
    parser.add_argument("--server", action="store_true", help="also measure a `chroma run` server")
    parser.add_argument(
        "--http-build", action="store_true", help="build the server's copy through the server"
    )
    parser.add_argument(
        "--http-build-max",
        type=int,
        default=20_000,
        help="with --http-build, larger sizes are built directly (the server serves that folder)",
    )
    parser.add_argument(
        "--prebuilt",
        action="store_true",
        help="a store folder without a build record is being built elsewhere: wait and use it",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ingest-repeats", type=int, default=3)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--no-ingest", action="store_true", help="skip the ingest measurement")
    parser.add_argument("--profile", action="store_true", help="cProfile a cold child per size")
    parser.add_argument("--work", type=Path, default=None, help="keep and reuse stores here")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--name", default="scale", help="output file stem")
    parser.add_argument("--phase", choices=("build", "query", "ingest"), help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--chunks", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--figures", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "build":
        print(json.dumps(build(Path(args.target), args.chunks, args.figures, args.url)))
        return
    if args.phase == "query":
        print(json.dumps(query(args.target, args.passes, args.profile)))
        return
    if args.phase == "ingest":
        print(json.dumps(ingest(Path(args.target), MANUAL)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="mmrag-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    by_size: dict[str, Any] = {}
    for size in sizes:
        by_size[str(size)] = measure_size(work, size, round(size * args.figure_share), args)
        # Kept as it goes: a long run stopped half way still leaves what it measured.
        (work / "partial.json").write_text(json.dumps(by_size, indent=2) + "\n")
    result: dict[str, Any] = {
        "sizes": sizes,
        "figure_share": args.figure_share,
        "server": args.server,
        "repeats": args.repeats,
        "passes": args.passes,
        "by_size": by_size,
    }
    if not args.no_ingest:
        result["ingest"] = measure_ingest(work, work / f"store-{sizes[-1]}", args.ingest_repeats)
    first = by_size[str(sizes[0])]["embedded"]
    result["questions"] = first["questions"]
    result["visual_questions"] = first["visual_questions"]
    result["load_average"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    profiles = {
        f"{size} {k}": by_size[str(size)].pop(k)
        for size in sizes
        for k in ("embedded_profile", "server_profile")
        if k in by_size[str(size)]
    }
    if profiles:
        (args.out / f"{args.name}-profile.txt").write_text(
            "\n\n".join(f"== {k}: {p} ==\n{v[p]}" for k, v in profiles.items() for p in v)
        )
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
