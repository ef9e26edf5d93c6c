"""The `mmrag` command line.

Every command takes ``--json`` and then prints exactly one JSON document on
stdout, also when it fails (``{"error": {"type", "message", ...}}``; ``ingest``
reports failed documents in its usual document list); logs and progress bars
go to stderr. Exit code 0 on success, 2 on bad input or a fault (a full disk,
a read-only store, a broken file): one line on stderr naming the file, no
traceback. A failed document of ``ingest`` is one line and does not stop the
others. A reader that closes the pipe early (``mmrag info --json | head``)
ends the command quietly with exit code 141, as a shell does. Heavy libraries
are imported only inside the command that needs them, so ``mmrag --help``
answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import MultimodalRAGError

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `cmd | head`

logger = logging.getLogger("multimodal_rag.cli")


class _UsageError(Exception):
    """Bad command-line input found by us rather than by argparse."""


def _store_args(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", metavar="DIR", help="folder of an embedded Chroma store")
    where.add_argument(
        "--chroma-url", metavar="URL", help="Chroma server, e.g. http://127.0.0.1:8000"
    )


def _lock_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for another writer of the store (default 60)",
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
    _lock_args(p)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes that parse documents (figures, OCR) in parallel while this one "
        "embeds and writes (default: the usable CPUs, capped by memory)",
    )
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="load and embed on the Ray cluster at ADDRESS (HOST:PORT); needs the ray extra",
    )
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
    p.add_argument(
        "--llm-url",
        metavar="URL",
        help="OpenAI-compatible server (Ollama, llama.cpp, vLLM, LM Studio, OpenAI), "
        "e.g. http://127.0.0.1:11434/v1; API key from OPENAI_API_KEY when set",
    )
    p.add_argument("--llm-model", metavar="NAME", help="model name the server serves")
    p.add_argument(
        "--multimodal",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send figures to the LLM as images (default: decided by the model name)",
    )
    p.add_argument("--llm-timeout", type=float, default=120.0, metavar="SECONDS", help="per answer")

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
    _lock_args(p)

    p = command("info", "models, dimensions, counts and documents of a store")
    _store_args(p)

    p = command("match", "image-text similarity (CLIP/SigLIP)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--model", default=None, help="image model (default: the default profile's)")
    return parser


def _check_url(url: str | None) -> None:
    if url is None:
        return
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - parsing the port is what raises for "http://h:x"
    except ValueError as e:
        raise _UsageError(f"--chroma-url {url!r} is not a valid URL ({e})") from e
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise _UsageError(f"--chroma-url {url!r}: expected a URL like http://127.0.0.1:8000")


@contextmanager
def _store_folder(args: argparse.Namespace, *, changes: bool) -> Iterator[str | None]:
    """The folder to open for ``args.store``: itself, or a private copy when it cannot be
    written and the command only reads (see :mod:`multimodal_rag.readonly`)."""
    _check_url(args.chroma_url)
    if args.store is None or not Path(args.store).is_dir():
        yield args.store
        return
    from .errors import StoreError
    from .readonly import private_copy, writable

    ok, why = writable(args.store)
    if ok:
        yield args.store
    elif changes:
        raise StoreError(f"{why}; `mmrag {args.command}` changes the store", location=args.store)
    else:
        with private_copy(args.store, why) as copy:
            yield str(copy)


def _point_back(store: Any, args: argparse.Namespace) -> None:
    """Make a store opened from a private copy name, and read figures from, the original."""
    if args.store is not None and Path(store.location) != Path(args.store):
        store.location = args.store
        store.figures_dir = Path(args.store) / "figures"


def _loader_config(args: argparse.Namespace) -> Any:
    from .config import LoaderConfig

    loader = LoaderConfig()
    if getattr(args, "chunk_size", None):
        loader = loader.model_copy(update={"chunk_size": args.chunk_size})
    if getattr(args, "no_ocr", False):
        loader = loader.model_copy(update={"ocr": False})
    if getattr(args, "ocr_engine", None):
        loader = loader.model_copy(update={"ocr_engine": args.ocr_engine})
    return loader


def _open_index(
    args: argparse.Namespace, folder: str | None, *, create: bool, profile: str | None = None
) -> Any:
    from .index import MultimodalIndex

    index = MultimodalIndex.open(
        folder,
        url=args.chroma_url,
        profile_name=profile,
        create=create,
        loader_config=_loader_config(args),
        text_precision=getattr(args, "precision", None),
        lock_timeout=getattr(args, "lock_timeout", 60.0),
    )
    _point_back(index.store, args)
    return index


def _retriever_config(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from .retrieval import RetrieverConfig

    try:
        return RetrieverConfig(top_k=args.top_k)
    except ValidationError as e:
        limits = RetrieverConfig.model_fields["top_k"].metadata
        bounds = {k: getattr(m, k) for m in limits for k in ("ge", "le") if hasattr(m, k)}
        raise _UsageError(
            f"--top-k {args.top_k}: must be from {bounds.get('ge', 1)} to {bounds.get('le', '?')}"
        ) from e


_emitted = False  # whether this run printed its JSON document already


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    global _emitted
    _emitted = True
    if args.json:
        json.dump(payload, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


def _hit_line(hit: Any) -> str:
    where = f"{hit.doc} p.{hit.page}"
    label = f" [{hit.figure or 'figure'}]" if hit.kind == "figure" else ""
    snippet = " ".join((hit.caption or hit.text).split())[:160]
    line = f"{hit.rank:>3}. {where}{label}  {snippet}"
    return line + (f"\n     image: {hit.image}" if hit.image else "")


@contextmanager
def _started_loaders(args: argparse.Namespace) -> Iterator[Any]:
    """The processes that load the documents (none with ``--ray``), started before the
    store is opened: the smallest PDFs, which the ingest takes first, are parsed while
    this process imports LlamaIndex, Chroma and the model (about 3 s here)."""
    if args.ray:
        yield None
        return
    import functools

    from .loading.pdf import load_pdf
    from .loading.pool import LoadPool, default_workers

    pool = LoadPool(args.workers or default_workers())
    try:
        config = _loader_config(args)
        pdfs = [Path(p) for p in args.paths if p.lower().endswith(".pdf") and Path(p).is_file()]
        first = sorted(pdfs, key=lambda p: p.stat().st_size)[: pool.workers]
        pool.prefetch(functools.partial(load_pdf, p, config) for p in first)
        yield pool
    finally:
        pool.close()


def _cmd_ingest(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise _UsageError(f"no such file or folder: {missing[0]}")
    if args.workers is not None and args.workers < 1:
        raise _UsageError("--workers must be at least 1")
    if args.caption_model and not args.caption_missing:
        raise _UsageError("--caption-model needs --caption-missing")
    captioner = None
    if args.caption_missing:
        from .captioning import load_captioner

        # Loaded before the store is touched: a missing model fails fast, changing nothing.
        captioner = load_captioner(args.caption_model)
    with _started_loaders(args) as loaders:
        with _store_folder(args, changes=True) as folder:
            index = _open_index(args, folder, create=True, profile=args.profile)
        report = index.ingest(
            args.paths,
            progress=not args.json or sys.stderr.isatty(),
            captioner=captioner,
            ray_address=args.ray,
            loaders=loaders,
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
    for failed in report.failed:
        print(f"mmrag: error: {_one_line(failed.error or failed.doc)}", file=sys.stderr)
    return EXIT_BAD_INPUT if report.failed else EXIT_OK


def _cmd_query(args: argparse.Namespace) -> int:
    if not args.text.strip() and not args.image:
        raise _UsageError("the query is empty: give TEXT, --image FILE, or both")
    config = _retriever_config(args)
    with _store_folder(args, changes=False) as folder:
        index = _open_index(args, folder, create=False)
        hits = index.as_retriever(config).search(args.text or None, image=args.image)
    payload = {"query": args.text, "image": args.image, "hits": [h.to_json() for h in hits]}
    text = "\n".join(_hit_line(h) for h in hits) or "no results"
    _emit(args, payload, text)
    return EXIT_OK


def _ask_llm(args: argparse.Namespace) -> Any:
    if args.top_k < 1:
        raise _UsageError("--top-k must be at least 1")
    if not args.llm_url:
        if args.llm_model or args.multimodal is not None:
            raise _UsageError("--llm-model and --multimodal need --llm-url")
        return None
    if not args.llm_model:
        raise _UsageError("--llm-url needs --llm-model NAME (the model the server serves)")
    from .llms import openai_compatible_llm

    return openai_compatible_llm(args.llm_url, args.llm_model, timeout=args.llm_timeout)


def _cmd_ask(args: argparse.Namespace) -> int:
    from llama_index.core.schema import QueryBundle

    from .citations import citations_from_response, format_sources
    from .errors import LLMError

    _retriever_config(args)
    llm = _ask_llm(args)  # before the store opens: a bad URL fails fast
    error: LLMError | None = None
    with _store_folder(args, changes=False) as folder:
        index = _open_index(args, folder, create=False)
        engine = index.as_query_engine(llm, top_k=args.top_k, multimodal=args.multimodal)
        try:
            response = engine.answer(QueryBundle(args.text))
        except LLMError as e:
            if e.fallback is None:
                raise
            # Retrieval worked: print the cited passages, then fail with the LLM's one line.
            error, response = e, e.fallback
    answer = str(response.response or "")
    payload: dict[str, Any] = {"query": args.text, "answer": answer, **(response.metadata or {})}
    if llm is not None:
        payload["llm"] = {
            "url": args.llm_url,
            "model": args.llm_model,
            "multimodal": engine.multimodal,
            "reason": engine.multimodal_reason,
        }
    payload["error"] = str(error) if error else None
    sources = format_sources(citations_from_response(response), answer)
    _emit(args, payload, f"{answer}\n\n{sources}" if sources else answer)
    if error is not None:
        print(f"mmrag: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
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

    config = _retriever_config(args)
    if args.report:
        try:  # before anything is computed or written
            import matplotlib  # noqa: F401
        except ImportError as e:
            raise _UsageError(
                "--report draws a chart with matplotlib, which is not installed: "
                "pip install 'multimodal_rag[eval]'"
            ) from e
    questions = load_questions(args.questions)
    with _store_folder(args, changes=False) as folder:
        index = _open_index(args, folder, create=False)
        result = evaluate(questions, index.as_retriever(config), k=args.top_k)
    if args.report:
        write_report(result, args.report)
    _emit(args, result.to_json(), markdown_table(result))
    return EXIT_OK


def _cmd_remove(args: argparse.Namespace) -> int:
    with _store_folder(args, changes=True) as folder:
        index = _open_index(args, folder, create=False)
    if not index.remove(args.doc):
        raise _UsageError(f"{args.doc} is not in the store (see `mmrag info`)")
    _emit(args, {"removed": args.doc}, f"removed {args.doc}")
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    from .store import open_store

    with _store_folder(args, changes=False) as folder:
        store = open_store(folder, url=args.chroma_url, create=False)
        _point_back(store, args)
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
    global _emitted
    _emitted = False
    for stream in (sys.stdout, sys.stderr):
        # A file name with bytes that are not UTF-8 must print, not raise: write them \xNN.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        return _COMMANDS[args.command](args)
    except BrokenPipeError:
        # The reader is gone (`| head`): nothing more to say, and nobody to say it to.
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (MultimodalRAGError, _UsageError) as e:
        return _fail(args, e, str(e))
    except OSError as e:  # a full disk or a vanished file below our own checks
        where = f"{e.filename}: " if e.filename else ""
        return _fail(args, e, f"{where}{e.strerror or e}")
    except RecursionError as e:
        return _fail(args, e, "input nested too deeply to be read")
    except Exception as e:
        # Chroma raises its own errors where the store layer lets one through
        # (a database opened on a full disk); anything else is a bug: traceback.
        if type(e).__module__.split(".")[0] != "chromadb":
            raise
        where = getattr(args, "store", None) or getattr(args, "chroma_url", None) or "?"
        return _fail(args, e, f"store {where}: Chroma failed: {e}")
    except KeyboardInterrupt:
        print("mmrag: interrupted; run the same command again to finish", file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(args: argparse.Namespace, error: BaseException, message: str) -> int:
    """One line on stderr; with ``--json`` also the failure as the run's JSON document."""
    message = _one_line(message)
    print(f"mmrag: error: {message}", file=sys.stderr)
    if getattr(args, "json", False) and not _emitted:
        detail: dict[str, Any] = {"type": type(error).__name__.lstrip("_"), "message": message}
        for key in ("path", "page", "line", "location", "model"):
            value = getattr(error, key, None)
            if value is not None:
                detail[key] = value if isinstance(value, int) else str(value)
        try:
            _emit(args, {"error": detail}, "")
        except BrokenPipeError:
            pass
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
