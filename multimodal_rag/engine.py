"""Answering questions from retrieved passages and figures, with numbered citations.

:class:`CitedQueryEngine` is a LlamaIndex query engine: it retrieves, numbers
the best ``top_k`` passages and figures ``[1]…[k]``, and asks the LLM to answer
from them only, citing ``[n]``. A multimodal LLM also *sees* the figures (image
blocks, at most ``max_images``); a text-only LLM reads their caption and labels.
Without an LLM it answers extractively: the best excerpts, each cited.

:class:`CitedChatEngine` (a LlamaIndex chat engine) turns a follow-up into a
standalone question and lets the query engine answer it.

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
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import (
    ChatMessage,
    ContentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
)
from llama_index.core.base.response.schema import Response, StreamingResponse
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms.llm import LLM
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.schema import NodeWithScore, QueryBundle, QueryType

from .citations import (
    citations_for,
    cited_numbers,
    extractive_answer,
    source_body,
    source_header,
)
from .errors import QueryError
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
# Per source in an extractive answer: a few sentences, so several sources fit on a screen.
_EXCERPT_CHARS = 400


def supports_images(llm: LLM) -> bool:
    """Whether ``llm`` declares that it accepts image blocks.

    llama-index-core 0.14's ``LLMMetadata`` has no multimodal flag (its fields
    are context_window, num_output, is_chat_model, is_function_calling_model,
    model_name, system_role). An LLM whose metadata carries
    ``is_multi_modal=True`` (a metadata subclass, a future core release) is
    honoured; for others pass ``multimodal=True`` to the engine.
    """
    return bool(getattr(llm.metadata, "is_multi_modal", False))


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


class CitedQueryEngine(BaseQueryEngine):
    """Answer from retrieved passages and figures, citing them as ``[n]``.

    Args:
        retriever: Any LlamaIndex retriever; best first. Nodes with our metadata
            (:mod:`multimodal_rag.nodes`) are cited by document, page and figure.
        llm: Any LlamaIndex LLM, or ``None`` for extractive answers.
        top_k: How many retrieved passages/figures are numbered and given to the LLM.
        max_images: Most figure images sent to a multimodal LLM (the rest go as text).
        multimodal: Send figures as images; ``None`` decides by :func:`supports_images`.
        system_prompt: Instructions to the LLM.
        max_chars_per_source: Longest text of one source in the prompt.
        callback_manager: LlamaIndex callbacks.

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
        super().__init__(callback_manager=callback_manager)
        self.retriever = retriever
        self.llm = llm
        self.top_k = top_k
        self.max_images = max_images
        self.multimodal = (
            False if llm is None else (supports_images(llm) if multimodal is None else multimodal)
        )
        self.system_prompt = system_prompt
        self.max_chars_per_source = max_chars_per_source

    # -- LlamaIndex query-engine interface --------------------------------------------------

    def _get_prompt_modules(self) -> PromptMixinType:
        return {}

    def retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Retrieve and keep the ``top_k`` best nodes (the ones that get numbers)."""
        _check_query(query_bundle)
        return self.retriever.retrieve(query_bundle)[: self.top_k]

    def synthesize(
        self,
        query_bundle: QueryBundle,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
    ) -> Response:
        """Answer ``query_bundle`` from ``nodes`` (numbered in their order)."""
        nodes = nodes[: self.top_k]
        if not nodes or self.llm is None:
            return self._offline_response(query_bundle, nodes, additional_source_nodes)
        chat = self.llm.chat(self.messages(query_bundle, nodes))
        return self._response(
            query_bundle, nodes, chat.message.content or "", additional_source_nodes
        )

    async def asynthesize(
        self,
        query_bundle: QueryBundle,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
    ) -> Response:
        """Async :meth:`synthesize`."""
        nodes = nodes[: self.top_k]
        if not nodes or self.llm is None:
            return self._offline_response(query_bundle, nodes, additional_source_nodes)
        chat = await self.llm.achat(self.messages(query_bundle, nodes))
        return self._response(
            query_bundle, nodes, chat.message.content or "", additional_source_nodes
        )

    def _query(self, query_bundle: QueryBundle) -> Response:
        return self.synthesize(query_bundle, self.retrieve(query_bundle))

    async def _aquery(self, query_bundle: QueryBundle) -> Response:
        _check_query(query_bundle)
        nodes = (await self.retriever.aretrieve(query_bundle))[: self.top_k]
        return await self.asynthesize(query_bundle, nodes)

    def stream(self, str_or_query_bundle: QueryType) -> StreamingResponse:
        """Like :meth:`query`, but the answer arrives as a token generator.

        ``metadata["cited"]`` is filled in once the generator is exhausted.
        """
        bundle = (
            QueryBundle(str_or_query_bundle)
            if isinstance(str_or_query_bundle, str)
            else str_or_query_bundle
        )
        nodes = self.retrieve(bundle)
        if not nodes or self.llm is None:
            done = self._offline_response(bundle, nodes, None)
            text = done.response or ""
            return StreamingResponse(
                response_gen=(t for t in [text]),
                source_nodes=done.source_nodes,
                metadata=done.metadata,
            )
        meta = self._metadata(bundle, nodes, "")
        llm = self.llm
        messages = self.messages(bundle, nodes)

        def tokens() -> Generator[str, None, None]:
            text = ""
            for chunk in llm.stream_chat(messages):
                text += chunk.delta or ""
                yield chunk.delta or ""
            meta["cited"] = cited_numbers(text, len(nodes))

        return StreamingResponse(response_gen=tokens(), source_nodes=list(nodes), metadata=meta)

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
        self, query_bundle: QueryBundle, nodes: Sequence[NodeWithScore], answer: str
    ) -> dict[str, Any]:
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
    ) -> Response:
        return Response(
            response=answer.strip(),
            source_nodes=[*nodes, *(extra or [])],
            metadata=self._metadata(query_bundle, nodes, answer),
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
            return self._response(query_bundle, [], NOTHING_FOUND.format(query=query), extra)
        answer = extractive_answer(query, nodes_to_hits(list(nodes)), _EXCERPT_CHARS)
        return self._response(query_bundle, nodes, answer, extra)


def _check_query(query_bundle: QueryBundle) -> None:
    if not (query_bundle.query_str or "").strip() and not query_bundle.image_path:
        raise QueryError("the query is empty: give a question (or a query image)")
