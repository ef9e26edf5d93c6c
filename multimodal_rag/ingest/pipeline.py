"""The ingest pipeline: sources in, documents loaded (here, in worker processes or on Ray),
committed one by one by the single writer that holds the store's lock."""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import LoaderConfig
from ..errors import DocumentLoadError
from ..records import LoadedDocument
from ..store.base import DEFAULT_LOCK_TIMEOUT, Catalog, DocumentEntry, StoreBase
from .writer import DocumentReport, DocumentWriter, Embedded, IngestReport, file_sha256

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
    from llama_index.core.schema import BaseNode

    from ..captioning import Captioner
    from ..loading.pool import LoadPool

logger = logging.getLogger(__name__)


def sources(
    path: Path, config: LoaderConfig, report: IngestReport
) -> Iterator[tuple[str, Callable[[], LoadedDocument]]]:
    """(doc name, loader thunk) for each document under ``path``."""
    from ..loading.folder import load_folder
    from ..loading.names import doc_name
    from ..loading.pdf import load_pdf

    if path.is_dir():
        try:
            articles = load_folder(path, config)
        except DocumentLoadError as e:
            report.documents.append(
                DocumentReport(doc_name(Path(path.name)), "failed", error=str(e))
            )
            return
        for article in articles:
            yield article.doc, functools.partial(_identity, article)
    else:
        yield doc_name(Path(path.name)), functools.partial(load_pdf, path, config)


def ingest_paths(
    store: StoreBase,
    paths: Iterable[str | Path | BaseNode],
    *,
    text_embedder: BaseEmbedding,
    image_embedder: MultiModalEmbedding | None,
    loader_config: LoaderConfig,
    progress: bool = False,
    captioner: Captioner | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    workers: int = 1,
    ray_address: str | None = None,
    loaders: LoadPool | None = None,
) -> tuple[IngestReport, Catalog]:
    """Ingest PDFs and article folders into ``store`` (see :meth:`MultimodalIndex.ingest`).

    Documents are loaded here in a thread (``workers=1``) or in ``workers`` processes
    (``loaders``, when given: a pool the caller started, maybe with loads already
    under way) and embedded here while the next ones load; or loaded and embedded on
    the Ray cluster at ``ray_address``. This process alone writes, one commit per
    document.

    Returns:
        The report and the catalog after the last commit.
    """
    started = time.perf_counter()
    report = IngestReport()
    with store.writer(lock_timeout):
        writer = DocumentWriter(store, text_embedder, image_embedder, progress=progress)
        writer.recover()
        todo: list[tuple[str, DocumentEntry | None, Callable[[], LoadedDocument]]] = []
        sizes: list[int] = []
        # Documents finish in any order (sizes, workers); the report keeps the input's.
        position: dict[str, int] = {}
        files, nodes = _split_sources(paths)
        if nodes:
            from ..loading.llama import from_llama

            for loaded in from_llama(nodes, loader_config):
                position.setdefault(loaded.doc, len(position))
                todo.append(
                    (
                        loaded.doc,
                        writer.catalog.documents.get(loaded.doc),
                        functools.partial(_identity, loaded),
                    )
                )
                sizes.append(0)
        for path in files:
            for doc, load in sources(path, loader_config, report):
                position.setdefault(doc, len(position))
                entry = writer.catalog.documents.get(doc)
                is_pdf = path.suffix.lower() == ".pdf" and path.is_file()
                # A PDF whose bytes are unchanged is skipped before it is even parsed.
                if entry is not None and is_pdf and entry.content_hash == file_sha256(path):
                    report.documents.append(_unchanged(entry))
                    continue
                todo.append((doc, entry, load))
                sizes.append(path.stat().st_size if is_pdf else 0)
            for reported in report.documents:
                position.setdefault(reported.doc, len(position))
        # The first document's parse is the one thing nothing overlaps: start with the
        # smallest (articles, then PDFs by size), so later parses hide behind embedding.
        todo = [t for _, t in sorted(zip(sizes, todo, strict=True), key=lambda st: st[0])]
        bar = _Progress(len(todo), enabled=progress)

        def commit(i: int, result: LoadedDocument | str, embedded: Embedded | None) -> None:
            doc, entry, _ = todo[i]
            if isinstance(result, str):
                # The caller reports failures (the CLI one line each); this is the log's copy.
                logger.info("%s", result)
                report.documents.append(DocumentReport(doc, "failed", error=result))
            elif entry is not None and entry.content_hash == result.content_hash:
                report.documents.append(_unchanged(entry))
            else:
                loaded = result
                if captioner is not None:
                    loaded, embedded = _with_captions(loaded, captioner), None
                report.embeddings_computed += writer.write(loaded, embedded)
                report.documents.append(
                    DocumentReport(
                        doc,
                        "added" if entry is None else "updated",
                        text_chunks=sum(c.role == "content" for c in loaded.chunks),
                        figures=len(loaded.figures),
                        pages=loaded.pages,
                    )
                )
            bar.done(0 if isinstance(result, str) else result.pages)

        loads = [load for _, _, load in todo]
        if ray_address is not None and loads:
            from .workers import RayPrepare

            remote = RayPrepare(ray_address, text_embedder, image_embedder)
            try:
                for i, result in remote.run(loads):
                    commit(i, *_split(result))
            finally:
                remote.close()
        elif loaders is not None or (workers > 1 and len(loads) > 1):
            from ..loading.pool import LoadPool

            pool = loaders or LoadPool(min(workers, len(loads)))
            try:
                for i, loaded_or_error in pool.run(loads):
                    commit(i, loaded_or_error, None)
            finally:
                if loaders is None:
                    pool.close()
        else:
            for i, loaded_or_error in _serial(loads):
                commit(i, loaded_or_error, None)
        bar.close()
        report.documents.sort(key=lambda d: position.get(d.doc, len(position)))
        catalog = writer.catalog
    report.seconds = time.perf_counter() - started
    return report, catalog


