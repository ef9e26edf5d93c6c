"""`MultimodalIndex`: the facade that opens a store with its models and hands out engines.

Storage is a :class:`~multimodal_rag.store.Store` (Chroma embedded or server,
any LlamaIndex vector store, or memory); ingest is
:mod:`multimodal_rag.ingest` (one commit per document, under the store's
writer lock); retrieval is :class:`~multimodal_rag.retrieval.MultiModalRetriever`,
given the store, the embedders and a shared search-state source.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import LoaderConfig, ModelProfile, profile
from .errors import StoreMismatchError
from .ingest import DocStatus, DocumentReport, IngestReport, embedding_text, file_sha256
from .search.state import StateSource
from .store.base import DEFAULT_LOCK_TIMEOUT, Catalog, Manifest, StoreBase, TextPrecision

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
    from llama_index.core.llms import LLM
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import BaseNode
    from llama_index.core.vector_stores.types import BasePydanticVectorStore, MetadataFilters

    from .captioning import Captioner
    from .chat import CitedChatEngine
    from .engine import CitedQueryEngine
    from .loading.pool import LoadPool
    from .retrieval import MultiModalRetriever, RetrieverConfig

__all__ = [
    "DocStatus",
    "DocumentReport",
    "IngestReport",
    "MultimodalIndex",
    "embedding_text",
    "file_sha256",
]

logger = logging.getLogger(__name__)

DEFAULT_TEXT_PRECISION: TextPrecision = "fp32"
"""Precision of the text model for new stores. ONNX int8 embeds about 1.3x faster than fp32
(floor 7.6 s against 10.2 s on the dev manuals) but cost 0.035 page MRR and 0.013 overall
MRR on the dev questions in the same run, more than the 0.01 we allow (docs/benchmarks.md);
its activations are quantised per batch, so a text's vector also depends on its batch."""


