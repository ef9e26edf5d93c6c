"""CitedChatEngine: follow-ups condensed with history reach the retriever; citations survive."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.base.response.schema import Response

from multimodal_rag.chat import CitedChatEngine, condense_without_llm
from multimodal_rag.citations import citations_from_response
from multimodal_rag.engine import CitedQueryEngine
from multimodal_rag.errors import QueryError
from tests.test_engine import FakeRetriever, RecordingLLM, eye_nodes

FIRST = "How does the iris work?"
STANDALONE = "What is the size of the pupil controlled by the iris?"


class CondensingLLM(RecordingLLM):
    """Answers chats with the fixed answer and condense prompts with a fixed rewrite."""

    rewrite: str = STANDALONE

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        # LLM.predict sends the condense prompt as a chat message to a chat model.
        prompt = messages[-1].content or ""
        if "Standalone question:" not in prompt:
            return super().chat(messages, **kwargs)
        self.prompts.append(prompt)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=self.rewrite))


def make_chat(tmp_path: Path, llm: RecordingLLM | None) -> tuple[CitedChatEngine, FakeRetriever]:
    retriever = FakeRetriever(eye_nodes(tmp_path))
    return CitedChatEngine(CitedQueryEngine(retriever, llm=llm)), retriever


def test_follow_up_is_condensed_by_the_llm_with_the_history(tmp_path: Path) -> None:
    llm = CondensingLLM()
    chat, retriever = make_chat(tmp_path, llm)

    chat.chat(FIRST)
    assert llm.prompts == []  # nothing to condense on the first turn
    reply = chat.chat("And how big is it?")

    assert [q.query_str for q in retriever.queries] == [FIRST, STANDALONE]
    (condense_prompt,) = llm.prompts
    assert f"user: {FIRST}" in condense_prompt
    assert f"assistant: {llm.answer}" in condense_prompt
    assert "Last message: And how big is it?" in condense_prompt
    # The answering prompt asks the standalone question, not the follow-up.
    assert f"Question: {STANDALONE}" in llm.received[-1][-1].blocks[0].text  # type: ignore[union-attr]

    assert reply.response == llm.answer
    assert reply.metadata is not None and reply.metadata["query"] == STANDALONE
    assert reply.metadata["cited"] == [2, 1]
    assert [c.n for c in citations_from_response(reply)] == [1, 2, 3]
    assert citations_from_response(reply)[0].figure == "Figure 2.3"
    assert len(reply.source_nodes) == 3
    assert isinstance(reply.sources[0].raw_output, Response)


def test_without_llm_a_short_or_pronoun_led_follow_up_gets_the_previous_question(
    tmp_path: Path,
) -> None:
    chat, retriever = make_chat(tmp_path, None)
    chat.chat(FIRST)
    reply = chat.chat("And its color?")
    chat.chat("What about the lens?")
    chat.chat("Where is the retina located in the human eye?")

    assert [q.query_str for q in retriever.queries] == [
        FIRST,
        f"{FIRST} And its color?",
        # A chain keeps the topic: the previous *standalone* question is prepended.
        f"{FIRST} And its color? What about the lens?",
        "Where is the retina located in the human eye?",
    ]
    assert reply.metadata is not None and reply.metadata["mode"] == "extractive"
    assert "controls the size of the pupil [2]" in reply.response
    assert [c.page for c in citations_from_response(reply)] == [41, 40, 42]


@pytest.mark.parametrize(
    ("follow_up", "dependent"),
    [
        ("and the pupil?", True),
        ("How do I clean them without scratching the coating?", True),
        ("What about the lens on the left side of the case?", True),
        ("That one on the left side of the case, please explain", True),
        ("Where is the power switch on the back panel?", False),
    ],
)
def test_condense_rule(follow_up: str, dependent: bool) -> None:
    history = [
        ChatMessage(role=MessageRole.USER, content="How do I clean the lens?"),
        ChatMessage(role=MessageRole.ASSISTANT, content="Use a soft cloth [1]."),
    ]
    condensed = condense_without_llm(follow_up, history)
    assert condensed == (f"How do I clean the lens? {follow_up}" if dependent else follow_up)
    assert condense_without_llm(follow_up, []) == follow_up


def test_memory_records_turns_and_reset_forgets_them(tmp_path: Path) -> None:
    chat, retriever = make_chat(tmp_path, None)
    chat.chat(FIRST)
    assert [(m.role, m.content) for m in chat.chat_history][0] == (MessageRole.USER, FIRST)
    assert chat.chat_history[1].role == MessageRole.ASSISTANT
    assert "See Figure 2.3 (Cross-section of the eye) on p. 41 [1]." in (
        chat.chat_history[1].content or ""
    )
    chat.reset()
    assert chat.chat_history == []
    chat.chat("And its color?")
    assert retriever.queries[-1].query_str == "And its color?"


def test_explicit_chat_history_is_used_for_condensing(tmp_path: Path) -> None:
    chat, retriever = make_chat(tmp_path, None)
    history = [ChatMessage(role=MessageRole.USER, content="How do I focus the eyepiece?")]
    chat.chat("and the other one?", chat_history=history)
    assert retriever.queries[-1].query_str == "How do I focus the eyepiece? and the other one?"


def test_empty_message_raises_and_is_not_remembered(tmp_path: Path) -> None:
    chat, _ = make_chat(tmp_path, None)
    with pytest.raises(QueryError):
        chat.chat("  ")
    assert chat.chat_history == []


def test_stream_chat_streams_the_answer_with_citations_and_then_remembers(tmp_path: Path) -> None:
    llm = CondensingLLM()
    chat, retriever = make_chat(tmp_path, llm)
    chat.chat(FIRST)
    reply = chat.stream_chat("And how big is it?")
    assert retriever.queries[-1].query_str == STANDALONE
    assert len(chat.chat_history) == 2  # not yet: the answer has not been read

    tokens = list(reply.response_gen)
    assert len(tokens) > 1
    assert "".join(tokens) == llm.answer
    assert [c.n for c in citations_from_response(reply)] == [1, 2, 3]
    assert len(reply.source_nodes) == 3
    assert [m.content for m in chat.chat_history[2:]] == ["And how big is it?", llm.answer]


def test_async_chat_condenses_and_cites(tmp_path: Path) -> None:
    chat, retriever = make_chat(tmp_path, None)

    async def talk() -> list[str]:
        await chat.achat(FIRST)
        reply = await chat.achat("And its color?")
        streamed = await chat.astream_chat("what about them?")
        return [reply.response, "".join([t async for t in streamed.async_response_gen()])]

    answer, streamed = asyncio.run(talk())
    assert retriever.queries[1].query_str == f"{FIRST} And its color?"
    assert "Figure 2.3 (Cross-section of the eye) on p. 41 [1]" in answer
    assert "[2]" in streamed and "[1]" in streamed
    assert len(chat.chat_history) == 6
