"""Answering questions from retrieved passages and figures, with numbered citations.

:class:`CitedQueryEngine` is a LlamaIndex query engine: it retrieves, runs the
node postprocessors, numbers the best ``top_k`` passages and figures
``[1]…[k]``, and asks the LLM to answer from them only, citing ``[n]``. A
multimodal LLM also *sees* the figures (image blocks, at most ``max_images``);
a text-only LLM reads their caption and labels. Which one an LLM is, is decided
once per engine by :func:`~multimodal_rag.llms.multimodal_choice` and logged.
Without an LLM it answers extractively (:mod:`multimodal_rag.extractive`).

:class:`~multimodal_rag.chat.CitedChatEngine` (a LlamaIndex chat engine) turns
a follow-up into a standalone question and lets the query engine answer it.

Every response keeps the ``[n]`` markers in its text, the numbered nodes in
``source_nodes`` (source ``n`` is ``source_nodes[n - 1]``) and, in
``metadata``:

=========== ==============================================================
key         value
=========== ==============================================================
citations   ``[{"n", "doc", "page", "figure", "image", "kind"}, ...]``
cited       numbers the answer's markers use, in order of first use
mode        ``"llm"``, ``"multimodal"``, ``"extractive"`` or ``"empty"``
query       the question that was answered (the standalone one in a chat)
=========== ==============================================================

Like a stock LlamaIndex engine it takes ``streaming=``, ``node_postprocessors=``
and ``callback_manager=`` (QUERY, RETRIEVE, SYNTHESIZE and LLM events), uses
``Settings.llm`` when no LLM is passed, and exposes its system prompt through
``get_prompts()`` / ``update_prompts()`` as ``"system_prompt"``. The async
methods keep the event loop free: blocking retrieval, postprocessing,
extractive answers and LLMs without a native async client run in worker
threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from llama_index.core import Settings
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ContentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
)
from llama_index.core.base.response.schema import (
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.llm import LLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.prompts import BasePromptTemplate, PromptTemplate
from llama_index.core.prompts.mixin import PromptDictType, PromptMixinType
from llama_index.core.schema import NodeWithScore, QueryBundle, QueryType

from .citations import citations_for, cited_numbers, source_body, source_header
from .errors import LLMError, MultimodalRAGError, QueryError
from .extractive import extractive_answer
from .llms import log_choice, multimodal_choice, settings_llm, supports_images
from .nodes import nodes_to_hits
from .records import Hit

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_SYSTEM_PROMPT", "NOTHING_FOUND", "CitedQueryEngine", "supports_images"]

DEFAULT_SYSTEM_PROMPT = (
    "You answer questions about technical documents. Use only the numbered sources "
    "you are given: passages and figures from the documents. Cite every statement "
    "with the number of its source in square brackets, e.g. [1] or [2][3]. If the "
    "sources do not contain the answer, say that they do not; never invent facts."
)
NOTHING_FOUND = "Nothing found in the indexed documents for {query!r}."

T = TypeVar("T")


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    # End on a word boundary unless that would throw away half the allowance.
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"


def _merge_text(blocks: list[ContentBlock]) -> list[ContentBlock]:
    """Join neighbouring text blocks, so a text-only prompt is one block."""
    out: list[ContentBlock] = []
    for block in blocks:
        if isinstance(block, TextBlock) and out and isinstance(out[-1], TextBlock):
            out[-1] = TextBlock(text=f"{out[-1].text}\n\n{block.text}")
        else:
            out.append(block)
    return out


def _native_async_retriever(retriever: BaseRetriever) -> bool:
    # BaseRetriever._aretrieve just calls _retrieve on the loop; only an override is async.
    return type(retriever)._aretrieve is not BaseRetriever._aretrieve


def _sync_only_llm(llm: LLM, method: str) -> bool:
    # CustomLLM's async methods call the sync ones on the loop (MockLLM, local models).
    return isinstance(llm, CustomLLM) and getattr(type(llm), method) is getattr(CustomLLM, method)


async def _iterate_in_thread(items: Iterator[T]) -> AsyncGenerator[T, None]:
    done = object()
    while True:
        item = await asyncio.to_thread(next, items, done)
        if item is done:
            return
        yield item  # type: ignore[misc]


class CitedQueryEngine(BaseQueryEngine):
    """Answer from retrieved passages and figures, citing them as ``[n]``.

    Args:
        retriever: Any LlamaIndex retriever; best first. Nodes with our metadata
            (:mod:`multimodal_rag.nodes`) are cited by document, page and figure.
        llm: Any LlamaIndex LLM; ``None`` takes ``Settings.llm`` when the
            application set one, else answers extractively.
        top_k: How many retrieved passages/figures are numbered and given to the LLM.
        max_images: Most figure images sent to a multimodal LLM (the rest go as text).
        multimodal: Send figures as images (``True``), never (``False``), or decide
            from the LLM (``None``, see :func:`~multimodal_rag.llms.multimodal_choice`).
        system_prompt: Instructions to the LLM.
        max_chars_per_source: Longest text of one source in the prompt.
        streaming: :meth:`query` returns a ``StreamingResponse`` (``aquery`` an
            ``AsyncStreamingResponse``), as with a stock engine.
        node_postprocessors: LlamaIndex node postprocessors (rerankers, similarity
            cutoffs, ...) applied in order to the retrieved nodes before numbering.
        embed_model: The text embedder that picks the sentences of an extractive
            answer; ``None`` picks them by shared words.
        callback_manager: Receives QUERY, RETRIEVE, SYNTHESIZE and LLM events;
            ``None`` uses ``Settings.callback_manager``.

    Example:
        >>> engine = CitedQueryEngine(retriever, llm=None)            # doctest: +SKIP
        >>> response = engine.query("What does the iris do?")        # doctest: +SKIP
        >>> print(response, format_sources(citations_from_response(response)))  # doctest: +SKIP
    """

    def __init__(
        self,
        retriever: BaseRetriever,
        llm: LLM | None = None,
        *,
        top_k: int = 5,
        max_images: int = 3,
        multimodal: bool | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        max_chars_per_source: int = 1500,
        streaming: bool = False,
        node_postprocessors: Sequence[BaseNodePostprocessor] | None = None,
        embed_model: BaseEmbedding | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if max_images < 0:
            raise ValueError(f"max_images must be 0 or more, got {max_images}")
        if max_chars_per_source < 50:
            raise ValueError(
                f"max_chars_per_source must be at least 50, got {max_chars_per_source}"
            )
        super().__init__(callback_manager=callback_manager or Settings.callback_manager)
        self.retriever = retriever
        self.llm: LLM | None = llm if llm is not None else settings_llm()
        self.top_k = top_k
        self.max_images = max_images
        choice = multimodal_choice(self.llm, multimodal)
        log_choice(self.llm, choice)
        self.multimodal = choice.images
        #: Why figures go (or do not go) to the LLM as images, in one sentence.
        self.multimodal_reason = choice.reason
        self.system_prompt = system_prompt
        self.max_chars_per_source = max_chars_per_source
        self.streaming = streaming
        self.node_postprocessors = list(node_postprocessors or [])
        self.embed_model = embed_model

    # -- prompts -----------------------------------------------------------------------------

    def _get_prompts(self) -> dict[str, Any]:
        return {"system_prompt": PromptTemplate(self.system_prompt)}

    def _update_prompts(self, prompts: PromptDictType) -> None:
        prompt: BasePromptTemplate | None = prompts.get("system_prompt")
        if prompt is not None:
            self.system_prompt = prompt.get_template()

    def _get_prompt_modules(self) -> PromptMixinType:
        return {}

    # -- retrieval ---------------------------------------------------------------------------

    def _own_events(self, component: object) -> bool:
        # A component sharing our callback manager reports its own events; don't double them.
        return getattr(component, "callback_manager", None) is not self.callback_manager

    def _retrieve_with(
        self, query_bundle: QueryBundle, fetch: Callable[[QueryBundle], list[NodeWithScore]]
    ) -> list[NodeWithScore]:
        if not self._own_events(self.retriever):
            return fetch(query_bundle)
        payload: dict[str, Any] = {EventPayload.QUERY_STR: query_bundle.query_str}
        with self.callback_manager.event(CBEventType.RETRIEVE, payload=payload) as event:
            nodes = fetch(query_bundle)
            event.on_end(payload={EventPayload.NODES: nodes})
        return nodes

    def _postprocess(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle
    ) -> list[NodeWithScore]:
        for postprocessor in self.node_postprocessors:
            nodes = postprocessor.postprocess_nodes(nodes, query_bundle=query_bundle)
        return nodes[: self.top_k]

    def retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Retrieve, postprocess and keep the ``top_k`` best nodes (the ones that get numbers).

        Raises:
            QueryError: An empty query (no text and no image).
        """
        _check_query(query_bundle)
        nodes = self._retrieve_with(query_bundle, self.retriever.retrieve)
        return self._postprocess(nodes, query_bundle)

    async def aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Async :meth:`retrieve`; a retriever without native async runs in a worker thread."""
        _check_query(query_bundle)
        if _native_async_retriever(self.retriever):
            payload: dict[str, Any] = {EventPayload.QUERY_STR: query_bundle.query_str}
            if self._own_events(self.retriever):
                with self.callback_manager.event(CBEventType.RETRIEVE, payload=payload) as event:
                    nodes = await self.retriever.aretrieve(query_bundle)
                    event.on_end(payload={EventPayload.NODES: nodes})
            else:
                nodes = await self.retriever.aretrieve(query_bundle)
        else:
            nodes = await asyncio.to_thread(
                self._retrieve_with, query_bundle, self.retriever.retrieve
            )
        if not self.node_postprocessors:
            return nodes[: self.top_k]
        return await asyncio.to_thread(self._postprocess, nodes, query_bundle)

    # -- answering ---------------------------------------------------------------------------

    def _llm_error(
        self, error: Exception, query_bundle: QueryBundle, nodes: Sequence[NodeWithScore]
    ) -> LLMError:
        llm = self.llm
        model = str(getattr(llm.metadata, "model_name", "") or "") if llm else ""
        url = getattr(llm, "api_base", None)
        where = f" at {url}" if url else ""
        detail = " ".join(str(error).split())[:300] or "no message"
        return LLMError(
            f"the LLM {model or type(llm).__name__!r}{where} did not answer "
            f"({type(error).__name__}: {detail}); the cited passages follow",
            url=str(url) if url else None,
            model=model or None,
            fallback=self._offline_response(query_bundle, nodes, None),
        )

    def _chat(
        self, llm: LLM, messages: list[ChatMessage], query_bundle: QueryBundle, nodes: Any
    ) -> str:
        try:
            if not self._own_events(llm):
                return llm.chat(messages).message.content or ""
            payload: dict[str, Any] = {EventPayload.MESSAGES: messages}
            with self.callback_manager.event(CBEventType.LLM, payload=payload) as event:
                chat = llm.chat(messages)
                event.on_end(payload={EventPayload.MESSAGES: messages, EventPayload.RESPONSE: chat})
            return chat.message.content or ""
        except MultimodalRAGError:
            raise
        except Exception as e:  # any provider's client error; kept as the cause
            raise self._llm_error(e, query_bundle, nodes) from e

    async def _achat(
        self, llm: LLM, messages: list[ChatMessage], query_bundle: QueryBundle, nodes: Any
    ) -> str:
        if _sync_only_llm(llm, "achat"):
            return await asyncio.to_thread(self._chat, llm, messages, query_bundle, nodes)
        try:
            if not self._own_events(llm):
                return (await llm.achat(messages)).message.content or ""
            payload: dict[str, Any] = {EventPayload.MESSAGES: messages}
            with self.callback_manager.event(CBEventType.LLM, payload=payload) as event:
                chat = await llm.achat(messages)
                event.on_end(payload={EventPayload.MESSAGES: messages, EventPayload.RESPONSE: chat})
            return chat.message.content or ""
        except MultimodalRAGError:
            raise
        except Exception as e:  # any provider's client error; kept as the cause
            raise await asyncio.to_thread(self._llm_error, e, query_bundle, nodes) from e

    def _synthesize_event(self, query_bundle: QueryBundle) -> Any:
        return self.callback_manager.event(
            CBEventType.SYNTHESIZE, payload={EventPayload.QUERY_STR: query_bundle.query_str}
        )

    def synthesize(
        self,
        query_bundle: QueryBundle,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
    ) -> Response:
        """Answer ``query_bundle`` from ``nodes`` (numbered in their order).

        Raises:
            LLMError: The LLM failed; ``.fallback`` is the extractive answer.
        """
        nodes = nodes[: self.top_k]
        with self._synthesize_event(query_bundle) as event:
            if not nodes or self.llm is None:
                response = self._offline_response(query_bundle, nodes, additional_source_nodes)
            else:
                answer = self._chat(
                    self.llm, self.messages(query_bundle, nodes), query_bundle, nodes
                )
                response = self._response(query_bundle, nodes, answer, additional_source_nodes)
            event.on_end(payload={EventPayload.RESPONSE: response})
        return response

    async def asynthesize(
        self,
        query_bundle: QueryBundle,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
    ) -> Response:
        """Async :meth:`synthesize`."""
        nodes = nodes[: self.top_k]
        with self._synthesize_event(query_bundle) as event:
            if not nodes or self.llm is None:
                response = await asyncio.to_thread(
                    self._offline_response, query_bundle, nodes, additional_source_nodes
                )
            else:
                messages = self.messages(query_bundle, nodes)
                answer = await self._achat(self.llm, messages, query_bundle, nodes)
                response = self._response(query_bundle, nodes, answer, additional_source_nodes)
            event.on_end(payload={EventPayload.RESPONSE: response})
        return response

    def _query_event(self, query_bundle: QueryBundle) -> Any:
        return self.callback_manager.event(
            CBEventType.QUERY, payload={EventPayload.QUERY_STR: query_bundle.query_str}
        )

    def answer(self, query_bundle: QueryBundle) -> Response:
        """Retrieve and answer, never streaming (what :meth:`query` does without ``streaming``)."""
        # Inside a trace, as query() runs: LlamaIndex's event stack breaks on events outside one.
        with self.callback_manager.as_trace("query"), self._query_event(query_bundle) as event:
            response = self.synthesize(query_bundle, self.retrieve(query_bundle))
            event.on_end(payload={EventPayload.RESPONSE: response})
        return response

    async def aanswer(self, query_bundle: QueryBundle) -> Response:
        """Async :meth:`answer`."""
        with self.callback_manager.as_trace("query"), self._query_event(query_bundle) as event:
            nodes = await self.aretrieve(query_bundle)
            response = await self.asynthesize(query_bundle, nodes)
            event.on_end(payload={EventPayload.RESPONSE: response})
        return response

    def _query(self, query_bundle: QueryBundle) -> Response | StreamingResponse:
        return self.stream(query_bundle) if self.streaming else self.answer(query_bundle)

    async def _aquery(self, query_bundle: QueryBundle) -> Response | AsyncStreamingResponse:
        if self.streaming:
            return await self.astream(query_bundle)
        return await self.aanswer(query_bundle)

    # -- streaming ---------------------------------------------------------------------------

    def _llm_events(self) -> tuple[Callable[[Any], str], Callable[[str, dict[str, Any]], None]]:
        """Start/end callbacks for an LLM event around a stream (a no-op when not ours)."""
        llm = self.llm
        if llm is None or not self._own_events(llm):
            return (lambda _payload: ""), (lambda _id, _payload: None)

        def start(payload: Any) -> str:
            return self.callback_manager.on_event_start(CBEventType.LLM, payload=payload)

        def end(event_id: str, payload: dict[str, Any]) -> None:
            self.callback_manager.on_event_end(CBEventType.LLM, payload=payload, event_id=event_id)

        return start, end

    def stream(self, str_or_query_bundle: QueryType) -> StreamingResponse:
        """Like :meth:`query`, but the answer arrives as a token generator.

        ``metadata["cited"]`` is filled in once the generator is exhausted. A
        failing LLM raises :class:`~multimodal_rag.errors.LLMError` from the generator.
        """
        bundle = (
            QueryBundle(str_or_query_bundle)
            if isinstance(str_or_query_bundle, str)
            else str_or_query_bundle
        )
        with self.callback_manager.as_trace("query"):
            nodes = self.retrieve(bundle)
        if not nodes or self.llm is None:
            done = self._offline_response(bundle, nodes, None)
            return StreamingResponse(
                response_gen=(t for t in [done.response or ""]),
                source_nodes=done.source_nodes,
                metadata=done.metadata,
            )
        meta = self._metadata(bundle, nodes, "")
        llm = self.llm
        messages = self.messages(bundle, nodes)
        start, end = self._llm_events()

        def tokens() -> Generator[str, None, None]:
            event_id = start({EventPayload.MESSAGES: messages})
            text = ""
            try:
                for chunk in llm.stream_chat(messages):
                    text += chunk.delta or ""
                    yield chunk.delta or ""
            except MultimodalRAGError:
                raise
            except Exception as e:  # any provider's client error; kept as the cause
                raise self._llm_error(e, bundle, nodes) from e
            meta["cited"] = cited_numbers(text, len(nodes))
            end(event_id, {EventPayload.MESSAGES: messages, EventPayload.RESPONSE: text})

        return StreamingResponse(response_gen=tokens(), source_nodes=list(nodes), metadata=meta)

    async def astream(self, str_or_query_bundle: QueryType) -> AsyncStreamingResponse:
        """Async :meth:`stream`: ``response.async_response_gen()`` yields the tokens."""
        bundle = (
            QueryBundle(str_or_query_bundle)
            if isinstance(str_or_query_bundle, str)
            else str_or_query_bundle
        )
        with self.callback_manager.as_trace("query"):
            nodes = await self.aretrieve(bundle)
        if not nodes or self.llm is None:
            done = await asyncio.to_thread(self._offline_response, bundle, nodes, None)

            async def once() -> AsyncGenerator[str, None]:
                yield done.response or ""

            return AsyncStreamingResponse(
                response_gen=once(), source_nodes=done.source_nodes, metadata=done.metadata
            )
        meta = self._metadata(bundle, nodes, "")
        llm = self.llm
        messages = self.messages(bundle, nodes)
        start, end = self._llm_events()

        async def chunks() -> AsyncGenerator[ChatResponse, None]:
            if _sync_only_llm(llm, "astream_chat"):
                async for chunk in _iterate_in_thread(iter(llm.stream_chat(messages))):
                    yield chunk
            else:
                async for chunk in await llm.astream_chat(messages):
                    yield chunk

        async def tokens() -> AsyncGenerator[str, None]:
            event_id = start({EventPayload.MESSAGES: messages})
            text = ""
            try:
                async for chunk in chunks():
                    text += chunk.delta or ""
                    yield chunk.delta or ""
            except MultimodalRAGError:
                raise
            except Exception as e:  # any provider's client error; kept as the cause
                raise await asyncio.to_thread(self._llm_error, e, bundle, nodes) from e
            meta["cited"] = cited_numbers(text, len(nodes))
            end(event_id, {EventPayload.MESSAGES: messages, EventPayload.RESPONSE: text})

        return AsyncStreamingResponse(
            response_gen=tokens(), source_nodes=list(nodes), metadata=meta
        )

    # -- prompt ------------------------------------------------------------------------------

    def messages(
        self, query_bundle: QueryBundle, nodes: Sequence[NodeWithScore]
    ) -> list[ChatMessage]:
        """The chat messages the LLM receives for ``nodes`` (exposed for inspection)."""
        hits = nodes_to_hits(list(nodes))
        blocks: list[ContentBlock] = [TextBlock(text="Sources:")]
        images = 0
        for hit in hits:
            image = self._image_for(hit) if images < self.max_images else None
            header = source_header(hit) + (" (image attached)" if image else "")
            body = _clip(source_body(hit), self.max_chars_per_source)
            blocks.append(TextBlock(text=f"{header}\n{body}" if body else header))
            if image is not None:
                # Right after its header, so the model can tell which [n] the picture is.
                blocks.append(ImageBlock(path=image, image_mimetype="image/png"))
                images += 1
        query_image = self._query_image(query_bundle)
        if query_image is not None:
            blocks.append(TextBlock(text="The user's question comes with this image:"))
            blocks.append(ImageBlock(path=query_image))
        question = query_bundle.query_str.strip() or "What do the sources say about this image?"
        blocks.append(
            TextBlock(
                text=f"Question: {question}\nAnswer from the sources above, citing them as [n]."
            )
        )
        system_role = self.llm.metadata.system_role if self.llm else MessageRole.SYSTEM
        return [
            ChatMessage(role=system_role, content=self.system_prompt),
            ChatMessage(role=MessageRole.USER, blocks=_merge_text(blocks)),
        ]

    def _image_for(self, hit: Hit) -> Path | None:
        if not self.multimodal or hit.kind != "figure" or not hit.image:
            return None
        path = Path(hit.image)
        if not path.is_file():
            logger.warning("figure image %s is missing; sending its text only", path)
            return None
        return path

    def _query_image(self, query_bundle: QueryBundle) -> Path | None:
        if not self.multimodal or not query_bundle.image_path:
            return None
        path = Path(query_bundle.image_path)
        return path if path.is_file() else None

    # -- responses ---------------------------------------------------------------------------

    def _metadata(
        self, query_bundle: QueryBundle, nodes: Sequence[NodeWithScore], answer: str, mode: str = ""
    ) -> dict[str, Any]:
        if not mode:
            if not nodes:
                mode = "empty"
            elif self.llm is None:
                mode = "extractive"
            else:
                mode = "multimodal" if self.multimodal else "llm"
        return {
            "citations": [c.to_json() for c in citations_for(nodes)],
            "cited": cited_numbers(answer, len(nodes)),
            "mode": mode,
            "query": query_bundle.query_str,
        }

    def _response(
        self,
        query_bundle: QueryBundle,
        nodes: Sequence[NodeWithScore],
        answer: str,
        extra: Sequence[NodeWithScore] | None,
        mode: str = "",
    ) -> Response:
        return Response(
            response=answer.strip(),
            source_nodes=[*nodes, *(extra or [])],
            metadata=self._metadata(query_bundle, nodes, answer, mode),
        )

    def _offline_response(
        self,
        query_bundle: QueryBundle,
        nodes: Sequence[NodeWithScore],
        extra: Sequence[NodeWithScore] | None,
    ) -> Response:
        query = query_bundle.query_str.strip() or "the query image"
        if not nodes:
            # No LLM call: with nothing to cite, any answer would be made up.
            return self._response(
                query_bundle, [], NOTHING_FOUND.format(query=query), extra, "empty"
            )
        hits = nodes_to_hits(list(nodes))
        answer = extractive_answer(query_bundle.query_str, hits, self.embed_model)
        return self._response(query_bundle, nodes, answer, extra, "extractive")


def _check_query(query_bundle: QueryBundle) -> None:
    if not (query_bundle.query_str or "").strip() and not query_bundle.image_path:
        raise QueryError("the query is empty: give a question (or a query image)")