def _serial(
    loads: list[Callable[[], LoadedDocument]],
) -> Iterator[tuple[int, LoadedDocument | str]]:
    """Load in order; the next document is parsed in a thread while this one is embedded
    (the text model releases the GIL, so loading mostly hides behind embedding)."""
    if not loads:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrag-load") as pool:
        upcoming = pool.submit(loads[0])
        for i in range(len(loads)):
            current = upcoming
            if i + 1 < len(loads):
                upcoming = pool.submit(loads[i + 1])
            try:
                yield i, current.result()
            except DocumentLoadError as e:
                yield i, str(e)


def _split(
    result: tuple[LoadedDocument, Embedded] | str,
) -> tuple[LoadedDocument | str, Embedded | None]:
    return (result, None) if isinstance(result, str) else result


class _Progress:
    """Documents and pages done, on stderr (one bar for all workers)."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=total, desc="documents", unit="doc", disable=not enabled or total < 2
        )
        self._pages = 0

    def done(self, pages: int) -> None:
        self._pages += pages
        self._bar.set_postfix(pages=self._pages, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def _split_sources(items: Iterable[str | Path | BaseNode]) -> tuple[list[Path], list[BaseNode]]:
    """File and folder paths apart from LlamaIndex documents and nodes."""
    from ..loading.llama import is_llama_node

    files: list[Path] = []
    nodes: list[BaseNode] = []
    for item in items:
        if is_llama_node(item):
            nodes.append(item)  # type: ignore[arg-type]
        elif isinstance(item, (str, Path)):
            files.append(Path(item))
        else:
            raise TypeError(
                f"ingest takes file or folder paths and LlamaIndex documents or nodes, "
                f"not {type(item).__name__}"
            )
    return files, nodes


def _with_captions(loaded: LoadedDocument, captioner: Captioner) -> LoadedDocument:
    from ..captioning import caption_missing

    try:
        figures = caption_missing(loaded.figures, captioner)
    # A captioner may be a remote LLM: any of its failures must not cost the document.
    except Exception as e:  # noqa: BLE001
        logger.warning(
            "%s: captioning with %s failed (%s: %s); ingesting without generated captions",
            loaded.doc,
            getattr(captioner, "name", type(captioner).__name__),
            type(e).__name__,
            e,
        )
        return loaded
    return dataclasses.replace(loaded, figures=tuple(figures))


def _identity(loaded: LoadedDocument) -> LoadedDocument:
    return loaded


def _unchanged(entry: DocumentEntry) -> DocumentReport:
    return DocumentReport(entry.doc, "unchanged", entry.text_chunks, entry.figures, entry.pages)
