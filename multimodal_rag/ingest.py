"""Ingest: documents in, one commit per document, under the store's writer lock.

:class:`DocumentWriter` embeds a loaded document and commits it
(see :mod:`multimodal_rag.store.base` for the commit protocol):

1. a *pending* marker names the new version (and the one it replaces);
2. records are written under ids ending in ``@<version>``, beside the old ones;
3. the document's search segment is written;
4. the catalog naming the new version is written: from here the new version
   is the visible one;
5. the old version's records, segment and PNGs are deleted, then the marker.

A writer killed anywhere leaves the old version visible (before 4) or the new
one (after 4); the next writer reads the markers and finishes or undoes each
(:meth:`DocumentWriter.recover`). Unchanged documents are skipped by content
hash before they are parsed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .config import LoaderConfig
from .errors import DocumentLoadError, StoreError
from .nodes import chunk_to_node, figure_to_node
from .records import Figure, LoadedDocument, TextChunk
from .search.segment import Segment
from .store.base import (
    PENDING_GROUP,
    Catalog,
    DocumentEntry,
    StoreBase,
    new_version,
    parse_marker,
    pending_key,
    pending_marker,
    png_group,
    record_id,
    ref_doc_id,
    segment_key,
)

if TYPE_CHECKING:
    import numpy.typing as npt
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
    from llama_index.core.schema import BaseNode

    from .captioning import Captioner

logger = logging.getLogger(__name__)

DocStatus = Literal["added", "updated", "unchanged", "failed"]
# Texts per call to the embedder: it sorts each call by length, so large calls waste
# little on padding, while the progress bar still moves.
_EMBED_BATCH = 256


@dataclass
class DocumentReport:
    """What happened to one document during ingestion."""

    doc: str
    status: DocStatus
    text_chunks: int = 0
    figures: int = 0
    pages: int = 0
    error: str | None = None


@dataclass
class IngestReport:
    """The outcome of :meth:`MultimodalIndex.ingest`."""

    documents: list[DocumentReport] = field(default_factory=list)
    embeddings_computed: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[DocumentReport]:
        """Documents that could not be ingested."""
        return [d for d in self.documents if d.status == "failed"]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embedding_text(record: TextChunk | Figure) -> str:
    """The text embedded for a chunk or a figure: the record's own text.

    Measured on the dev questions (docs/fusion.md): prefixing the section title
    to figures drowned their captions, and to passages it did not help.
    """
    return record.text


def unique_ids(ids: Sequence[str]) -> list[str]:
    """Ids made unique by construction: a repeat gets ``~2``, ``~3``, … (two figures
    with the same pixels on one page are two records).

    Example:
        >>> unique_ids(["a", "b", "a", "a"])
        ['a', 'b', 'a~2', 'a~3']
    """
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        out.append(i if seen[i] == 1 else f"{i}~{seen[i]}")
    return out


def _with_identity(node: BaseNode, rid: str, doc: str, version: str) -> BaseNode:
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo

    node.id_ = rid
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=ref_doc_id(doc, version))
    return node


def _dimension(embedder: Any) -> int:
    dim = getattr(embedder, "dim", None)
    if isinstance(dim, int):
        return dim
    return len(embedder.get_text_embedding("dimension probe"))


class DocumentWriter:
    """Embeds documents and commits them one at a time. Use inside ``store.writer()``.

    Args:
        store: The store, its writer lock held by the caller.
        text_embedder: Any LlamaIndex ``BaseEmbedding``.
        image_embedder: Any LlamaIndex ``MultiModalEmbedding``, or ``None``.
        progress: Show a progress bar per document on stderr.
    """

    def __init__(
        self,
        store: StoreBase,
        text_embedder: BaseEmbedding,
        image_embedder: MultiModalEmbedding | None = None,
        *,
        progress: bool = False,
    ) -> None:
        self.store = store
        self.text_embedder = text_embedder
        self.image_embedder = image_embedder
        self.progress = progress
        found = store.catalog()
        if found is None:
            raise StoreError(
                "has no catalog; open it through MultimodalIndex", location=store.location
            )
        self.catalog: Catalog = found

    # -- recovery ---------------------------------------------------------------------------

    def recover(self) -> int:
        """Finish or undo what a writer that died left half-done; returns how many."""
        keys = self.store.blob_keys(PENDING_GROUP)
        for key in keys:
            raw = self.store.get_blob(key)
            if raw is None:
                continue
            doc, version, old = parse_marker(raw)
            current = self.catalog.documents.get(doc)
            committed = (current is not None and current.version == version) or (
                not version and current is None
            )
            if committed:
                if old:
                    self._delete_version(doc, old)
            elif version:
                self._delete_version(doc, version)
            logger.info("%s: %s an interrupted write", doc, "finished" if committed else "undid")
            self.store.delete_blob(key)
        return len(keys)

    def _delete_version(self, doc: str, version: str) -> None:
        self.store.delete_version(doc, version)
        self.store.delete_blob(segment_key(doc, version))
        self.store.delete_group(png_group(doc, version))

    def _commit(self, documents: dict[str, DocumentEntry]) -> None:
        manifest = self.catalog.manifest
        catalog = self.catalog.model_copy(
            update={
                "documents": documents,
                "manifest": manifest.model_copy(update={"generation": manifest.generation + 1}),
            }
        )
        self.store.commit(catalog)
        self.catalog = catalog

    # -- writing ----------------------------------------------------------------------------

    def write(self, loaded: LoadedDocument) -> int:
        """Embed and commit one document (replacing its old version); returns embeddings made."""
        from tqdm import tqdm

        old = self.catalog.documents.get(loaded.doc)
        version = new_version()
        marker = pending_key(loaded.doc, version)
        self.store.put_blob(
            marker, pending_marker(loaded.doc, version, old.version if old else None)
        )
        chunks = [c for c in loaded.chunks if c.role == "content"]
        figures = list(loaded.figures)
        total = len(chunks) + len(figures) * (2 if self.image_embedder else 1)
        bar = tqdm(total=total, desc=loaded.doc, unit="emb", disable=not self.progress, leave=False)
        try:
            records = self._write_records(loaded.doc, version, chunks, figures, bar)
        finally:
            bar.close()
        segment = Segment.build(loaded.doc, version, records)
        self.store.put_blob(segment_key(loaded.doc, version), segment.to_bytes())
        entry = DocumentEntry(
            doc=loaded.doc,
            content_hash=loaded.content_hash,
            path=str(loaded.path),
            pages=loaded.pages,
            text_chunks=len(chunks),
            figures=len(figures),
            version=version,
        )
        self._commit({**self.catalog.documents, loaded.doc: entry})
        if old is not None:
            self._delete_version(old.doc, old.version)
        self.store.delete_blob(marker)
        return total

    def remove(self, doc: str) -> bool:
        """Remove a document; ``False`` if it was not there."""
        old = self.catalog.documents.get(doc)
        if old is None:
            return False
        marker = pending_key(doc, "")
        self.store.put_blob(marker, pending_marker(doc, "", old.version))
        self._commit({d: e for d, e in self.catalog.documents.items() if d != doc})
        self._delete_version(doc, old.version)
        self.store.delete_blob(marker)
        return True

    def _embed(self, texts: Sequence[str], bar: Any) -> npt.NDArray[np.float32]:
        """Text vectors in input order; sent longest first so batches pad little."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), _dimension(self.text_embedder)), dtype=np.float32)
        for start in range(0, len(order), _EMBED_BATCH):
            positions = order[start : start + _EMBED_BATCH]
            vectors = self.text_embedder.get_text_embedding_batch([texts[i] for i in positions])
            out[positions] = np.asarray(vectors, dtype=np.float32)
            bar.update(len(positions))
        return out

    def _embed_images(
        self, figures: Sequence[Figure], paths: list[str] | None
    ) -> npt.NDArray[np.float32]:
        """Image vectors; a store without a figure folder lends temporary files."""
        import tempfile

        from .loading.images import save_png

        assert self.image_embedder is not None  # checked by the caller
        if paths is not None:
            got = self.image_embedder.get_image_embedding_batch(list[Any](paths))
            return np.asarray(got, dtype=np.float32)
        with tempfile.TemporaryDirectory(prefix="mmrag-figures-") as tmp:
            files = [str(save_png(f.image_png, tmp)) for f in figures]
            got = self.image_embedder.get_image_embedding_batch(list[Any](files))
        return np.asarray(got, dtype=np.float32)

    def _write_records(
        self,
        doc: str,
        version: str,
        chunks: Sequence[TextChunk],
        figures: Sequence[Figure],
        bar: Any,
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        from .loading.images import png_name, save_png

        vectors = self._embed([*map(embedding_text, chunks), *map(embedding_text, figures)], bar)
        ids = unique_ids([c.chunk_id for c in chunks] + [f.figure_id for f in figures])
        nodes: list[BaseNode] = [
            _with_identity(chunk_to_node(c), record_id(i, version), doc, version)
            for c, i in zip(chunks, ids, strict=False)
        ]
        figure_dir = self.store.figures_dir
        pngs = {png_name(f.image_png): f.image_png for f in figures}  # once per content hash
        try:
            paths = [
                str(save_png(f.image_png, figure_dir)) if figure_dir else png_name(f.image_png)
                for f in figures
            ]
        except OSError as e:
            raise StoreError(f"cannot write figure images: {e}", location=figure_dir or "") from e
        if self.store.remote_pngs:
            for name, png in pngs.items():
                self.store.put_blob(self.store.png_key(doc, version, name), png)
        figure_nodes: list[BaseNode] = [
            _with_identity(figure_to_node(f, p), record_id(i, version), doc, version)
            for f, p, i in zip(figures, paths, ids[len(chunks) :], strict=True)
        ]
        nodes.extend(figure_nodes)
        self.store.upsert("text", nodes, vectors)
        if figures:
            self.store.upsert("figure", figure_nodes, vectors[len(chunks) :])
        if figures and self.image_embedder is not None:
            images = self._embed_images(figures, paths if figure_dir else None)
            self.store.upsert("image", figure_nodes, images)
            bar.update(len(figures))
        from llama_index.core.schema import MetadataMode

        return {
            n.node_id: (n.get_content(metadata_mode=MetadataMode.NONE), dict(n.metadata))
            for n in nodes
        }


# -- sources ---------------------------------------------------------------------------------


def sources(
    path: Path, config: LoaderConfig, report: IngestReport
) -> Iterator[tuple[str, Callable[[], LoadedDocument]]]:
    """(doc name, loader thunk) for each document under ``path``."""
    from .loading.folder import load_folder
    from .loading.pdf import load_pdf

    if path.is_dir():
        try:
            articles = load_folder(path, config)
        except DocumentLoadError as e:
            report.documents.append(DocumentReport(path.name, "failed", error=str(e)))
            return
        for article in articles:
            yield article.doc, functools.partial(_identity, article)
    else:
        yield path.name, functools.partial(load_pdf, path, config)


def ingest_paths(
    store: StoreBase,
    paths: Iterable[str | Path],
    *,
    text_embedder: BaseEmbedding,
    image_embedder: MultiModalEmbedding | None,
    loader_config: LoaderConfig,
    progress: bool = False,
    captioner: Captioner | None = None,
    lock_timeout: float = 60.0,
) -> tuple[IngestReport, Catalog]:
    """Ingest PDFs and article folders into ``store`` (see :meth:`MultimodalIndex.ingest`).

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
        for path in (Path(p) for p in paths):
            for doc, load in sources(path, loader_config, report):
                entry = writer.catalog.documents.get(doc)
                is_pdf = path.suffix.lower() == ".pdf" and path.is_file()
                # A PDF whose bytes are unchanged is skipped before it is even parsed.
                if entry is not None and is_pdf and entry.content_hash == file_sha256(path):
                    report.documents.append(_unchanged(entry))
                    continue
                todo.append((doc, entry, load))
                sizes.append(path.stat().st_size if is_pdf else 0)
        # The first document's parse is the one thing nothing overlaps: start with the
        # smallest (articles, then PDFs by size), so later parses hide behind embedding.
        todo = [t for _, t in sorted(zip(sizes, todo, strict=True), key=lambda st: st[0])]
        # Parse the next document in a thread while this one is embedded: the text
        # model releases the GIL, so loading mostly hides behind embedding.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrag-load") as pool:
            upcoming = pool.submit(todo[0][2]) if todo else None
            for i, (doc, entry, _) in enumerate(todo):
                current = upcoming
                upcoming = pool.submit(todo[i + 1][2]) if i + 1 < len(todo) else None
                if current is None:
                    break
                try:
                    loaded = current.result()
                except DocumentLoadError as e:
                    logger.error("%s", e)
                    report.documents.append(DocumentReport(doc, "failed", error=str(e)))
                    continue
                if entry is not None and entry.content_hash == loaded.content_hash:
                    report.documents.append(_unchanged(entry))
                    continue
                if captioner is not None:
                    loaded = _with_captions(loaded, captioner)
                report.embeddings_computed += writer.write(loaded)
                report.documents.append(
                    DocumentReport(
                        doc,
                        "added" if entry is None else "updated",
                        text_chunks=sum(c.role == "content" for c in loaded.chunks),
                        figures=len(loaded.figures),
                        pages=loaded.pages,
                    )
                )
        catalog = writer.catalog
    report.seconds = time.perf_counter() - started
    return report, catalog


def _with_captions(loaded: LoadedDocument, captioner: Captioner) -> LoadedDocument:
    from .captioning import caption_missing

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
