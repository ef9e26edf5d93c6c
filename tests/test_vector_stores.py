"""Any LlamaIndex vector store under the index, and stock LlamaIndex reading our collections."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from multimodal_rag.config import LoaderConfig
from multimodal_rag.index import MultimodalIndex

from .support.embedders import HashEmbedding
from .support.pdfs import make_manual_pdf

NO_OCR = LoaderConfig(ocr=False)
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="module")
def manual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_manual_pdf(tmp_path_factory.mktemp("pdf") / "manual.pdf")


def _chroma_vs() -> Any:
    import chromadb
    from llama_index.vector_stores.chroma import ChromaVectorStore

    collection = chromadb.EphemeralClient().get_or_create_collection(
        f"user-{uuid.uuid4().hex[:8]}", configuration={"hnsw": {"space": "cosine"}}
    )
    return ChromaVectorStore(chroma_collection=collection)


def _qdrant_vs(folder: Path) -> Any:
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    return QdrantVectorStore(client=QdrantClient(path=str(folder)), collection_name="text")


def _hits(index: MultimodalIndex, query: str) -> list[tuple[str, int, str | None]]:
    return [(h.doc, h.page, h.figure) for h in index.as_retriever().search(query)]


QUERIES = ["front panel connectors", "signal flow from input to output", "fuse power connector"]


@pytest.mark.parametrize("backend", ["chroma", "qdrant"])
def test_index_on_a_llamaindex_vector_store_ranks_like_the_chroma_store(
    tmp_path: Path, manual: Path, backend: str
) -> None:
    vs = _chroma_vs() if backend == "chroma" else _qdrant_vs(tmp_path / "qdrant")
    index = MultimodalIndex.open(
        tmp_path / "folder",
        vector_store=vs,
        profile_name="offline",
        text_embedder=HashEmbedding(),
        loader_config=NO_OCR,
    )
    reference = MultimodalIndex.open(
        tmp_path / "ref",
        profile_name="offline",
        text_embedder=HashEmbedding(),
        loader_config=NO_OCR,
    )
    for idx in (index, reference):
        assert [d.status for d in idx.ingest([manual]).documents] == ["added"]
    for query in QUERIES:
        assert _hits(index, query) == _hits(reference, query)
    first = index.as_retriever().search("front panel connectors")[0]
    assert first.figure == "Figure 1.1" and first.image and Path(first.image).is_file()
    assert [d.status for d in index.ingest([manual]).documents] == ["unchanged"]
    assert index.remove("manual.pdf")
    assert index.as_retriever().search("front panel connectors") == []
    if backend == "qdrant":
        vs.client.close()


def test_a_vector_store_without_a_folder_is_refused() -> None:
    from multimodal_rag.errors import StoreError

    with pytest.raises(StoreError, match="local folder"):
        MultimodalIndex.open(vector_store=_chroma_vs(), text_embedder=HashEmbedding())


def test_stock_llamaindex_reads_our_text_collection(tmp_path: Path, manual: Path) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import ImageNode, TextNode
    from llama_index.vector_stores.chroma import ChromaVectorStore

    embedder = HashEmbedding()
    index = MultimodalIndex.open(
        tmp_path / "s", profile_name="offline", text_embedder=embedder, loader_config=NO_OCR
    )
    index.ingest([manual])
    stock = VectorStoreIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=index.store.collection("text")), embed_model=embedder
    )
    got = stock.as_retriever(similarity_top_k=10).retrieve("front panel of the widget")
    kinds = {type(n.node) for n in got}
    assert kinds == {TextNode, ImageNode}
    figure = next(n.node for n in got if isinstance(n.node, ImageNode))
    assert figure.metadata["doc"] == "manual.pdf" and figure.metadata["kind"] == "figure"
    assert figure.metadata["figure"] in ("Figure 1.1", "Figure 1.2")
    assert figure.image_path and Path(figure.image_path).is_file()
    assert figure.ref_doc_id and figure.ref_doc_id.startswith("manual.pdf@")
    assert all(n.node.metadata["page"] >= 1 for n in got)


@pytest.mark.slow
def test_qdrant_store_matches_chroma_on_the_dev_questions(tmp_path: Path) -> None:
    """Dev-set MRR@10 on Qdrant (local mode) within 0.02 of the Chroma store (real model)."""
    from multimodal_rag.evaluation import evaluate, load_questions

    corpora = sorted((SHARED / "corpora").glob("*.pdf"))
    questions = load_questions(SHARED / "eval" / "dev-qa.jsonl")
    chroma = MultimodalIndex.open(tmp_path / "chroma", profile_name="offline", loader_config=NO_OCR)
    chroma.ingest(corpora)
    qdrant = MultimodalIndex.open(
        tmp_path / "qdrant-folder",
        vector_store=_qdrant_vs(tmp_path / "qdrant"),
        text_embedder=chroma.text_embedder,
        profile_name="offline",
        loader_config=NO_OCR,
    )
    qdrant.ingest(corpora)
    mrr = [evaluate(questions, i.as_retriever()).metrics["all"]["mrr"] for i in (chroma, qdrant)]
    print(f"dev MRR@10 (OCR off): Chroma store {mrr[0]:.4f}, Qdrant local {mrr[1]:.4f}")
    assert mrr[0] > 0.5
    assert abs(mrr[0] - mrr[1]) <= 0.02, mrr
