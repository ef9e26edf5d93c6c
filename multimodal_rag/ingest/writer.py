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

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import StoreError
from ..nodes import chunk_to_node, figure_to_node
from ..records import Figure, LoadedDocument, TextChunk
from ..search.segment import Segment
from ..store.base import (
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


@dataclass
class Embedded:
    """A document's vectors, computed where it was loaded (a worker, a Ray task) or here.

    Attributes:
        text: One text vector per content chunk, then one per figure, in order.
        image: One image vector per figure, or ``None`` without an image embedder.
    """

    text: npt.NDArray[np.float32]
    image: npt.NDArray[np.float32] | None = None


def _content(loaded: LoadedDocument) -> tuple[list[TextChunk], list[Figure]]:
    return [c for c in loaded.chunks if c.role == "content"], list(loaded.figures)


def embed_texts(
    texts: Sequence[str], text_embedder: BaseEmbedding, bar: Any = None
) -> npt.NDArray[np.float32]:
    """Text vectors in input order, sent to the embedder longest first (see
    :func:`embed_document`): by token count when the embedder can tell (ours), else
    by characters."""
    from ..embedding.text import TextEmbedder

    if isinstance(text_embedder, TextEmbedder):
        sizes: Sequence[int] = text_embedder.token_counts(texts)
    else:
        sizes = [len(t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: -sizes[i])
    out = np.zeros((len(texts), _dimension(text_embedder)), dtype=np.float32)
    for start in range(0, len(order), _EMBED_BATCH):
        positions = order[start : start + _EMBED_BATCH]
        vectors = text_embedder.get_text_embedding_batch([texts[i] for i in positions])
        out[positions] = np.asarray(vectors, dtype=np.float32)
        if bar is not None:
            bar.update(len(positions))
    return out


def embed_document(
    loaded: LoadedDocument,
    text_embedder: BaseEmbedding,
    image_embedder: MultiModalEmbedding | None = None,
    bar: Any = None,
) -> Embedded:
    """The text (and image) vectors of a loaded document.

    Texts go to the embedder longest first, so each batch holds texts of similar
    length and little compute goes to padding (the embedder sorts only within
    one call, and LlamaIndex cuts calls into ``embed_batch_size`` pieces).
    """
    import tempfile

    from ..loading.images import save_png

    chunks, figures = _content(loaded)
    texts = [*map(embedding_text, chunks), *map(embedding_text, figures)]
    out = embed_texts(texts, text_embedder, bar)
    images = None
    if figures and image_embedder is not None:
        with tempfile.TemporaryDirectory(prefix="mmrag-figures-") as tmp:
            files = [str(save_png(f.image_png, tmp)) for f in figures]
            images = np.asarray(
                image_embedder.get_image_embedding_batch(list[Any](files)), np.float32
            )
        if bar is not None:
            bar.update(len(figures))
    return Embedded(out, images)


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

    def write(self, loaded: LoadedDocument, embedded: Embedded | None = None) -> int:
        """Commit one document (replacing its old version); returns the embeddings it holds.

        Args:
            loaded: The document.
            embedded: Its vectors when computed elsewhere; else they are computed here.
        """
        from tqdm import tqdm

        old = self.catalog.documents.get(loaded.doc)
        version = new_version()
        marker = pending_key(loaded.doc, version)
        self.store.put_blob(
            marker, pending_marker(loaded.doc, version, old.version if old else None)
        )
        chunks, figures = _content(loaded)
        total = len(chunks) + len(figures) * (2 if self.image_embedder else 1)
        if embedded is None:
            bar = tqdm(
                total=total, desc=loaded.doc, unit="emb", disable=not self.progress, leave=False
            )
            try:
                embedded = embed_document(loaded, self.text_embedder, self.image_embedder, bar)
            finally:
                bar.close()
        try:
            records = self._write_records(loaded.doc, version, chunks, figures, embedded)
            segment = Segment.build(loaded.doc, version, records)
            self.store.put_blob(segment_key(loaded.doc, version), segment.to_bytes())
        except StoreError:
            # Nothing of this version is visible; take it away now if the store lets us
            # (a full disk may), else the next writer does, from the pending marker.
            try:
                self._delete_version(loaded.doc, version)
                self.store.delete_blob(marker)
            except StoreError as e:
                logger.warning("%s: left for the next writer to clean up: %s", loaded.doc, e)
            raise
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

    def _write_records(
        self,
        doc: str,
        version: str,
        chunks: Sequence[TextChunk],
        figures: Sequence[Figure],
        embedded: Embedded,
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        from ..loading.images import png_name, save_png

        vectors = embedded.text
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
        if figures and embedded.image is not None:
            self.store.upsert("image", figure_nodes, embedded.image)
        from llama_index.core.schema import MetadataMode

        return {
            n.node_id: (n.get_content(metadata_mode=MetadataMode.NONE), dict(n.metadata))
            for n in nodes
        }
