"""`MultimodalIndex`: ingest manuals into a store, remove them, describe the store.

Ingestion is idempotent and crash-safe: a document's manifest entry (with its
content hash) is written only after all of its records, so a document
interrupted half-way has no entry, and the next run deletes whatever it left
and ingests it again. Ids are deterministic, so nothing is ever duplicated.
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

from .config import LoaderConfig, ModelProfile, profile
from .errors import DocumentLoadError, StoreError, StoreMismatchError
from .nodes import chunk_metadata, figure_metadata
from .records import Figure, LoadedDocument, TextChunk
from .storage import ChromaStore, DocumentEntry, Manifest, TextPrecision, open_store

if TYPE_CHECKING:
    import numpy.typing as npt
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
    from llama_index.core.llms import LLM

    from .captioning import Captioner
    from .chat import CitedChatEngine
    from .engine import CitedQueryEngine
    from .retrieval import MultiModalRetriever, RetrieverConfig
    from .search_state import Record, SearchState

logger = logging.getLogger(__name__)

DocStatus = Literal["added", "updated", "unchanged", "failed"]
# Texts per call to the embedder: it sorts each call by length, so large calls waste
# little on padding, while the progress bar still moves.
_EMBED_BATCH = 256
DEFAULT_TEXT_PRECISION: TextPrecision = "fp32"
"""Precision of the text model for new stores. ONNX int8 embeds about 1.3x faster than fp32
(floor 7.6 s against 10.2 s on the dev manuals) but cost 0.035 page MRR and 0.013 overall
MRR on the dev questions in the same run, more than the 0.01 we allow (docs/benchmarks.md);
its activations are quantised per batch, so a text's vector also depends on its batch."""


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


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MultimodalIndex:
    """A store plus the embedders that fill and query it.

    Args:
        store: The opened Chroma store.
        manifest: The store's manifest (models and dimensions).
        text_embedder: Any LlamaIndex ``BaseEmbedding``.
        image_embedder: Any LlamaIndex ``MultiModalEmbedding``, or ``None`` to
            index figures by their text only.
        loader_config: How documents are split.

    Example:
        >>> index = MultimodalIndex.open("store", profile_name="offline")  # doctest: +SKIP
        >>> index.ingest(["manual.pdf"])                                    # doctest: +SKIP
        >>> index.as_retriever().retrieve("how do I wire the sensor?")      # doctest: +SKIP
    """

    def __init__(
        self,
        store: ChromaStore,
        manifest: Manifest,
        text_embedder: BaseEmbedding,
        image_embedder: MultiModalEmbedding | None = None,
        loader_config: LoaderConfig | None = None,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.text_embedder = text_embedder
        self.image_embedder = image_embedder
        self.loader_config = loader_config or LoaderConfig()

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        profile_name: str | None = None,
        create: bool = True,
        text_embedder: BaseEmbedding | None = None,
        image_embedder: MultiModalEmbedding | None = None,
        loader_config: LoaderConfig | None = None,
        text_precision: TextPrecision | None = None,
    ) -> MultimodalIndex:
        """Open a store, loading the models its manifest names.

        A store remembers its models: opened without ``profile_name`` it uses
        them; opened with a profile whose models differ it raises.

        Args:
            path: Folder of an embedded store.
            url: ``http://HOST:PORT`` of a Chroma server instead of ``path``.
            profile_name: ``"default"`` or ``"offline"``; ``None`` = the store's own
                (``"default"`` for a new store).
            create: Create the store when missing.
            text_embedder: Use this embedder instead of the profile's text model.
            image_embedder: Use this embedder instead of the profile's image model.
            loader_config: How documents are split.
            text_precision: ``"int8"`` or ``"fp32"`` weights for the text model (ONNX);
                ``None`` = the store's own (``"fp32"`` for a new store). A store is
                always queried at the precision it was built with.

        Raises:
            StoreMismatchError: The store was built with other models, or at another
                text precision than ``text_precision``.
            StoreNotFoundError: ``create`` is false and the store does not exist.
            ModelNotFoundError: A model cannot be found locally or downloaded.
        """
        store = open_store(path, url=url, create=create)
        existing = store.manifest()
        if existing is not None and profile_name is None:
            chosen = ModelProfile(
                name=existing.profile,
                text_model=existing.text_model,
                image_model=existing.image_model,
                query_instruction=profile(existing.profile).query_instruction
                if existing.profile in ("default", "offline")
                else "",
            )
        else:
            chosen = profile(profile_name or "default")
        if (
            existing is not None
            and text_embedder is None
            and text_precision is not None
            and text_precision != existing.text_precision
        ):
            raise StoreMismatchError(
                f"built with {existing.text_precision} text embeddings; requested "
                f"{text_precision}. Vectors of both precisions are close but not equal, "
                "so a store is queried as it was built: open it without text_precision, "
                "or ingest into a new store.",
                location=store.location,
            )
        if existing is not None and (
            text_embedder is None
            and existing.text_model != chosen.text_model
            or image_embedder is None
            and existing.image_model != chosen.image_model
        ):
            # Fail before loading any model: the message is what the user needs.
            raise StoreMismatchError(
                f"built with text model {existing.text_model!r} and image model "
                f"{existing.image_model!r} (profile {existing.profile!r}); requested "
                f"{chosen.text_model!r} and {chosen.image_model!r}. Open it without a "
                "profile to use its own models, or ingest into a new store.",
                location=store.location,
            )
        from .embedding import load_image_embedder, load_text_embedder

        precision = text_precision or (
            existing.text_precision if existing is not None else DEFAULT_TEXT_PRECISION
        )
        text = text_embedder or load_text_embedder(
            chosen.text_model,
            query_instruction=chosen.query_instruction,
            quantize=precision == "int8",
        )
        image = image_embedder
        if image is None and chosen.image_model is not None:
            image = load_image_embedder(chosen.image_model)
        expected = Manifest(
            profile=chosen.name,
            # Record the name the user chose (hub id, folder or package marker), not a
            # resolved cache path, so the same store opens on another machine.
            text_model=chosen.text_model
            if text_embedder is None
            else _model_name(text, chosen.text_model),
            text_dim=_dimension(text),
            # What actually runs: without ONNX Runtime the torch backend embeds in fp32.
            text_precision=_precision(text),
            image_model=None
            if image is None
            else chosen.image_model
            if image_embedder is None
            else _model_name(image, chosen.image_model or ""),
            image_dim=None if image is None else _dimension(image),
        )
        manifest = store.check_manifest(expected)
        return cls(store, manifest, text, image, loader_config)

    # -- ingestion --------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[str | Path],
        *,
        progress: bool = False,
        captioner: Captioner | None = None,
    ) -> IngestReport:
        """Ingest PDFs and article folders; unchanged documents are skipped.

        Args:
            paths: PDF files and/or folders of articles (``.md``/``.txt``/``.html``).
            progress: Show a progress bar on stderr.
            captioner: Writes a caption for each figure that has none printed
                (stored as ``generated_caption``, embedded with the figure's text).
                Only documents that are (re)ingested are captioned. A captioner
                that fails is logged and the document is ingested without them.

        Returns:
            What happened to each document. Documents that fail to load are
            reported as ``failed``; the others are still ingested.
        """
        started = time.perf_counter()
        report = IngestReport()
        todo: list[tuple[str, DocumentEntry | None, Callable[[], LoadedDocument]]] = []
        sizes: list[int] = []
        for path in (Path(p) for p in paths):
            for doc, load in self._sources(path, report):
                entry = self.store.document(doc)
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
        state: SearchState | None = None
        state_loaded = False
        # Parse the next document in a thread while this one is embedded: the text
        # model releases the GIL, so loading mostly hides behind embedding.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrag-load") as pool:
            upcoming = pool.submit(todo[0][2]) if todo else None
            for i, (doc, entry, _) in enumerate(todo):
                assert upcoming is not None  # submitted for every index below len(todo)
                current = upcoming
                upcoming = pool.submit(todo[i + 1][2]) if i + 1 < len(todo) else None
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
                if not state_loaded:
                    state, state_loaded = self._search_state(), True
                report.embeddings_computed += self._write(loaded, state, progress=progress)
                report.documents.append(
                    DocumentReport(
                        doc,
                        "added" if entry is None else "updated",
                        text_chunks=sum(c.role == "content" for c in loaded.chunks),
                        figures=len(loaded.figures),
                        pages=loaded.pages,
                    )
                )
        if any(d.status in ("added", "updated") for d in report.documents):
            self._bump(state)
        report.seconds = time.perf_counter() - started
        return report

    def _sources(
        self, path: Path, report: IngestReport
    ) -> Iterator[tuple[str, Callable[[], LoadedDocument]]]:
        """(doc name, loader thunk) for each document under ``path``."""
        from .loading.folder import load_folder
        from .loading.pdf import load_pdf

        if path.is_dir():
            try:
                articles = load_folder(path, self.loader_config)
            except DocumentLoadError as e:
                report.documents.append(DocumentReport(path.name, "failed", error=str(e)))
                return
            for article in articles:
                yield article.doc, functools.partial(_identity, article)
        else:
            yield path.name, functools.partial(load_pdf, path, self.loader_config)

    def _search_state(self) -> SearchState | None:
        """The store's search state before a change, or ``None`` for a server store.

        The persisted copy is deleted here, before Chroma changes: a crash then
        leaves no state for the store's generation, so readers rebuild it.
        """
        from .search_state import SearchState

        if SearchState.folder(self.store) is None:
            return None  # no local folder: each reader rebuilds it from the server
        generation = self.store.manifest() or self.manifest
        try:
            state = SearchState.load(self.store, generation.generation)
        except StoreError as e:  # missing (a store from before persisted state) or corrupt
            logger.info("rebuilding the search state from the store: %s", e)
            state = SearchState.rebuild(self.store)
        SearchState.invalidate(self.store)
        return state

    def _bump(self, state: SearchState | None) -> None:
        generation = self.store.bump_generation()
        self.manifest = self.manifest.model_copy(update={"generation": generation})
        if state is not None:
            try:
                state.save(generation)
            except StoreError as e:
                # Derived data: without it the next query rebuilds it from Chroma.
                logger.warning("search state not saved: %s", e)

    def _embed(self, texts: Sequence[str], bar: Any) -> npt.NDArray[np.float32]:
        """Text vectors of a whole document, in input order.

        Texts go to the embedder longest first: each of its batches then holds
        texts of similar length, so little compute is spent on padding (the
        embedder sorts only within one call, and LlamaIndex cuts calls into
        ``embed_batch_size`` pieces).
        """
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), _dimension(self.text_embedder)), dtype=np.float32)
        for positions in _batches(order, _EMBED_BATCH):
            vectors = self.text_embedder.get_text_embedding_batch([texts[i] for i in positions])
            out[list(positions)] = np.asarray(vectors, dtype=np.float32)
            bar.update(len(positions))
        return out

    def _write(self, loaded: LoadedDocument, state: SearchState | None, *, progress: bool) -> int:
        """Replace a document's records; returns the number of embeddings computed."""
        from tqdm import tqdm

        self.store.delete_document(loaded.doc)
        chunks = [c for c in loaded.chunks if c.role == "content"]
        figures = list(loaded.figures)
        total = len(chunks) + len(figures) * (2 if self.image_embedder else 1)
        bar = tqdm(total=total, desc=loaded.doc, unit="emb", disable=not progress, leave=False)
        records: dict[str, Record] = {}
        try:
            vectors = self._embed(
                [*map(embedding_text, chunks), *map(embedding_text, figures)], bar
            )
            metas = [chunk_metadata(c) for c in chunks]
            self.store.upsert(
                self.store.text,
                [c.chunk_id for c in chunks],
                vectors[: len(chunks)],
                [c.text for c in chunks],
                metas,
            )
            records.update((c.chunk_id, (c.text, m)) for c, m in zip(chunks, metas, strict=True))
            for start in range(0, len(figures), _EMBED_BATCH):
                batch = figures[start : start + _EMBED_BATCH]
                at = len(chunks) + start
                records.update(
                    self._write_figures(loaded.doc, batch, vectors[at : at + len(batch)], bar)
                )
        finally:
            bar.close()
        if state is not None:
            state.replace_document(loaded.doc, records)
        self.store.write_document(
            DocumentEntry(
                doc=loaded.doc,
                content_hash=loaded.content_hash,
                path=str(loaded.path),
                pages=loaded.pages,
                text_chunks=len(chunks),
                figures=len(figures),
            )
        )
        return total

    def _write_figures(
        self,
        doc: str,
        figures: Sequence[Figure],
        vectors: npt.NDArray[np.float32],
        bar: Any,
    ) -> dict[str, Record]:
        """Save and index a batch of figures; returns their text records."""
        from .loading.images import png_name, save_png

        self.store.put_pngs(doc, [(png_name(f.image_png), f.image_png) for f in figures])
        paths = [str(save_png(f.image_png, self.store.figures_dir)) for f in figures]
        metas = [figure_metadata(f, p) for f, p in zip(figures, paths, strict=True)]
        ids = [f.figure_id for f in figures]
        texts = [f.text or (f.label or "figure") for f in figures]
        self.store.upsert(self.store.text, ids, vectors, texts, metas)
        if self.image_embedder is not None:
            images = self.image_embedder.get_image_embedding_batch(list[Any](paths))
            self.store.upsert(self.store.image, ids, images, texts, metas)
            bar.update(len(figures))
        return {i: (t, m) for i, t, m in zip(ids, texts, metas, strict=True)}

    # -- maintenance and description --------------------------------------------------------

    def remove(self, doc: str) -> bool:
        """Remove a document's chunks and figures. Returns ``False`` if it was not there."""
        if self.store.document(doc) is None:
            return False
        state = self._search_state()
        self.store.delete_document(doc)
        if state is not None:
            state.remove_document(doc)
        self._bump(state)
        return True

    def info(self) -> dict[str, Any]:
        """Counts, documents and models, as ``mmrag info --json`` prints them."""
        return self.store.describe()

    # -- querying ---------------------------------------------------------------------------

    def as_retriever(self, config: RetrieverConfig | None = None) -> MultiModalRetriever:
        """A :class:`~multimodal_rag.retrieval.MultiModalRetriever` over this index."""
        from .retrieval import MultiModalRetriever

        return MultiModalRetriever(self, config)

    def as_query_engine(
        self,
        llm: LLM | None = None,
        *,
        top_k: int = 5,
        max_images: int = 3,
        retriever_config: RetrieverConfig | None = None,
    ) -> CitedQueryEngine:
        """A query engine that answers with page and figure citations.

        Args:
            llm: Any LlamaIndex LLM; a multimodal one also gets the figures.
                ``None`` gives an extractive answer (cited passages and figures).
            top_k: Sources handed to the LLM.
            max_images: Figure images sent to a multimodal LLM.
            retriever_config: Retrieval settings.
        """
        from .engine import CitedQueryEngine

        return CitedQueryEngine(
            self.as_retriever(retriever_config), llm, top_k=top_k, max_images=max_images
        )

    def as_chat_engine(self, llm: LLM | None = None, *, top_k: int = 5) -> CitedChatEngine:
        """A chat engine for chatbots: follow-ups are condensed with the history."""
        from .chat import CitedChatEngine

        return CitedChatEngine(self.as_query_engine(llm, top_k=top_k), llm=llm)


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


def _dimension(embedder: Any) -> int:
    dim = getattr(embedder, "dim", None)
    if isinstance(dim, int):
        return dim
    return len(embedder.get_text_embedding("dimension probe"))


def _precision(embedder: Any) -> TextPrecision:
    # Embedders other than ours are taken as fp32: that is what LlamaIndex ones compute.
    return "int8" if getattr(embedder, "precision", None) == "int8" else "fp32"


def _model_name(embedder: Any, fallback: str) -> str:
    name = getattr(embedder, "model_name", None)
    return str(name) if name and name != "unknown" else fallback
