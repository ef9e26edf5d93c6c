"""A real Chroma server (`chroma run` on loopback): parity with the embedded store, second
clients, clients without a writable cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multimodal_rag.config import OFFLINE_TEXT_MODEL, LoaderConfig
from multimodal_rag.embedding import TextEmbedder
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.ingest import DocumentWriter, Embedded, embed_document
from multimodal_rag.loading.pdf import load_pdf
from multimodal_rag.records import LoadedDocument

from .support.chroma_server import chroma_server

SHARED = Path(__file__).resolve().parents[2] / "shared"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chroma_server(tmp_path_factory.mktemp("chroma") / "data") as url:
        yield url


_PREPARED: dict[bool, list[tuple[LoadedDocument, Embedded]]] = {}


def _dev_manuals(ocr: bool, embedder: Any) -> list[tuple[LoadedDocument, Embedded]]:
    """Both dev manuals, loaded and embedded once per OCR setting: the loader and the model
    are not what is tested here, and every store below is written with the same vectors
    (as ingest workers hand them to the writer)."""
    if ocr not in _PREPARED:
        config = LoaderConfig(ocr=ocr)
        loaded = [load_pdf(p, config) for p in sorted((SHARED / "corpora").glob("*.pdf"))]
        _PREPARED[ocr] = [(d, embed_document(d, embedder)) for d in loaded]
    return _PREPARED[ocr]


def _write(index: MultimodalIndex, docs: list[tuple[LoadedDocument, Embedded]]) -> None:
    with index.store.writer():
        writer = DocumentWriter(index.store, index.text_embedder, index.image_embedder)
        for doc, vectors in docs:
            writer.write(doc, vectors)


@pytest.mark.parametrize("ocr", [False, True], ids=["ocr-off", "ocr-on"])
def test_server_store_equals_the_embedded_store_on_the_dev_manuals(
    tmp_path: Path, server: str, ocr: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from multimodal_rag.evaluation import evaluate, load_questions

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "cache"))
    # fp32 (ONNX Runtime), not the default bf16: with bf16 vectors one dev question sits on
    # a near-tie that two HNSW graphs built from the same vectors (embedded, server) may
    # order either way (CI saw MRR 0.772 vs 0.782 once). This test is about the stores.
    fp32 = TextEmbedder(OFFLINE_TEXT_MODEL, backend="onnx")
    local = MultimodalIndex.open(tmp_path / "local", profile_name="offline", text_embedder=fp32)
    # One server, a store name per case: the collections of one case never meet the other's.
    from multimodal_rag.store import open_store

    remote_store = open_store(url=server, name=f"dev_{'ocr' if ocr else 'plain'}")
    remote = MultimodalIndex.open(
        store=remote_store, profile_name="offline", text_embedder=local.text_embedder
    )
    docs = _dev_manuals(ocr, local.text_embedder)
    _write(local, docs)
    _write(remote, docs)
    described = remote.info()
    assert {**described, "store": None} == {**local.info(), "store": None}
    assert described["text_chunks"] > 150 and described["figures"] > 50
    questions = load_questions(SHARED / "eval" / "dev-qa.jsonl")
    got = [evaluate(questions, i.as_retriever()).metrics for i in (local, remote)]
    assert got[0].keys() == got[1].keys()
    for kind in got[0]:
        assert got[0][kind] == pytest.approx(got[1][kind], abs=1e-9), kind


@pytest.fixture(scope="module")
def filled(server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A server store holding both dev manuals (OCR off), written by one client."""
    from multimodal_rag.store import open_store

    cache = tmp_path_factory.mktemp("writer-cache")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("MMRAG_CACHE_DIR", str(cache))
        index = MultimodalIndex.open(store=open_store(url=server), profile_name="offline")
        _write(index, _dev_manuals(False, index.text_embedder))
    # As on another machine: the writer's local copies of the figure PNGs are not there.
    shutil.rmtree(cache)
    return server


QUERIES = ["How do I add a new ground station?", "map view of satellites", "eye anatomy diagram"]


def _client(url: str) -> MultimodalIndex:
    from multimodal_rag.store import open_store

    return MultimodalIndex.open(store=open_store(url=url, create=False))


def test_a_second_client_downloads_the_state_and_finds_the_same(
    filled: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "one"))
    first = [_client(filled).as_retriever().search(q) for q in QUERIES]
    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "two"))
    second_index = _client(filled)
    second = [second_index.as_retriever().search(q) for q in QUERIES]
    strip = [[(h.doc, h.page, h.figure, h.text, h.score) for h in hits] for hits in first]
    assert strip == [[(h.doc, h.page, h.figure, h.text, h.score) for h in hits] for hits in second]
    # It cached the merged state by generation, and figure PNGs as files, under its own cache.
    assert list((tmp_path / "two").rglob("gen-*"))
    figures = [h for hits in second for h in hits if h.kind == "figure"]
    assert figures and all(Path(h.image or "").is_relative_to(tmp_path / "two") for h in figures)


def test_a_client_without_a_writable_cache_still_answers(
    filled: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MMRAG_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    index = _client(filled)
    assert index.store.cache_dir is None
    nodes = index.as_retriever().retrieve("map view of satellites")
    figures = [n.node for n in nodes if n.node.metadata.get("kind") == "figure"]
    assert figures and all(getattr(f, "image", None) for f in figures)  # PNG bytes in the node
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "multimodal_rag.cli",
            "query",
            "map view of satellites",
            "--chroma-url",
            filled,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MMRAG_CACHE_DIR": str(blocker / "cache")},
    )
    assert done.returncode == 0, done.stderr
    hits = json.loads(done.stdout)["hits"]
    assert any(h["kind"] == "figure" for h in hits)
