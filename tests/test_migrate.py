"""A store written by schema 1 (manifest record, unversioned ids, no catalog) opens as schema 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from multimodal_rag.config import LoaderConfig, profile
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.loading.images import save_png
from multimodal_rag.loading.pdf import load_pdf
from multimodal_rag.nodes import chunk_metadata, figure_metadata

from .support.embedders import HashEmbedding
from .support.pdfs import make_manual_pdf

NO_OCR = LoaderConfig(ocr=False)


def _write_schema_1(folder: Path, manual: Path) -> None:
    """What the library wrote before schema 2, record by record."""
    import chromadb
    from chromadb.config import Settings

    loaded = load_pdf(manual, NO_OCR)
    chunks = [c for c in loaded.chunks if c.role == "content"]
    embed = HashEmbedding()
    client = chromadb.PersistentClient(str(folder), settings=Settings(anonymized_telemetry=False))
    space = {"hnsw": {"space": "cosine"}}
    text = client.get_or_create_collection("mmrag_text", configuration=space)  # type: ignore[arg-type]
    client.get_or_create_collection("mmrag_image", configuration=space)  # type: ignore[arg-type]
    meta = client.get_or_create_collection("mmrag_meta")
    paths = [str(save_png(f.image_png, folder / "figures")) for f in loaded.figures]
    records = [(c.chunk_id, c.text, chunk_metadata(c)) for c in chunks] + [
        (f.figure_id, f.text, figure_metadata(f, p))
        for f, p in zip(loaded.figures, paths, strict=True)
    ]
    text.add(
        ids=[r[0] for r in records],
        documents=[r[1] for r in records],
        metadatas=[r[2] for r in records],
        embeddings=np.asarray([embed.get_text_embedding(r[1]) for r in records], np.float32),
    )
    manifest = {
        "schema_version": 1,
        "profile": "offline",
        "text_model": profile("offline").text_model,
        "text_dim": 64,
        "image_model": None,
        "image_dim": None,
        "generation": 3,
    }
    entry = {
        "doc": loaded.doc,
        "content_hash": loaded.content_hash,
        "path": str(manual),
        "pages": loaded.pages,
        "text_chunks": len(chunks),
        "figures": len(loaded.figures),
    }
    meta.add(
        ids=["__store__", f"doc::{loaded.doc}"],
        documents=[json.dumps(manifest), json.dumps(entry)],
        metadatas=[{"type": "store"}, {"type": "doc", "doc": loaded.doc}],
        embeddings=np.asarray([[1.0], [1.0]], np.float32),
    )
    (folder / "search" / "gen-3").mkdir(parents=True)


def test_schema_1_store_is_migrated_on_open_and_answers_as_before(tmp_path: Path) -> None:
    manual = make_manual_pdf(tmp_path / "manual.pdf")
    _write_schema_1(tmp_path / "old", manual)
    migrated = MultimodalIndex.open(
        tmp_path / "old", text_embedder=HashEmbedding(), loader_config=NO_OCR
    )
    fresh = MultimodalIndex.open(
        tmp_path / "new",
        profile_name="offline",
        text_embedder=HashEmbedding(),
        loader_config=NO_OCR,
    )
    fresh.ingest([manual])
    assert migrated.manifest.schema_version == 2
    assert migrated.info()["documents"] == fresh.info()["documents"]
    for query in ("front panel connectors", "signal flow", "fuse", "Figure 1.2"):
        got = [(h.doc, h.page, h.figure, h.text) for h in migrated.as_retriever().search(query)]
        want = [(h.doc, h.page, h.figure, h.text) for h in fresh.as_retriever().search(query)]
        assert got == want, query
    assert migrated.store.counts() == fresh.store.counts()
    assert not (tmp_path / "old" / "search").exists()
    # Unchanged by content hash: nothing is re-embedded after the migration.
    assert [d.status for d in migrated.ingest([manual]).documents] == ["unchanged"]


def test_a_read_only_open_of_a_schema_1_store_says_it_must_be_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from multimodal_rag.errors import StoreError
    from multimodal_rag.store import open_store

    manual = make_manual_pdf(tmp_path / "manual.pdf")
    _write_schema_1(tmp_path / "old", manual)

    def refuse(*_: object) -> None:
        raise StoreError("read-only", location="x")

    monkeypatch.setattr("multimodal_rag.store.migrate._migrate", refuse)
    with pytest.raises(StoreError, match="schema 1 and must be migrated once"):
        open_store(tmp_path / "old", create=False)
