"""CitedQueryEngine: what reaches the LLM, the citations that come back, and no-LLM answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.mock import MockLLM
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from PIL import Image
from pydantic import Field

from multimodal_rag.citations import (
    Citation,
    citations_from_response,
    cited_numbers,
    format_sources,
)
from multimodal_rag.engine import CitedQueryEngine, supports_images
from multimodal_rag.errors import QueryError
from multimodal_rag.nodes import chunk_to_node, figure_to_node
from multimodal_rag.records import Figure, TextChunk

DOC = "en-eyes.pdf"
IRIS = (
    "The eye has several layers. The iris is a ring of muscle that controls the size of the "
    "pupil. In bright light the pupil becomes smaller."
)
LENS = "The lens sits behind the pupil and focuses light onto the retina."


# -- helpers shared with test_chat.py -------------------------------------------------------


class FakeRetriever(BaseRetriever):
    """Returns fixed nodes, best first, and records every query it receives."""

    def __init__(self, nodes: Sequence[NodeWithScore]) -> None:
        super().__init__()
        self.nodes = list(nodes)
        self.queries: list[QueryBundle] = []

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        self.queries.append(query_bundle)
        return list(self.nodes)


class _ImageMetadata(LLMMetadata):
    # llama-index-core 0.14's LLMMetadata has no multimodal flag; a subclass may add one.
    is_multi_modal: bool = True


class RecordingLLM(CustomLLM):
    """A chat LLM that records the messages it receives and answers with a fixed text."""

    answer: str = "The iris controls the pupil [2]; see the cross-section [1]."
    multi_modal: bool = False
    received: list[list[ChatMessage]] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        if self.multi_modal:
            return _ImageMetadata(is_chat_model=True)
        return LLMMetadata(is_chat_model=True)

    # Decorated as provider classes are: the LLM reports its own events to its manager.
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.received.append(list(messages))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=self.answer))

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        self.received.append(list(messages))

        def gen() -> ChatResponseGen:
            text = ""
            for word in self.answer.split(" "):
                delta = word if not text else " " + word
                text += delta
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta
                )

        return gen()

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text=self.answer)

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        self.prompts.append(prompt)
        yield CompletionResponse(text=self.answer, delta=self.answer)


def write_png(path: Path, color: tuple[int, int, int]) -> bytes:
    Image.new("RGB", (24, 16), color).save(path, format="PNG")
    return path.read_bytes()


def figure_node(
    tmp_path: Path,
    name: str,
    page: int,
    label: str | None,
    caption: str | None,
    labels: str = "",
    color: tuple[int, int, int] = (200, 30, 30),
) -> NodeWithScore:
    png_path = tmp_path / f"{name}.png"
    figure = Figure(
        doc=DOC,
        page=page,
        bbox=(10.0, 10.0, 200.0, 150.0),
        kind="raster",
        image_png=write_png(png_path, color),
        label=label,
        caption=caption,
        labels_in_figure=labels,
    )
    return NodeWithScore(node=figure_to_node(figure, str(png_path)), score=0.9)


def text_node(
    page: int, text: str, section: str | None = "Anatomy", index: int = 0
) -> NodeWithScore:
    chunk = TextChunk(doc=DOC, page=page, section=section, text=text, index=index)
    return NodeWithScore(node=chunk_to_node(chunk), score=0.5)


def eye_nodes(tmp_path: Path) -> list[NodeWithScore]:
    """A figure first, then two passages: the fused ranking the engine receives."""
    return [
        figure_node(
            tmp_path,
            "fig23",
            41,
            "Figure 2.3",
            "Cross-section of the eye",
            labels="cornea lens retina",
        ),
        text_node(40, IRIS),
        text_node(42, LENS, section=None, index=1),
    ]


def user_blocks(messages: list[ChatMessage]) -> list[Any]:
    (user,) = [m for m in messages if m.role == MessageRole.USER]
    return list(user.blocks)


# -- what reaches the model ----------------------------------------------------------------


def test_text_llm_gets_numbered_sources_with_figure_text_and_no_images(tmp_path: Path) -> None:
    llm = RecordingLLM()
    engine = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=llm)
    engine.query("What does the iris do?")

    (messages,) = llm.received
    assert messages[0].role == MessageRole.SYSTEM
    assert "[1]" in (messages[0].content or "") and "only" in (messages[0].content or "")
    blocks = user_blocks(messages)
    assert [type(b) for b in blocks] == [TextBlock]  # one text block, no images
    prompt = blocks[0].text
    assert (
        "[1] en-eyes.pdf p.41 — Figure 2.3: Cross-section of the eye\ncornea lens retina" in prompt
    )
    assert f"[2] en-eyes.pdf p.40 — section: Anatomy\n{IRIS}" in prompt
    assert f"[3] en-eyes.pdf p.42\n{LENS}" in prompt
    assert prompt.index("[1]") < prompt.index("[2]") < prompt.index("[3]")
    assert "Question: What does the iris do?" in prompt
    assert "image attached" not in prompt


def test_mock_llm_text_only_answer_carries_sources_and_citations(tmp_path: Path) -> None:
    nodes = eye_nodes(tmp_path)
    engine = CitedQueryEngine(FakeRetriever(nodes), llm=MockLLM())
    response = engine.query("What does the iris do?")

    # MockLLM echoes its prompt: the answer is exactly what the model saw.
    text = str(response)
    assert IRIS in text and LENS in text and "cornea lens retina" in text
    assert "Figure 2.3" in text
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in nodes]
    meta = response.metadata or {}
    assert meta["mode"] == "llm"
    assert meta["citations"] == [
        {
            "n": 1,
            "doc": DOC,
            "page": 41,
            "figure": "Figure 2.3",
            "image": str(tmp_path / "fig23.png"),
            "kind": "figure",
        },
        {"n": 2, "doc": DOC, "page": 40, "figure": None, "image": None, "kind": "text"},
        {"n": 3, "doc": DOC, "page": 42, "figure": None, "image": None, "kind": "text"},
    ]


def test_multimodal_llm_gets_each_figure_as_an_image_block_after_its_source(tmp_path: Path) -> None:
    nodes = eye_nodes(tmp_path)
    llm = RecordingLLM(multi_modal=True)
    assert supports_images(llm) and not supports_images(RecordingLLM())
    CitedQueryEngine(FakeRetriever(nodes), llm=llm).query("Show the parts of the eye")

    blocks = user_blocks(llm.received[0])
    images = [b for b in blocks if isinstance(b, ImageBlock)]
    assert len(images) == 1
    image = images[0]
    assert Path(str(image.path)) == tmp_path / "fig23.png"
    assert image.image_mimetype == "image/png"
    assert image.resolve_image().read() == (tmp_path / "fig23.png").read_bytes()
    before = blocks[blocks.index(image) - 1]
    assert isinstance(before, TextBlock)
    assert before.text.rstrip().endswith(
        "[1] en-eyes.pdf p.41 — Figure 2.3: Cross-section of the eye (image attached)\n"
        "cornea lens retina"
    )
    after = blocks[blocks.index(image) + 1]
    assert isinstance(after, TextBlock) and after.text.startswith("[2] en-eyes.pdf p.40")


def test_images_are_capped_at_max_images_and_the_rest_go_as_text(tmp_path: Path) -> None:
    nodes = [
        figure_node(tmp_path, f"f{i}", 10 + i, f"Figure {i}", f"Part {i}", color=(i * 60, 0, 0))
        for i in range(1, 4)
    ]
    llm = RecordingLLM(multi_modal=True)
    CitedQueryEngine(FakeRetriever(nodes), llm=llm, max_images=2).query("parts")
    blocks = user_blocks(llm.received[0])
    paths = [Path(str(b.path)) for b in blocks if isinstance(b, ImageBlock)]
    assert paths == [tmp_path / "f1.png", tmp_path / "f2.png"]
    text = "\n".join(b.text for b in blocks if isinstance(b, TextBlock))
    assert "[3] en-eyes.pdf p.13 — Figure 3: Part 3" in text
    assert "[3] en-eyes.pdf p.13 — Figure 3: Part 3 (image attached)" not in text


def test_multimodal_can_be_forced_on_and_off(tmp_path: Path) -> None:
    nodes = eye_nodes(tmp_path)
    forced_on = RecordingLLM()
    CitedQueryEngine(FakeRetriever(nodes), llm=forced_on, multimodal=True).query("eye")
    assert any(isinstance(b, ImageBlock) for b in user_blocks(forced_on.received[0]))
    forced_off = RecordingLLM(multi_modal=True)
    CitedQueryEngine(FakeRetriever(nodes), llm=forced_off, multimodal=False).query("eye")
    assert not any(isinstance(b, ImageBlock) for b in user_blocks(forced_off.received[0]))


def test_missing_figure_file_is_sent_as_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nodes = eye_nodes(tmp_path)
    (tmp_path / "fig23.png").unlink()
    llm = RecordingLLM(multi_modal=True)
    with caplog.at_level(logging.WARNING, logger="multimodal_rag.engine"):
        CitedQueryEngine(FakeRetriever(nodes), llm=llm).query("eye")
    blocks = user_blocks(llm.received[0])
    assert not any(isinstance(b, ImageBlock) for b in blocks)
    assert "Figure 2.3" in blocks[0].text
    assert "fig23.png is missing" in caplog.text


def test_query_image_reaches_a_multimodal_llm(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    write_png(photo, (0, 0, 255))
    llm = RecordingLLM(multi_modal=True)
    retriever = FakeRetriever(eye_nodes(tmp_path))
    CitedQueryEngine(retriever, llm=llm).query(QueryBundle(query_str="", image_path=str(photo)))
    assert retriever.queries[0].image_path == str(photo)
    paths = [Path(str(b.path)) for b in user_blocks(llm.received[0]) if isinstance(b, ImageBlock)]
    assert paths == [tmp_path / "fig23.png", photo]


# -- responses -----------------------------------------------------------------------------


def test_answer_keeps_markers_and_lists_cited_sources(tmp_path: Path) -> None:
    engine = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=RecordingLLM())
    response = engine.query("What does the iris do?")
    assert str(response) == "The iris controls the pupil [2]; see the cross-section [1]."
    meta = response.metadata or {}
    assert meta["cited"] == [2, 1]
    assert meta["query"] == "What does the iris do?"
    citations = citations_from_response(response)
    assert [c.n for c in citations] == [1, 2, 3]
    assert format_sources(citations, str(response)) == (
        "Sources:\n[1] en-eyes.pdf p. 41 (Figure 2.3)\n[2] en-eyes.pdf p. 40"
    )
    assert format_sources(citations).endswith("[3] en-eyes.pdf p. 42")


def test_top_k_limits_the_numbered_sources(tmp_path: Path) -> None:
    llm = RecordingLLM()
    engine = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=llm, top_k=2)
    response = engine.query("iris")
    assert len(response.source_nodes) == 2
    assert [c["n"] for c in (response.metadata or {})["citations"]] == [1, 2]
    assert "[3]" not in user_blocks(llm.received[0])[0].text


def test_without_llm_answers_with_the_sentences_that_answer_each_cited(tmp_path: Path) -> None:
    engine = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=None)
    response = engine.query("What controls the size of the pupil?")
    # The passage's answering sentence, not its first one nor the lens passage; the top
    # figure is pointed to; no file path reaches the text.
    assert str(response) == (
        "The iris is a ring of muscle that controls the size of the pupil [2].\n\n"
        "See Figure 2.3 (Cross-section of the eye) on p. 41 [1]."
    )
    meta = response.metadata or {}
    assert meta["mode"] == "extractive"
    assert meta["cited"] == [2, 1]
    assert [c["figure"] for c in meta["citations"]] == ["Figure 2.3", None, None]
    assert len(response.source_nodes) == 3


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query_is_a_query_error(tmp_path: Path, query: str) -> None:
    retriever = FakeRetriever(eye_nodes(tmp_path))
    with pytest.raises(QueryError, match="empty"):
        CitedQueryEngine(retriever, llm=RecordingLLM()).query(query)
    assert retriever.queries == []


def test_no_hits_is_a_nothing_found_response_without_calling_the_llm() -> None:
    llm = RecordingLLM()
    response = CitedQueryEngine(FakeRetriever([]), llm=llm).query("warp drive")
    assert str(response) == "Nothing found in the indexed documents for 'warp drive'."
    assert response.source_nodes == []
    assert (response.metadata or {})["mode"] == "empty"
    assert (response.metadata or {})["citations"] == []
    assert llm.received == []


def test_bad_settings_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="top_k"):
        CitedQueryEngine(FakeRetriever([]), top_k=0)
    with pytest.raises(ValueError, match="max_images"):
        CitedQueryEngine(FakeRetriever([]), max_images=-1)


def test_long_sources_are_clipped_and_foreign_nodes_still_cited() -> None:
    long_node = text_node(7, "pupil " * 400)
    foreign = NodeWithScore(node=TextNode(text="A node from another retriever."), score=0.1)
    llm = RecordingLLM()
    engine = CitedQueryEngine(
        FakeRetriever([long_node, foreign]), llm=llm, max_chars_per_source=100
    )
    response = engine.query("pupil")
    prompt = user_blocks(llm.received[0])[0].text
    first = prompt.split("\n\n")[1]
    assert first.splitlines()[1].endswith(" pupil…") and 90 < len(first.splitlines()[1]) <= 100
    assert "[2] unknown document\nA node from another retriever." in prompt
    assert citations_from_response(response)[1].short() == "unknown document"


def test_async_query_matches_sync(tmp_path: Path) -> None:
    engine = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=RecordingLLM())
    sync = engine.query("iris")
    asynchronous = asyncio.run(engine.aquery("iris"))
    assert str(asynchronous) == str(sync)
    assert asynchronous.metadata == sync.metadata


def test_stream_yields_the_answer_and_fills_in_cited_numbers(tmp_path: Path) -> None:
    engine = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=RecordingLLM())
    streaming = engine.stream("iris")
    assert (streaming.metadata or {})["cited"] == []
    assert "".join(streaming.response_gen) == RecordingLLM().answer
    assert (streaming.metadata or {})["cited"] == [2, 1]
    assert len(streaming.source_nodes) == 3


# -- citation helpers ----------------------------------------------------------------------


def test_cited_numbers_reads_grouped_markers_and_ignores_unknown_ones() -> None:
    assert cited_numbers("A [3][1]. B [1, 2]. C [9]. D [0]. E [2;3]", 3) == [3, 1, 2]
    assert cited_numbers("no markers", 3) == []


def test_citation_round_trips_through_json() -> None:
    citation = Citation(2, DOC, 41, "Figure 2.3", "/x/f.png", "figure")
    assert Citation.from_json(citation.to_json()) == citation
    assert citation.short() == "en-eyes.pdf p. 41 (Figure 2.3)"
