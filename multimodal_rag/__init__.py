"""multimodal_rag: retrieval-augmented generation over manuals, text and figures.

Load a PDF manual into text chunks and figures, embed them into two Chroma
collections, retrieve passages and figures for text or image queries with a
fused ranking, and answer with page and figure citations through any
LlamaIndex LLM.

Example:
    >>> from multimodal_rag import MultimodalIndex
    >>> index = MultimodalIndex.open("store", profile_name="offline")   # doctest: +SKIP
    >>> index.ingest(["manual.pdf"])                                    # doctest: +SKIP
    >>> print(index.as_query_engine().query("How do I calibrate it?"))  # doctest: +SKIP

Heavy dependencies (torch, transformers, chromadb, PyMuPDF) are imported on
first use, so ``import multimodal_rag`` is cheap.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from .config import LoaderConfig, ModelProfile, profile
from .errors import (
    DocumentLoadError,
    EvaluationError,
    LLMError,
    ModelNotFoundError,
    MultimodalRAGError,
    QueryError,
    StoreError,
    StoreLockedError,
    StoreMismatchError,
    StoreNotFoundError,
)
from .records import Figure, Hit, LoadedDocument, TextChunk

if TYPE_CHECKING:
    from .chat import CitedChatEngine
    from .engine import CitedQueryEngine
    from .evaluation import evaluate, load_questions
    from .index import MultimodalIndex
    from .loading.folder import load_folder
    from .loading.pdf import load_pdf
    from .matching import match
    from .retrieval import MultiModalRetriever, RetrieverConfig

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

_LAZY = {
    "CitedChatEngine": ".chat",
    "CitedQueryEngine": ".engine",
    "MultiModalRetriever": ".retrieval",
    "MultimodalIndex": ".index",
    "RetrieverConfig": ".retrieval",
    "evaluate": ".evaluation",
    "load_folder": ".loading.folder",
    "load_pdf": ".loading.pdf",
    "load_questions": ".evaluation",
    "match": ".matching",
}

__all__ = [
    "CitedChatEngine",
    "CitedQueryEngine",
    "DocumentLoadError",
    "EvaluationError",
    "Figure",
    "Hit",
    "LLMError",
    "LoadedDocument",
    "LoaderConfig",
    "ModelNotFoundError",
    "ModelProfile",
    "MultiModalRetriever",
    "MultimodalIndex",
    "MultimodalRAGError",
    "QueryError",
    "RetrieverConfig",
    "StoreError",
    "StoreLockedError",
    "StoreMismatchError",
    "StoreNotFoundError",
    "TextChunk",
    "evaluate",
    "load_folder",
    "load_pdf",
    "load_questions",
    "match",
    "profile",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'multimodal_rag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
