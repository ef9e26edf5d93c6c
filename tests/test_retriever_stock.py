"""The retriever with LlamaIndex's stock arguments: similarity_top_k, MetadataFilters,
node postprocessors, bounded scores, and aretrieve that leaves the event loop free."""

from __future__ import annotations

import asyncio
import time

import pytest
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import (
    FilterCondition,
    MetadataFilter,
    MetadataFilters,
)

from multimodal_rag.config import LoaderConfig
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.store import MemoryStore

from .support.embedders import HashEmbedding
from .support.pdfs import make_manual_pdf


class SlowEmbedding(HashEmbedding):
    """Query embeddings take 30 ms outside the GIL, as a real model's forward pass does."""

    def _get_query_embedding(self, query: str) -> list[float]:
        time.sleep(0.03)
        return super()._get_query_embedding(query)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> MultimodalIndex:
    folder = tmp_path_factory.mktemp("stock")
    built = MultimodalIndex.open(
        store=MemoryStore(),
        profile_name="offline",
        text_embedder=SlowEmbedding(),
        loader_config=LoaderConfig(ocr=False),
    )
    built.ingest([make_manual_pdf(folder / "a.pdf"), make_manual_pdf(folder / "b.pdf")])
    return built


QUERY = "front panel connectors of the widget"


def test_similarity_top_k(index: MultimodalIndex) -> None:
    assert len(index.as_retriever(similarity_top_k=3).retrieve(QUERY)) == 3
    assert len(index.as_retriever(similarity_top_k=7).retrieve(QUERY)) == 7


def _f(*items: MetadataFilter | MetadataFilters, condition: str = "and") -> MetadataFilters:
    return MetadataFilters(filters=list(items), condition=FilterCondition(condition))


@pytest.mark.parametrize(
    ("filters", "check"),
    [
        (_f(MetadataFilter(key="kind", value="figure")), lambda m: m["kind"] == "figure"),
        (_f(MetadataFilter(key="doc", value="b.pdf")), lambda m: m["doc"] == "b.pdf"),
        (_f(MetadataFilter(key="page", value=3, operator=">=")), lambda m: m["page"] >= 3),
        (
            _f(MetadataFilter(key="section", value="Troubleshooting", operator="contains")),
            lambda m: "Troubleshooting" in m["section"],
        ),
        (
            _f(MetadataFilter(key="figure", value="Figure 1.2")),
            lambda m: m["figure"] == "Figure 1.2",
        ),
        (
            _f(
                MetadataFilter(key="doc", value="a.pdf"),
                _f(
                    MetadataFilter(key="page", value=2),
                    MetadataFilter(key="page", value=4),
                    condition="or",
                ),
            ),
            lambda m: m["doc"] == "a.pdf" and m["page"] in (2, 4),
        ),
    ],
    ids=["kind", "doc", "page", "section", "figure", "nested"],
)
def test_metadata_filters(index: MultimodalIndex, filters: MetadataFilters, check: object) -> None:
    got = index.as_retriever(filters=filters).retrieve(QUERY)
    assert got, "the filter leaves candidates"
    assert all(check(n.node.metadata) for n in got)  # type: ignore[operator]
    unfiltered = index.as_retriever().retrieve(QUERY)
    assert len(got) < len(unfiltered) or not all(check(n.node.metadata) for n in unfiltered)  # type: ignore[operator]


def test_scores_are_bounded_and_never_rise_down_the_ranking(index: MultimodalIndex) -> None:
    for query in (QUERY, "signal flow ADC DSP DAC", "fuse", "photo of the front panel"):
        scores = [n.score for n in index.as_retriever().retrieve(query)]
        assert scores and all(s is not None and 0.0 <= s <= 1.0 for s in scores)
        assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]


def test_similarity_cutoff_and_custom_postprocessors_apply(index: MultimodalIndex) -> None:
    everything = index.as_retriever().retrieve(QUERY)
    cut = index.as_retriever(
        node_postprocessors=[SimilarityPostprocessor(similarity_cutoff=0.5)]
    ).retrieve(QUERY)
    assert 0 < len(cut) < len(everything)
    assert all((n.score or 0) >= 0.5 for n in cut)

    class Reverse(BaseNodePostprocessor):
        def _postprocess_nodes(
            self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
        ) -> list[NodeWithScore]:
            return list(reversed(nodes))

    reversed_ = index.as_retriever(node_postprocessors=[Reverse()]).retrieve(QUERY)
    assert [n.node.node_id for n in reversed_] == [n.node.node_id for n in everything][::-1]


def test_aretrieve_keeps_the_event_loop_free(index: MultimodalIndex) -> None:
    retriever = index.as_retriever()

    async def run() -> tuple[int, float, list[int]]:
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                await asyncio.sleep(0.001)
                ticks += 1

        task = asyncio.create_task(ticker())
        started = time.perf_counter()
        results = await asyncio.gather(*(retriever.aretrieve(QUERY) for _ in range(10)))
        elapsed = time.perf_counter() - started
        stop = True
        await task
        return ticks, elapsed, [len(r) for r in results]

    ticks, elapsed, sizes = asyncio.run(run())
    assert sizes == [10] * 10
    assert ticks >= elapsed / 0.005, (ticks, elapsed)  # at least one tick per 5 ms


def test_index_engines_take_the_stock_arguments(index: MultimodalIndex) -> None:
    from llama_index.core.base.response.schema import StreamingResponse

    engine = index.as_query_engine(
        similarity_top_k=3,
        streaming=True,
        node_postprocessors=[SimilarityPostprocessor(similarity_cutoff=0.05)],
    )
    response = engine.query(QUERY)
    assert isinstance(response, StreamingResponse)
    assert "".join(response.response_gen)
    assert 0 < len(response.source_nodes) <= 3
    only_b = _f(MetadataFilter(key="doc", value="b.pdf"))
    chat = index.as_chat_engine(similarity_top_k=2, filters=only_b)
    reply = chat.chat(QUERY)
    assert reply.source_nodes and all(n.node.metadata["doc"] == "b.pdf" for n in reply.source_nodes)
