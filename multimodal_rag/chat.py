"""A chat engine for chatbots: follow-ups become standalone questions, answers keep citations.

Each turn:

1. The follow-up is *condensed* with the conversation into a standalone
   question — by the LLM when there is one, otherwise by a simple rule
   (:func:`condense_without_llm`).
2. The :class:`~multimodal_rag.engine.CitedQueryEngine` retrieves for that
   question and answers it with numbered citations.
3. The turn goes into memory; the user's message remembers its standalone
   question, so a chain of follow-ups keeps its topic.

The chat response carries the query response's ``source_nodes`` and
``metadata`` (citations, cited numbers, mode, and ``query``: the standalone
question), so a chatbot shows sources exactly as for a single query.

``get_prompts()`` shows ``"condense_prompt"`` and the query engine's
``"query_engine:system_prompt"``; ``update_prompts()`` changes either. An LLM
that fails while condensing is logged and the rule takes over; one that fails
while answering raises :class:`~multimodal_rag.errors.LLMError` whose
``fallback`` is the extractive chat reply over the same sources (and that
reply is what the conversation remembers). The async methods keep the event
loop free (see :mod:`multimodal_rag.engine`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any

from llama_index.core.base.llms.generic_utils import messages_to_history_str
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.base.response.schema import (
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.chat_engine.types import (
    AgentChatResponse,
    BaseChatEngine,
    StreamingAgentChatResponse,
)
from llama_index.core.llms.llm import LLM
from llama_index.core.memory import BaseMemory, ChatMemoryBuffer
from llama_index.core.prompts import BasePromptTemplate, PromptTemplate
from llama_index.core.prompts.mixin import PromptDictType, PromptMixin, PromptMixinType
from llama_index.core.tools import ToolOutput

from .engine import CitedQueryEngine, _sync_only_llm
from .errors import LLMError

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_CONDENSE_PROMPT", "CitedChatEngine", "condense_without_llm"]

DEFAULT_CONDENSE_PROMPT = (
    "Rewrite the user's last message as one standalone question that can be understood "
    "without the conversation: replace pronouns and references with what they refer to. "
    "If it is already standalone, return it unchanged. Reply with the question only.\n\n"
    "Conversation:\n{chat_history}\n\nLast message: {question}\n\nStandalone question:"
)
_STANDALONE_KEY = "standalone_question"
# Turns kept for the condensing prompt: enough to resolve "it", short enough to stay cheap.
_HISTORY_TURNS = 6
_SHORT_WORDS = 5
_WORD = re.compile(r"[a-z']+")
_BACK_POINTERS = frozenset(
    "it its it's they them their theirs these those he she him his her".split()
)
_CONTINUATION_LEADS = frozenset("and also then so this that same which other".split())
_CONTINUATION_PHRASES = ("what about", "how about", "what else", "and what", "and how")


def _previous_question(history: Sequence[ChatMessage]) -> str | None:
    for message in reversed(history):
        if message.role == MessageRole.USER:
            stored = message.additional_kwargs.get(_STANDALONE_KEY)
            return str(stored) if stored else (message.content or None)
    return None


def condense_without_llm(message: str, history: Sequence[ChatMessage]) -> str:
    """The standalone question for ``message`` by rule, when no LLM can rewrite it.

    A follow-up depends on the previous question when it is short (at most five
    words: "and the pupil?"), starts with a continuation ("and", "also", "what
    about", "how about", "this", "that", …) or contains a pronoun pointing back
    ("it", "its", "they", "them", "their", "these", "those", …). Then the
    previous user question (its standalone form) is prepended; the retriever
    sees both the topic and the new ask. Otherwise the message stands alone.

    Example:
        >>> prior = [ChatMessage(role="user", content="How do I clean the lens?")]
        >>> condense_without_llm("And the filter?", prior)
        'How do I clean the lens? And the filter?'
        >>> condense_without_llm("Where is the power switch on the back panel?", prior)
        'Where is the power switch on the back panel?'
    """
    previous = _previous_question(history)
    text = message.strip()
    if not previous:
        return text
    lowered = text.lower()
    words = _WORD.findall(lowered)
    dependent = (
        len(words) <= _SHORT_WORDS
        or (bool(words) and words[0] in _CONTINUATION_LEADS)
        or lowered.startswith(_CONTINUATION_PHRASES)
        or any(w in _BACK_POINTERS for w in words)
    )
    return f"{previous.strip()} {text}" if dependent else text


def _why(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def _plain(response: object) -> Response:
    # A streaming query engine hands back a stream; a chat turn wants the whole answer.
    if isinstance(response, StreamingResponse):
        return response.get_response()
    if not isinstance(response, Response):
        raise TypeError(f"expected a Response from the query engine, got {type(response)!r}")
    return response


async def _aplain(response: object) -> Response:
    if isinstance(response, AsyncStreamingResponse):
        return await response.get_response()
    return _plain(response)


class CitedChatEngine(BaseChatEngine, PromptMixin):
    """Chat over the documents with condensed follow-ups and cited answers.

    Args:
        query_engine: Answers each standalone question.
        llm: Condenses follow-ups; ``None`` uses the query engine's LLM (which is
            ``Settings.llm`` when the application set one and passed none), and
            the rule of :func:`condense_without_llm` when that is ``None`` too.
        memory: Conversation memory; a ``ChatMemoryBuffer`` of 3,000 tokens by default.
        condense_prompt: Template with ``{chat_history}`` and ``{question}``.
        callback_manager: LlamaIndex callbacks.

    Example:
        >>> chat = CitedChatEngine(CitedQueryEngine(retriever))     # doctest: +SKIP
        >>> chat.chat("How do I focus the eyepiece?")               # doctest: +SKIP
        >>> reply = chat.chat("And the other one?")                 # doctest: +SKIP
        >>> reply.metadata["query"], reply.metadata["citations"]    # doctest: +SKIP
    """

    def __init__(
        self,
        query_engine: CitedQueryEngine,
        *,
        llm: LLM | None = None,
        memory: BaseMemory | None = None,
        condense_prompt: str = DEFAULT_CONDENSE_PROMPT,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        self.query_engine = query_engine
        self.llm = llm if llm is not None else query_engine.llm
        self.memory = (
            memory if memory is not None else ChatMemoryBuffer.from_defaults(token_limit=3000)
        )
        self.condense_prompt: BasePromptTemplate = PromptTemplate(condense_prompt)
        self.callback_manager = callback_manager or query_engine.callback_manager

    # -- prompts -----------------------------------------------------------------------------

    def _get_prompts(self) -> dict[str, Any]:
        return {"condense_prompt": self.condense_prompt}

    def _update_prompts(self, prompts: PromptDictType) -> None:
        if "condense_prompt" in prompts:
            self.condense_prompt = prompts["condense_prompt"]

    def _get_prompt_modules(self) -> PromptMixinType:
        return {"query_engine": self.query_engine}

    # -- condensing --------------------------------------------------------------------------

    def _history(self, message: str, chat_history: list[ChatMessage] | None) -> list[ChatMessage]:
        return chat_history if chat_history is not None else self.memory.get(input=message)

    def _condense_prompt_args(self, message: str, history: Sequence[ChatMessage]) -> dict[str, str]:
        return {
            "question": message,
            "chat_history": messages_to_history_str(list(history)[-_HISTORY_TURNS:]),
        }

    def condense(self, message: str, history: Sequence[ChatMessage]) -> str:
        """The standalone question for ``message`` given the conversation so far."""
        if not history or self.llm is None:
            return condense_without_llm(message, history)
        try:
            rewritten = self.llm.predict(
                self.condense_prompt, **self._condense_prompt_args(message, history)
            ).strip()
        except Exception as e:  # any provider's client error: the rule still condenses
            logger.warning("condensing with the LLM failed (%s); using the rule", _why(e))
            rewritten = ""
        return rewritten or condense_without_llm(message, history)

    async def acondense(self, message: str, history: Sequence[ChatMessage]) -> str:
        """Async :meth:`condense`."""
        if not history or self.llm is None:
            return condense_without_llm(message, history)
        if _sync_only_llm(self.llm, "achat"):
            return await asyncio.to_thread(self.condense, message, history)
        try:
            rewritten = await self.llm.apredict(
                self.condense_prompt, **self._condense_prompt_args(message, history)
            )
        except Exception as e:  # any provider's client error: the rule still condenses
            logger.warning("condensing with the LLM failed (%s); using the rule", _why(e))
            rewritten = ""
        return rewritten.strip() or condense_without_llm(message, history)

    # -- turns -------------------------------------------------------------------------------

    def _remember(self, message: str, question: str, answer: str) -> None:
        self.memory.put(
            ChatMessage(
                role=MessageRole.USER,
                content=message,
                additional_kwargs={_STANDALONE_KEY: question},
            )
        )
        self.memory.put(ChatMessage(role=MessageRole.ASSISTANT, content=answer))

    @staticmethod
    def _sources(
        question: str, response: Response | StreamingResponse | AsyncStreamingResponse
    ) -> list[ToolOutput]:
        return [
            ToolOutput(
                tool_name="cited_query_engine",
                content=str(response) if isinstance(response, Response) else None,
                raw_input={"query": question},
                raw_output=response,
            )
        ]

    def _reply(self, question: str, response: Response) -> AgentChatResponse:
        return AgentChatResponse(
            response=str(response.response or ""),
            sources=self._sources(question, response),
            source_nodes=list(response.source_nodes),
            metadata=dict(response.metadata or {}),
        )

    def _failed(self, message: str, question: str, error: LLMError) -> None:
        """Remember the extractive fallback as the turn; the error carries it as a chat reply."""
        if isinstance(error.fallback, Response):
            self._remember(message, question, str(error.fallback.response or ""))
            error.fallback = self._reply(question, error.fallback)

    def chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> AgentChatResponse:
        """Answer one turn; ``chat_history`` replaces memory as context for this turn.

        Raises:
            QueryError: An empty message.
        """
        question = self.condense(message, self._history(message, chat_history))
        logger.info("chat: answering standalone question %r", question)
        try:
            response = _plain(self.query_engine.query(question))
        except LLMError as e:
            self._failed(message, question, e)
            raise
        self._remember(message, question, str(response.response or ""))
        return self._reply(question, response)

    async def achat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> AgentChatResponse:
        """Async :meth:`chat`."""
        history = (
            chat_history if chat_history is not None else await self.memory.aget(input=message)
        )
        question = await self.acondense(message, history)
        try:
            response = await _aplain(await self.query_engine.aquery(question))
        except LLMError as e:
            self._failed(message, question, e)
            raise
        self._remember(message, question, str(response.response or ""))
        return self._reply(question, response)

    def _streaming_reply(
        self, message: str, question: str, streaming: StreamingResponse
    ) -> tuple[StreamingAgentChatResponse, Generator[ChatResponse, None, None]]:
        def chat_stream() -> Generator[ChatResponse, None, None]:
            text = ""
            for delta in streaming.response_gen:
                text += delta
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta
                )
            # The turn is remembered once the caller has read the whole answer.
            self._remember(message, question, text.strip())

        stream = chat_stream()
        reply = StreamingAgentChatResponse(
            chat_stream=stream,
            sources=self._sources(question, streaming),
            source_nodes=list(streaming.source_nodes),
            # Read the stream directly instead of through LlamaIndex's writer thread.
            is_writing_to_memory=False,
        )
        return reply, stream

    def stream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> StreamingAgentChatResponse:
        """Answer one turn as a stream (``reply.response_gen``); citations in ``reply.sources``.

        The turn enters memory when the stream has been read to the end.
        """
        question = self.condense(message, self._history(message, chat_history))
        reply, _ = self._streaming_reply(message, question, self.query_engine.stream(question))
        return reply

    async def astream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> StreamingAgentChatResponse:
        """Async :meth:`stream_chat`: read ``reply.async_response_gen()``.

        The LLM's own async stream is used (a sync-only LLM is read in a worker
        thread), so the event loop stays free while tokens arrive.
        """
        history = (
            chat_history if chat_history is not None else await self.memory.aget(input=message)
        )
        question = await self.acondense(message, history)
        streaming = await self.query_engine.astream(question)

        async def achat_stream() -> AsyncGenerator[ChatResponse, None]:
            text = ""
            async for delta in streaming.async_response_gen():
                text += delta
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta
                )
            self._remember(message, question, text.strip())

        return StreamingAgentChatResponse(
            achat_stream=achat_stream(),
            sources=self._sources(question, streaming),
            source_nodes=list(streaming.source_nodes),
            is_writing_to_memory=False,
        )

    def reset(self) -> None:
        """Forget the conversation."""
        self.memory.reset()

    @property
    def chat_history(self) -> list[ChatMessage]:
        """All remembered messages, oldest first."""
        return self.memory.get_all()