class MultimodalIndex:
    """A store plus the embedders that fill and query it.

    Args:
        store: The opened store (any :class:`~multimodal_rag.store.StoreBase` backend).
        manifest: The store's manifest (models and dimensions).
        text_embedder: Any LlamaIndex ``BaseEmbedding``.
        image_embedder: Any LlamaIndex ``MultiModalEmbedding``, or ``None`` to
            index figures by their text only.
        loader_config: How documents are split.
        lock_timeout: Seconds a writer waits for another writer before giving up.

    Example:
        >>> index = MultimodalIndex.open("store", profile_name="offline")  # doctest: +SKIP
        >>> index.ingest(["manual.pdf"])                                    # doctest: +SKIP
        >>> index.as_retriever().retrieve("how do I wire the sensor?")      # doctest: +SKIP
    """

    def __init__(
        self,
        store: StoreBase,
        manifest: Manifest,
        text_embedder: BaseEmbedding,
        image_embedder: MultiModalEmbedding | None = None,
        loader_config: LoaderConfig | None = None,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.text_embedder = text_embedder
        self.image_embedder = image_embedder
        self.loader_config = loader_config or LoaderConfig()
        self.lock_timeout = lock_timeout
        self.state = StateSource(store)

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
        vector_store: BasePydanticVectorStore | None = None,
        image_vector_store: BasePydanticVectorStore | None = None,
        store: StoreBase | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> MultimodalIndex:
        """Open a store, loading the models its manifest names.

        A store remembers its models: opened without ``profile_name`` it uses
        them; opened with a profile whose models differ it raises.

        Args:
            path: Folder of an embedded store; with ``vector_store``, the local folder
                that keeps what a vector store cannot (catalog, search segments, PNGs).
            url: ``http://HOST:PORT`` of a Chroma server instead of ``path``.
            profile_name: ``"default"`` or ``"offline"``; ``None`` = the store's own
                (``"default"`` for a new store).
            create: Create the store when missing.
            text_embedder: Use this embedder instead of the profile's text model. When
                neither it nor ``profile_name`` is given, LlamaIndex's
                ``Settings.embed_model`` is used if one was set (the store's manifest
                still refuses an embedder other than the one it was built with).
            image_embedder: Use this embedder instead of the profile's image model.
            loader_config: How documents are split.
            text_precision: ``"int8"`` or ``"fp32"`` weights for the text model (ONNX);
                ``None`` = the store's own (``"fp32"`` for a new store). A store is
                always queried at the precision it was built with.
            vector_store: Any LlamaIndex vector store for passages and figure texts
                (``ChromaVectorStore``, ``QdrantVectorStore``, ...), with ``path``.
            image_vector_store: A LlamaIndex vector store for image vectors (needed
                with ``vector_store`` when the profile has an image model).
            store: An already opened store (e.g. :class:`~multimodal_rag.store.MemoryStore`).
            lock_timeout: Seconds a writer waits for another writer.

        Raises:
            StoreMismatchError: The store was built with other models, or at another
                text precision than ``text_precision``.
            StoreNotFoundError: ``create`` is false and the store does not exist.
            ModelNotFoundError: A model cannot be found locally or downloaded.
        """
        store = _open_backend(path, url, create, vector_store, image_vector_store, store)
        if text_embedder is None and profile_name is None:
            text_embedder = _settings_embed_model()
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
        catalog = store.check_manifest(expected)
        return cls(store, catalog.manifest, text, image, loader_config, lock_timeout=lock_timeout)

    # -- ingestion --------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[str | Path | BaseNode],
        *,
        progress: bool = False,
        captioner: Captioner | None = None,
        workers: int = 1,
        ray_address: str | None = None,
        loaders: LoadPool | None = None,
    ) -> IngestReport:
        """Ingest PDFs and article folders; unchanged documents are skipped.

        Holds the store's writer lock for the whole run (another writer waits up
        to ``lock_timeout``, then raises
        :class:`~multimodal_rag.errors.StoreLockedError`). Each document is
        committed on its own: a failure or a kill loses at most the document in hand.

        Args:
            paths: PDF files and/or folders of articles (``.md``/``.txt``/``.html``),
                and/or LlamaIndex ``Document``/``ImageDocument``/node objects from any
                reader: grouped by source file (``file_name`` metadata), text chunked
                like articles, images kept as figures with their text. Such a
                document is skipped when its content is unchanged and removed by
                its source name (:func:`~multimodal_rag.loading.llama.source_name`).
            progress: Show a progress bar on stderr.
            captioner: Writes a caption for each figure that has none printed
                (stored as ``generated_caption``, embedded with the figure's text).
                Only documents that are (re)ingested are captioned. A captioner
                that fails is logged and the document is ingested without them.
            workers: Processes that load (parse, find figures, OCR) documents in
                parallel while this process embeds and writes them; 1 = load in a
                thread here. :func:`~multimodal_rag.loading.pool.default_workers`
                gives the CPUs this process may use, capped by memory.
            ray_address: Load and embed on the Ray cluster at this address
                (``HOST:PORT`` of its head; needs ``multimodal_rag[ray]``); this
                process writes. Use a Chroma server when the cluster spans machines.
            loaders: A :class:`~multimodal_rag.loading.pool.LoadPool` to load in
                instead of ``workers`` processes, already started and maybe already
                loading some of ``paths`` (:meth:`~multimodal_rag.loading.pool.LoadPool.prefetch`);
                the caller closes it.

        Returns:
            What happened to each document. Documents that fail to load are
            reported as ``failed``; the others are still ingested.
        """
        from .ingest import ingest_paths

        report, catalog = ingest_paths(
            self.store,
            paths,
            text_embedder=self.text_embedder,
            image_embedder=self.image_embedder,
            loader_config=self.loader_config,
            progress=progress,
            captioner=captioner,
            lock_timeout=self.lock_timeout,
            workers=workers,
            ray_address=ray_address,
            loaders=loaders,
        )
        self.manifest = catalog.manifest
        return report

    # -- maintenance and description --------------------------------------------------------

    def remove(self, doc: str) -> bool:
        """Remove a document's chunks and figures. Returns ``False`` if it was not there."""
        from .ingest import DocumentWriter

        with self.store.writer(self.lock_timeout):
            writer = DocumentWriter(self.store, self.text_embedder, self.image_embedder)
            writer.recover()
            removed = writer.remove(doc)
            self.manifest = writer.catalog.manifest
        return removed

    def catalog(self) -> Catalog | None:
        """The store's committed catalog (models, generation, documents)."""
        return self.store.catalog()

    def info(self) -> dict[str, Any]:
        """Counts, documents and models, as ``mmrag info --json`` prints them."""
        return self.store.describe()

    # -- querying ---------------------------------------------------------------------------

    def as_retriever(
        self,
        config: RetrieverConfig | None = None,
        *,
        similarity_top_k: int | None = None,
        filters: MetadataFilters | None = None,
        node_postprocessors: Sequence[BaseNodePostprocessor] | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> MultiModalRetriever:
        """A :class:`~multimodal_rag.retrieval.MultiModalRetriever` over this index.

        Args:
            config: Retrieval settings (candidate counts, fusion, weights).
            similarity_top_k: Results returned (LlamaIndex's name for ``config.top_k``).
            filters: ``MetadataFilters`` on ``doc``, ``kind``, ``page``, ``section``,
                ``figure`` (or any other metadata key of the records).
            node_postprocessors: Applied to the fused nodes, in order (rerankers, cutoffs).
            callback_manager: LlamaIndex callbacks.

        Example:
            >>> from llama_index.core.vector_stores import MetadataFilters, MetadataFilter
            >>> only = MetadataFilters(filters=[MetadataFilter(key="kind", value="figure")])
            >>> index.as_retriever(similarity_top_k=3, filters=only)  # doctest: +SKIP
        """
        from .retrieval import MultiModalRetriever, RetrieverConfig

        config = config or RetrieverConfig()
        if similarity_top_k is not None:
            config = config.model_copy(update={"top_k": similarity_top_k})
            config = RetrieverConfig.model_validate(config.model_dump())  # validate the bound
        return MultiModalRetriever(
            self.store,
            self.text_embedder,
            image_embedder=self.image_embedder,
            state=self.state,
            config=config,
            filters=filters,
            node_postprocessors=node_postprocessors,
            callback_manager=callback_manager,
        )

    def as_query_engine(
        self,
        llm: LLM | None = None,
        *,
        top_k: int = 5,
        similarity_top_k: int | None = None,
        max_images: int = 3,
        multimodal: bool | None = None,
        streaming: bool = False,
        node_postprocessors: Sequence[BaseNodePostprocessor] | None = None,
        filters: MetadataFilters | None = None,
        retriever_config: RetrieverConfig | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> CitedQueryEngine:
        """A query engine that answers with page and figure citations.

        Args:
            llm: Any LlamaIndex LLM; a multimodal one also gets the figures.
                ``None`` uses ``Settings.llm`` when the application set one, else
                gives an extractive answer (cited sentences, passages and figures).
            top_k: Sources handed to the LLM.
            similarity_top_k: LlamaIndex's name for it: sets ``top_k`` and the
                retriever's result count.
            max_images: Figure images sent to a multimodal LLM.
            multimodal: Send figure images to the LLM; ``None`` decides from the LLM
                (see :mod:`multimodal_rag.llms` for the table of models).
            streaming: ``query`` returns a ``StreamingResponse``.
            node_postprocessors: Applied to the retrieved nodes before the sources
                are numbered (rerankers, cutoffs).
            filters: ``MetadataFilters`` for the retriever.
            retriever_config: Retrieval settings.
            callback_manager: LlamaIndex callbacks (QUERY, RETRIEVE, SYNTHESIZE, LLM).
        """
        from .engine import CitedQueryEngine

        if similarity_top_k is not None:
            top_k = similarity_top_k
        retriever = self.as_retriever(
            retriever_config,
            similarity_top_k=max(top_k, (retriever_config or _default_config()).top_k),
            filters=filters,
            callback_manager=callback_manager,
        )
        return CitedQueryEngine(
            retriever,
            llm,
            top_k=top_k,
            max_images=max_images,
            multimodal=multimodal,
            streaming=streaming,
            node_postprocessors=node_postprocessors,
            embed_model=self.text_embedder,
            callback_manager=callback_manager,
        )

    def as_chat_engine(
        self,
        llm: LLM | None = None,
        *,
        top_k: int = 5,
        similarity_top_k: int | None = None,
        multimodal: bool | None = None,
        streaming: bool = False,
        node_postprocessors: Sequence[BaseNodePostprocessor] | None = None,
        filters: MetadataFilters | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> CitedChatEngine:
        """A chat engine for chatbots: follow-ups are condensed with the history.

        Takes the arguments of :meth:`as_query_engine` that a chat needs.
        """
        from .chat import CitedChatEngine

        engine = self.as_query_engine(
            llm,
            top_k=top_k,
            similarity_top_k=similarity_top_k,
            multimodal=multimodal,
            streaming=streaming,
            node_postprocessors=node_postprocessors,
            filters=filters,
            callback_manager=callback_manager,
        )
        return CitedChatEngine(engine, llm=llm, callback_manager=callback_manager)


def _default_config() -> RetrieverConfig:
    from .retrieval import RetrieverConfig

    return RetrieverConfig()


def _settings_embed_model() -> BaseEmbedding | None:
    """``Settings.embed_model`` when the user set one (never LlamaIndex's OpenAI default)."""
    from llama_index.core import Settings

    chosen: BaseEmbedding | None = getattr(Settings, "_embed_model", None)
    return chosen


def _open_backend(
    path: str | Path | None,
    url: str | None,
    create: bool,
    vector_store: BasePydanticVectorStore | None,
    image_vector_store: BasePydanticVectorStore | None,
    store: StoreBase | None,
) -> StoreBase:
    from .errors import StoreError

    if store is not None:
        if path is not None or url is not None or vector_store is not None:
            raise StoreError("give a store, or a path/URL/vector store, not both", location="?")
        return store
    if vector_store is not None:
        if path is None or url is not None:
            raise StoreError(
                "a vector store needs a local folder (path) for the catalog and figures",
                location=str(url or "?"),
            )
        from .store.vector_store import VectorStoreStore

        return VectorStoreStore(vector_store, Path(path), image_vector_store)
    from .store.chroma import open_store

    return open_store(path, url=url, create=create)


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
