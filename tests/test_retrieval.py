from __future__ import annotations

import pytest

from multimodal_rag.config import LoaderConfig
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.records import Figure, LoadedDocument, TextChunk
from multimodal_rag.retrieval import MultiModalRetriever, RetrieverConfig, figure_links
from multimodal_rag.search import StateSource
from multimodal_rag.store import MemoryStore

from .support.embedders import HashEmbedding
from .support.pdfs import make_manual_pdf


def _rec(kind: str, page: int, figure: str = "") -> dict[str, object]:
    return {"doc": "m.pdf", "page": page, "kind": kind, "figure": figure}


def test_figure_links_follow_label_mentions_and_pages() -> None:
    records = {
        "cap": ("Figure 2.3: the lemon cell. See also Fig. 2.31.", _rec("text", 5)),
        "ref": ("as shown in figure 2.3, the voltage drops", _rec("text", 9)),
        "near": ("Connect the resistor between CS and GND.", _rec("text", 7)),
        "other": ("Figure 2.31 shows the oscillator", _rec("text", 11)),
        "f23": ("Figure 2.3 the lemon cell", _rec("figure", 5, "Figure 2.3")),
        "f231": ("Figure 2.31 oscillator", _rec("figure", 11, "Figure 2.31")),
        "sketch": ("figure", _rec("figure", 7)),
        "beside": ("The pump is primed before the first start.", _rec("text", 12)),
        "f41": ("Figure 4.1 priming", _rec("figure", 12, "Figure 4.1")),
        "f42": ("Figure 4.2 impeller", _rec("figure", 12, "Figure 4.2")),
        "names": ("Figure 4.2 shows the impeller.", _rec("text", 12)),
    }
    links = figure_links(records)
    assert links["cap"] == ["f23", "f231"]
    assert links["ref"] == ["f23"]  # "figure 2.3," is a mention of 2.3 only
    assert links["other"] == ["f231"]  # "2.31" does not mention 2.3
    assert links["near"] == ["sketch"]  # an uncaptioned figure goes with its page
    assert links["beside"] == ["f41", "f42"]  # captioned figures go with their page too
    assert links["names"] == ["f42", "f41"]  # the named figure first, each once
    assert "f23" not in links  # figures never link
    named_only = figure_links(records, pages=False)
    assert "beside" not in named_only and named_only["names"] == ["f42"]
    assert named_only["near"] == ["sketch"]  # an uncaptioned figure has no label to be named by


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> MultimodalIndex:
    # The in-memory store and a bag-of-words embedder: no Chroma, no model.
    folder = tmp_path_factory.mktemp("retrieval")
    built = MultimodalIndex.open(
        store=MemoryStore(),
        profile_name="offline",
        text_embedder=HashEmbedding(),
        loader_config=LoaderConfig(ocr=False),
    )
    built.ingest([make_manual_pdf(folder / "manual.pdf")])
    return built


def _doc(chunks: list[tuple[int, str]], figures: list[tuple[int, str, str]]) -> LoadedDocument:
    """A loaded document made by hand: (page, text) passages, (page, label, caption) figures."""
    return LoadedDocument(
        doc="pump.pdf",
        path="pump.pdf",
        content_hash="h",
        pages=max(p for p, *_ in [*chunks, *figures]),
        chunks=tuple(
            TextChunk("pump.pdf", page, None, text, index=i)
            for i, (page, text) in enumerate(chunks)
        ),
        figures=tuple(
            Figure(
                "pump.pdf",
                page,
                (0, 0, 10, 10),
                "raster",
                label.encode(),
                label=label,
                caption=caption,
            )
            for page, label, caption in figures
        ),
    )


def _retriever(doc: LoadedDocument, **config: object) -> MultiModalRetriever:
    """A retriever given its collaborators directly: memory store, stand-in embedder, state."""
    from multimodal_rag.ingest import DocumentWriter
    from multimodal_rag.store import Manifest

    store = MemoryStore()
    embedder = HashEmbedding()
    store.check_manifest(Manifest(profile="test", text_model="hash", text_dim=embedder.dim))
    with store.writer():
        DocumentWriter(store, embedder).write(doc)
    return MultiModalRetriever(
        store,
        embedder,
        state=StateSource(store),
        config=RetrieverConfig(**config),  # type: ignore[arg-type]
    )


def test_a_figure_named_by_the_best_passage_is_linked_in() -> None:
    doc = _doc(
        [
            (1, "Prime the impeller before the first start, as Figure 3 shows."),
            (2, "Store the unit in a dry place."),
        ],
        [(5, "Figure 3", "Volute casing")],  # its caption shares no word with the query
    )
    query = "prime the impeller before the first start"
    linked = _retriever(doc).search(query)
    assert [h.figure for h in linked[:2]] == [None, "Figure 3"]
    unlinked = _retriever(doc, use_links=False).search(query)
    assert "Figure 3" not in [h.figure for h in unlinked[:2]]


def test_scores_and_lists_are_computed_from_the_memory_store_alone() -> None:
    doc = _doc([(1, "Connect the probe to SQ1."), (2, "Open Edit then Preferences.")], [])
    hits = _retriever(doc).search("SQ1")
    assert hits[0].page == 1 and hits[0].score > hits[-1].score


def test_a_query_asking_for_a_picture_puts_the_figure_first(index: MultimodalIndex) -> None:
    # Page 4's troubleshooting passage is the best text match for the connector; a
    # question that asks for a photo of it wants the front-panel figure instead.
    query = "photo of the power connector"
    plain = index.as_retriever(RetrieverConfig(visual_intent=False)).search(query)
    assert (plain[0].kind, plain[0].page) == ("text", 4)
    visual = index.as_retriever().search(query)
    assert (visual[0].kind, visual[0].figure) == ("figure", "Figure 1.1")
    # Without a picture word the ranking is the plain one.
    unchanged = index.as_retriever().search("power connector")
    assert [h.node_id for h in unchanged] == [
        h.node_id
        for h in index.as_retriever(RetrieverConfig(visual_intent=False)).search("power connector")
    ]


def test_a_figure_leads_the_passage_printed_beside_it(index: MultimodalIndex) -> None:
    hits = index.as_retriever().search("radiation probe Geiger Muller tube")
    assert (hits[0].kind, hits[0].figure, hits[0].page) == ("figure", "Figure 1.2", 3)
    assert (hits[1].kind, hits[1].page) == ("text", 3)


def test_a_query_naming_an_exact_term_weights_bm25_up(index: MultimodalIndex) -> None:
    retriever = index.as_retriever()
    assert retriever._weights("which pin is T19?")["keyword"] == 1.0
    assert retriever._weights("which pin gives the sine wave?")["keyword"] == 0.5
    assert retriever._weights("photo of T19")["linked"] == 0.8  # both intents apply
    off = index.as_retriever(RetrieverConfig(exact_intent=False))
    assert off._weights("which pin is T19?")["keyword"] == 0.5
