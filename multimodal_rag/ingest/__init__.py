"""Ingest: documents in, one commit per document, under the store's writer lock.

- :mod:`.writer`: :class:`DocumentWriter` embeds and commits documents (the commit protocol);
- :mod:`.pipeline`: :func:`ingest_paths` turns paths and LlamaIndex documents into commits;
- :mod:`.workers`: loading and embedding in worker processes or on a Ray cluster.
"""

from __future__ import annotations

from .pipeline import ingest_paths, sources
from .writer import (
    DocStatus,
    DocumentReport,
    DocumentWriter,
    Embedded,
    IngestReport,
    embed_document,
    embed_texts,
    embedding_text,
    file_sha256,
    unique_ids,
)

__all__ = [
    "DocStatus",
    "DocumentReport",
    "DocumentWriter",
    "Embedded",
    "IngestReport",
    "embed_document",
    "embed_texts",
    "embedding_text",
    "file_sha256",
    "ingest_paths",
    "sources",
    "unique_ids",
]
