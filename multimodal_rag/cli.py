"""The `mmrag` command line.

Every command takes ``--json`` and then prints exactly one JSON document on
stdout; logs and progress bars go to stderr. Exit code 0 on success, 2 on bad
input (one line on stderr, no traceback). Heavy libraries are imported only
inside the command that needs them, so ``mmrag --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import MultimodalRAGError

EXIT_OK = 0
EXIT_BAD_INPUT = 2

logger = logging.getLogger("multimodal_rag.cli")


class _UsageError(Exception):
    """Bad command-line input found by us rather than by argparse."""


def _store_args(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", metavar="DIR", help="folder of an embedded Chroma store")
    where.add_argument(
        "--chroma-url", metavar="URL", help="Chroma server, e.g. http://127.0.0.1:8000"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmrag",
        description="Multimodal RAG over manuals: ingest PDFs, search passages and figures.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        return p

    p = command("ingest", "ingest PDFs or folders of articles into a store")
    p.add_argument("paths", nargs="+", metavar="PATH")
    _store_args(p)
    p.add_argument(
        "--profile",
        choices=("default", "offline"),
        default=None,
        help="models to use (default for a new store: 'default'; an existing store keeps its own)",
    )
    p.add_argument("--chunk-size", type=int, default=None, help="target chunk length (characters)")
    p.add_argument("--no-ocr", action="store_true", help="do not OCR labels inside raster figures")
    p.add_argument(
        "--ocr-engine",
        choices=("auto", "libtesseract", "tesseract"),
        default=None,
        help="how OCR reaches Tesseract (default auto: its library in-process, else the command)",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "int8"),
        default=None,
        help="text model weights of a new store (default fp32; int8 embeds faster, see docs)",
    )
    p.add_argument(
        "--caption-missing",
        action="store_true",
        help="write a caption for each figure without one, with an image-to-text model",
    )
    p.add_argument(
        "--caption-model",
        metavar="MODEL",
        default=None,
        help="hub id or folder of that model (default: Salesforce/blip-image-captioning-base)",
    )

    p = command("query", "search passages and figures")
    p.add_argument("text", nargs="?", default="", metavar="TEXT")
    _store_args(p)
    p.add_argument("--image", metavar="FILE", help="query image (needs a store with CLIP vectors)")
    p.add_argument("--top-k", type=int, default=10)

    p = command("ask", "answer a question with citations (extractive without an LLM)")
    p.add_argument("text", metavar="TEXT")
    _store_args(p)
    p.add_argument("--top-k", type=int, default=5)

    p = command("figures", "list the figures the loader finds in a PDF (no index)")
    p.add_argument("pdf", metavar="PDF")
    p.add_argument("--out", metavar="DIR", help="write the figures' PNG files here")

    p = command("eval", "evaluate retrieval on a JSONL question file")
    p.add_argument("questions", metavar="QA.jsonl")
    _store_args(p)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--report", metavar="DIR", help="also write JSON, markdown and a PNG chart")

    p = command("remove", "remove a document from a store")
    p.add_argument("doc", metavar="DOC")
    _store_args(p)

    p = command("info", "models, dimensions, counts and documents of a store")
    _store_args(p)

    p = command("match", "image-text similarity (CLIP/SigLIP)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--model", default=None, help="image model (default: the default profile's)")
    return parser


def _open_index(args: argparse.Namespace, *, create: bool, profile: str | None = None) -> Any:
    from .config import LoaderConfig
    from .index import MultimodalIndex

    loader = LoaderConfig()
    if getattr(args, "chunk_size", None):
        loader = loader.model_copy(update={"chunk_size": args.chunk_size})
    if getattr(args, "no_ocr", False):
        loader = loader.model_copy(update={"ocr": False})
    if getattr(args, "ocr_engine", None):
        loader = loader.model_copy(update={"ocr_engine": args.ocr_engine})
    return MultimodalIndex.open(
        args.store,
        url=args.chroma_url,
        profile_name=profile,
        create=create,
        loader_config=loader,
        text_precision=getattr(args, "precision", None),
    )


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if args.json:
        json.dump(payload, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def _hit_line(hit: Any) -> str:
    where = f"{hit.doc} p.{hit.page}"
    label = f" [{hit.figure or 'figure'}]" if hit.kind == "figure" else ""
    snippet = " ".join((hit.caption or hit.text).split())[:160]
    line = f"{hit.rank:>3}. {where}{label}  {snippet}"
    return line + (f"\n     image: {hit.image}" if hit.image else "")


def _cmd_ingest(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise _UsageError(f"no such file or folder: {missing[0]}")
    if args.caption_model and not args.caption_missing:
        raise _UsageError("--caption-model needs --caption-missing")
    captioner = None
    if args.caption_missing:
        from .captioning import load_captioner

        # Loaded before the store is touched: a missing model fails fast, changing nothing.
        captioner = load_captioner(args.caption_model)
    index = _open_index(args, create=True, profile=args.profile)
    report = index.ingest(
        args.paths, progress=not args.json or sys.stderr.isatty(), captioner=captioner
    )
    payload = {
        "documents": [vars(d) for d in report.documents],
        "embeddings_computed": report.embeddings_computed,
        "seconds": round(report.seconds, 3),
        **{k: v for k, v in index.info().items() if k in ("text_chunks", "figures")},
    }
    lines = [
        f"{d.doc}: {d.status} ({d.text_chunks} chunks, {d.figures} figures, {d.pages} pages)"
        + (f" — {d.error}" if d.error else "")
        for d in report.documents
    ]
    lines.append(f"{report.embeddings_computed} embeddings in {report.seconds:.1f} s")
    _emit(args, payload, "\n".join(lines))
    if report.failed:
        print(
            f"mmrag: {len(report.failed)} document(s) failed: {report.failed[0].error}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    return EXIT_OK


def _cmd_query(args: argparse.Namespace) -> int:
    if not args.text.strip() and not args.image:
        raise _UsageError("the query is empty: give TEXT, --image FILE, or both")
    if args.top_k < 1:
        raise _UsageError("--top-k must be at least 1")
    from .retrieval import RetrieverConfig

    index = _open_index(args, create=False)
    hits = index.as_retriever(RetrieverConfig(top_k=args.top_k)).search(
        args.text or None, image=args.image
    )
    payload = {"query": args.text, "image": args.image, "hits": [h.to_json() for h in hits]}
    text = "\n".join(_hit_line(h) for h in hits) or "no results"
    _emit(args, payload, text)
    return EXIT_OK


def _cmd_ask(args: argparse.Namespace) -> int:
    index = _open_index(args, create=False)
    engine = index.as_query_engine(llm=None, top_k=args.top_k)
    response = engine.query(args.text)
    payload = {"query": args.text, "answer": str(response), **(response.metadata or {})}
    _emit(args, payload, str(response))
    return EXIT_OK


def _cmd_figures(args: argparse.Namespace) -> int:
    from .loading.images import save_png
    from .loading.pdf import load_pdf

    loaded = load_pdf(args.pdf)
    out = Path(args.out) if args.out else None
    figures: list[dict[str, Any]] = []
    for fig in loaded.figures:
        image = str(save_png(fig.image_png, out)) if out else None
        figures.append(
            {
                "page": fig.page,
                "bbox": [round(v, 2) for v in fig.bbox],
                "figure": fig.label,
                "caption": fig.caption,
                "kind": fig.kind,
                "parts": fig.parts,
                "labels_in_figure": fig.labels_in_figure,
                "image": image,
            }
        )
    lines = [
        f"p.{f['page']:>4}  {f['kind']:<6} {f['figure'] or '(uncaptioned)'}"
        f"  {(f['caption'] or '')[:90]}" + (f"  -> {f['image']}" if f["image"] else "")
        for f in figures
    ]
    lines.append(f"{len(figures)} figures in {loaded.doc} ({loaded.pages} pages)")
    _emit(args, {"doc": loaded.doc, "figures": figures}, "\n".join(lines))
    return EXIT_OK


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate, load_questions, markdown_table, write_report
    from .retrieval import RetrieverConfig

    questions = load_questions(args.questions)
    index = _open_index(args, create=False)
    retriever = index.as_retriever(RetrieverConfig(top_k=args.top_k))
    result = evaluate(questions, retriever, k=args.top_k)
    if args.report:
        write_report(result, args.report)
    _emit(args, result.to_json(), markdown_table(result))
    return EXIT_OK


def _cmd_remove(args: argparse.Namespace) -> int:
    index = _open_index(args, create=False)
    if not index.remove(args.doc):
        raise _UsageError(f"{args.doc} is not in the store (see `mmrag info`)")
    _emit(args, {"removed": args.doc}, f"removed {args.doc}")
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    from .storage import open_store

    store = open_store(args.store, url=args.chroma_url, create=False)
    payload = store.describe()
    lines = [f"store: {store.location}", f"models: {payload['models']}"]
    lines += [
        f"  {d['doc']}: {d['pages']} pages, {d['text_chunks']} chunks, {d['figures']} figures"
        for d in payload["documents"]
    ]
    _emit(args, payload, "\n".join(lines))
    return EXIT_OK


def _cmd_match(args: argparse.Namespace) -> int:
    from .config import profile
    from .embedding import load_image_embedder
    from .matching import match

    model = args.model or profile("default").image_model or ""
    result = match(args.image, args.texts, load_image_embedder(model))
    payload = result.to_json()
    lines = [
        f"{s:+.4f}  {p:6.1%}  {t}"
        for t, s, p in zip(args.texts, result.similarities, result.probabilities, strict=True)
    ]
    _emit(args, payload, "\n".join(lines))
    return EXIT_OK


_COMMANDS = {
    "ingest": _cmd_ingest,
    "query": _cmd_query,
    "ask": _cmd_ask,
    "figures": _cmd_figures,
    "eval": _cmd_eval,
    "remove": _cmd_remove,
    "info": _cmd_info,
    "match": _cmd_match,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="mmrag: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return _COMMANDS[args.command](args)
    except (MultimodalRAGError, _UsageError) as e:
        print(f"mmrag: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("mmrag: interrupted; run the same command again to finish", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
