"""The engines as a LlamaIndex user drives them: prompts, callbacks, Settings, streaming,
postprocessors, a failing LLM, and async calls that leave the event loop free."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ChatResponseGen
from llama_index.core.base.response.schema import AsyncStreamingResponse, StreamingResponse
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.prompts import PromptTemplate
from llama_index.core.schema import NodeWithScore, QueryBundle

from multimodal_rag.chat import CitedChatEngine
from multimodal_rag.engine import CitedQueryEngine
from multimodal_rag.errors import LLMError
from tests.test_chat import CondensingLLM
from tests.test_engine import FakeRetriever, RecordingLLM, eye_nodes, user_blocks

# Every call of a slow retriever holds the thread this long (Chroma, embedding, BM25 ...).
SLOW_SECONDS = 0.05
CONCURRENT = 10
# The loop must get at least one tick per TICK_BUDGET seconds while the calls run.
TICK_BUDGET = 0.005


class SlowRetriever(FakeRetriever):
    """A retriever whose sync work blocks its thread, as a real one does."""

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        time.sleep(SLOW_SECONDS)
        return super()._retrieve(query_bundle)


class AsyncRetriever(FakeRetriever):
    """A retriever with a native async path (e.g. an async vector-store client)."""

    async_calls: int = 0

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        self.async_calls += 1
        await asyncio.sleep(0)
        return list(self.nodes)


class FailingLLM(RecordingLLM):
    """A chat LLM whose server is down."""

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        raise ConnectionError("Connection refused by 127.0.0.1:9")

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        raise ConnectionError("Connection refused by 127.0.0.1:9")


class Reverse(BaseNodePostprocessor):
    """Reverses the ranking and records the question it was given."""

    seen: list[str] = []

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        self.seen.append(query_bundle.query_str if query_bundle else "")
        return list(reversed(nodes))


# -- prompts -------------------------------------------------------------------------------


def test_prompts_are_exposed_and_updates_reach_the_llm(tmp_path: Path) -> None:
    llm = CondensingLLM()
    engine = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=llm)
    chat = CitedChatEngine(engine)
    prompts = chat.get_prompts()
    assert set(prompts) == {"condense_prompt", "query_engine:system_prompt"}
    assert "Cite every statement" in prompts["query_engine:system_prompt"].get_template()
    assert "{chat_history}" in prompts["condense_prompt"].get_template()

    chat.update_prompts(
        {
            "query_engine:system_prompt": PromptTemplate("Answer in French, cite [n]."),
            "condense_prompt": PromptTemplate(
                "History: {chat_history}\nRewrite: {question}\nStandalone question:"
            ),
        }
    )
    chat.chat("How does the iris work?")
    chat.chat("And its color?")
    assert llm.received[-1][0].content == "Answer in French, cite [n]."
    assert llm.prompts[-1].startswith("History: user: How does the iris work?")
    assert engine.get_prompts()["system_prompt"].get_template() == "Answer in French, cite [n]."


# -- callbacks -----------------------------------------------------------------------------


def _pairs(handler: LlamaDebugHandler) -> dict[CBEventType, int]:
    counts: dict[CBEventType, int] = {}
    for kind in (CBEventType.QUERY, CBEventType.RETRIEVE, CBEventType.SYNTHESIZE, CBEventType.LLM):
        counts[kind] = len(handler.get_event_pairs(kind))
    return counts


def test_callback_manager_gets_the_events_a_stock_engine_sends(tmp_path: Path) -> None:
    ours = LlamaDebugHandler()
    engine = CitedQueryEngine(
        FakeRetriever(eye_nodes(tmp_path)),
        llm=RecordingLLM(),
        callback_manager=CallbackManager([ours]),
    )
    engine.query("What does the iris do?")
    expected = {
        CBEventType.QUERY: 1,
        CBEventType.RETRIEVE: 1,
        CBEventType.SYNTHESIZE: 1,
        CBEventType.LLM: 1,
    }
    assert _pairs(ours) == expected
    # Nested as in a stock RetrieverQueryEngine: QUERY holds RETRIEVE and SYNTHESIZE, and
    # SYNTHESIZE holds the LLM call (a start and an end each).
    kinds = [e.event_type for e in ours.get_events() if e.event_type in expected]
    assert kinds == [
        CBEventType.QUERY,
        CBEventType.RETRIEVE,
        CBEventType.RETRIEVE,
        CBEventType.SYNTHESIZE,
        CBEventType.LLM,
        CBEventType.LLM,
        CBEventType.SYNTHESIZE,
        CBEventType.QUERY,
    ]
    llm_end = ours.get_llm_inputs_outputs()[0][1]
    assert "The iris controls the pupil [2]" in str(llm_end.payload)


def test_components_sharing_the_callback_manager_are_not_counted_twice(tmp_path: Path) -> None:
    handler = LlamaDebugHandler()
    manager = CallbackManager([handler])
    retriever = FakeRetriever(eye_nodes(tmp_path))
    retriever.callback_manager = manager
    llm = RecordingLLM(callback_manager=manager)
    CitedQueryEngine(retriever, llm=llm, callback_manager=manager).query("iris")
    assert _pairs(handler) == {
        CBEventType.QUERY: 1,
        CBEventType.RETRIEVE: 1,
        CBEventType.SYNTHESIZE: 1,
        CBEventType.LLM: 1,
    }


# -- Settings ------------------------------------------------------------------------------


def test_settings_llm_answers_when_none_is_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = CondensingLLM()
    monkeypatch.setattr(Settings, "_llm", llm)
    engine = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)))
    chat = CitedChatEngine(engine)
    assert engine.llm is llm and chat.llm is llm
    chat.chat("How does the iris work?")
    reply = chat.chat("And its color?")
    assert (reply.metadata or {})["mode"] == "llm" and llm.prompts  # answered and condensed
    monkeypatch.setattr(Settings, "_llm", None)
    unset = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)))
    assert unset.llm is None and (unset.query("iris").metadata or {})["mode"] == "extractive"


# -- streaming and postprocessors ----------------------------------------------------------


def test_streaming_engine_returns_streams_like_a_stock_one(tmp_path: Path) -> None:
    engine = CitedQueryEngine(
        FakeRetriever(eye_nodes(tmp_path)), llm=RecordingLLM(), streaming=True
    )
    streamed = engine.query("iris")
    assert isinstance(streamed, StreamingResponse)
    assert "".join(streamed.response_gen) == RecordingLLM().answer
    assert (streamed.metadata or {})["cited"] == [2, 1]

    async def read() -> tuple[Any, str]:
        response = await engine.aquery("iris")
        return response, "".join([t async for t in response.async_response_gen()])

    response, text = asyncio.run(read())
    assert isinstance(response, AsyncStreamingResponse) and text == RecordingLLM().answer
    # A chat over a streaming engine still answers whole turns.
    assert CitedChatEngine(engine).chat("iris").response == RecordingLLM().answer


def test_node_postprocessors_run_before_numbering(tmp_path: Path) -> None:
    nodes = eye_nodes(tmp_path)  # scores 0.9 (figure), 0.5, 0.5
    llm = RecordingLLM()
    cutoff = CitedQueryEngine(
        FakeRetriever(nodes),
        llm=llm,
        node_postprocessors=[SimilarityPostprocessor(similarity_cutoff=0.6)],
    )
    response = cutoff.query("iris")
    assert [c["figure"] for c in (response.metadata or {})["citations"]] == ["Figure 2.3"]
    assert "[2]" not in user_blocks(llm.received[-1])[0].text

    reverse = Reverse(seen=[])
    reordered = CitedQueryEngine(FakeRetriever(nodes), node_postprocessors=[reverse], top_k=2)
    pages = [c["page"] for c in (reordered.query("lens").metadata or {})["citations"]]
    assert pages == [42, 40] and reverse.seen == ["lens"]
    asyncio.run(reordered.aquery("pupil"))
    assert reverse.seen == ["lens", "pupil"]


# -- a failing LLM -------------------------------------------------------------------------


def test_failing_llm_raises_llm_error_carrying_the_extractive_answer(tmp_path: Path) -> None:
    engine = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=FailingLLM())
    with pytest.raises(LLMError, match="Connection refused") as caught:
        engine.query("What controls the size of the pupil?")
    fallback = caught.value.fallback
    assert (fallback.metadata or {})["mode"] == "extractive"
    assert "controls the size of the pupil [2]" in str(fallback)
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert "\n" not in str(caught.value)
    with pytest.raises(LLMError):
        asyncio.run(engine.aquery("pupil"))
    with pytest.raises(LLMError):
        "".join(engine.stream("pupil").response_gen)


def test_chat_remembers_the_fallback_when_the_llm_fails(tmp_path: Path) -> None:
    chat = CitedChatEngine(CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=FailingLLM()))
    with pytest.raises(LLMError) as caught:
        chat.chat("How does the iris work?")
    reply = caught.value.fallback
    assert reply.metadata["mode"] == "extractive" and reply.source_nodes
    assert [m.content for m in chat.chat_history] == ["How does the iris work?", reply.response]
    # Condensing fails too on the next turn; the rule takes over and retrieval still runs.
    with pytest.raises(LLMError) as again:
        chat.chat("And its color?")
    assert again.value.fallback.metadata["query"] == "How does the iris work? And its color?"


# -- async keeps the loop free -------------------------------------------------------------


async def _ticks_during(calls: Any) -> tuple[int, float, list[Any]]:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = time.perf_counter()
    results = await asyncio.gather(*calls)
    elapsed = time.perf_counter() - start
    done.set()
    await task
    return ticks, elapsed, list(results)


@pytest.mark.parametrize("llm", [None, RecordingLLM()], ids=["extractive", "llm"])
def test_concurrent_async_queries_leave_the_event_loop_free(
    tmp_path: Path, llm: RecordingLLM | None
) -> None:
    retriever = SlowRetriever(eye_nodes(tmp_path))
    engine = CitedQueryEngine(retriever, llm=llm)

    async def run() -> tuple[int, float, list[Any]]:
        return await _ticks_during([engine.aquery(f"iris {i}") for i in range(CONCURRENT)])

    ticks, elapsed, responses = asyncio.run(run())
    assert len(retriever.queries) == CONCURRENT
    assert all(r.source_nodes for r in responses)
    # A blocking aquery would give ~1 tick in CONCURRENT * SLOW_SECONDS (0.5 s).
    assert ticks >= elapsed / TICK_BUDGET, (ticks, elapsed)


def test_async_chat_and_stream_chat_leave_the_event_loop_free(tmp_path: Path) -> None:
    llm = CondensingLLM()
    engines = [
        CitedChatEngine(CitedQueryEngine(SlowRetriever(eye_nodes(tmp_path)), llm=llm))
        for _ in range(CONCURRENT)
    ]

    async def turn(chat: CitedChatEngine) -> str:
        await chat.achat("How does the iris work?")
        streamed = await chat.astream_chat("And its color?")
        return "".join([t async for t in streamed.async_response_gen()])

    async def run() -> tuple[int, float, list[Any]]:
        return await _ticks_during([turn(chat) for chat in engines])

    ticks, elapsed, answers = asyncio.run(run())
    assert answers == [llm.answer] * CONCURRENT
    assert all(len(chat.chat_history) == 4 for chat in engines)
    assert ticks >= elapsed / TICK_BUDGET, (ticks, elapsed)


def test_a_native_async_retriever_is_awaited_not_threaded(tmp_path: Path) -> None:
    retriever = AsyncRetriever(eye_nodes(tmp_path))
    engine = CitedQueryEngine(retriever, llm=None)
    response = asyncio.run(engine.aquery("iris"))
    assert retriever.async_calls == 1 and retriever.queries == []
    assert (response.metadata or {})["mode"] == "extractive"
