"""Documents from any LlamaIndex reader go in; our loader comes out as a LlamaIndex reader."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core import Document, Settings, SimpleDirectoryReader
from llama_index.core.schema import ImageDocument

from multimodal_rag.config import LoaderConfig
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.loading.llama import MultimodalReader, from_llama
from multimodal_rag.store import MemoryStore

from .support.embedders import HashEmbedding
from .support.pdfs import make_manual_pdf

NO_OCR = LoaderConfig(ocr=False)


def _index() -> MultimodalIndex:
    return MultimodalIndex.open(
        store=MemoryStore(),
        profile_name="offline",
        text_embedder=HashEmbedding(),
        loader_config=NO_OCR,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    from PIL import Image

    root = tmp_path / "docs"
    root.mkdir()
    (root / "pump.txt").write_text(
        "Priming the pump\n\nFill the volute casing with water before the first start.\n\n"
        "Never run the pump dry: the shaft seal overheats within seconds.\n"
    )
    Image.new("RGB", (80, 60), (10, 120, 200)).save(root / "impeller.png")
    return root


def test_documents_from_simple_directory_reader_are_ingested_and_found(folder: Path) -> None:
    docs = SimpleDirectoryReader(str(folder)).load_data()
    # Without image readers installed, the PNG comes as a Document of raw bytes; it is still
    # taken as the image it is (its file type says so).
    assert any(d.metadata["file_type"] == "image/png" for d in docs)
    index = _index()
    report = index.ingest(docs)
    assert sorted((d.doc, d.status, d.figures) for d in report.documents) == [
        ("impeller.png", "added", 1),
        ("pump.txt", "added", 0),
    ]
    hits = index.as_retriever().search("why must the pump never run dry")
    assert hits[0].doc == "pump.txt" and "shaft seal" in hits[0].text
    assert any(
        h.kind == "figure" and h.doc == "impeller.png"
        for h in index.as_retriever().search("impeller")
    )
    # Stable ids: the same files again change nothing; a removed source is gone.
    again = SimpleDirectoryReader(str(folder)).load_data()
    assert {d.status for d in index.ingest(again).documents} == {"unchanged"}
    assert index.remove("pump.txt")
    assert all(h.doc != "pump.txt" for h in index.as_retriever().search("pump dry"))


def test_pages_of_one_source_become_one_document_with_their_page_numbers() -> None:
    pages = [
        Document(
            text=f"Step {n}: tighten bolt {n}.",
            metadata={"file_name": "m.pdf", "page_label": str(n)},
        )
        for n in (1, 2, 7)
    ]
    (loaded,) = from_llama(pages, NO_OCR)
    assert loaded.doc == "m.pdf" and loaded.pages == 7
    assert [c.page for c in loaded.chunks] == [1, 2, 7]
    index = _index()
    index.ingest(pages)
    assert index.as_retriever().search("tighten bolt 7")[0].page == 7


def test_image_documents_become_figures_with_their_text(folder: Path) -> None:
    image = ImageDocument(
        image_path=str(folder / "impeller.png"),
        text="Impeller of the pump, seen from the inlet.",
        metadata={"file_name": "parts.md", "figure": "Figure 4"},
    )
    index = _index()
    index.ingest([image, Document(text="The parts list.", metadata={"file_name": "parts.md"})])
    hit = index.as_retriever().search("impeller seen from the inlet")[0]
    assert (hit.kind, hit.doc, hit.figure) == ("figure", "parts.md", "Figure 4")
    # The memory store has no figure folder: the PNG travels inside the node.
    node = index.as_retriever().retrieve("impeller seen from the inlet")[0].node
    assert base64.b64decode(node.image)[:4] == b"\x89PNG"  # type: ignore[attr-defined]


def test_a_changed_document_is_updated(folder: Path) -> None:
    index = _index()
    index.ingest([Document(text="Old text about valves.", metadata={"file_name": "v.txt"})])
    report = index.ingest([Document(text="New text about hoses.", metadata={"file_name": "v.txt"})])
    assert [d.status for d in report.documents] == ["updated"]
    assert "hoses" in index.as_retriever().search("hoses")[0].text
    assert all("valves" not in h.text for h in index.as_retriever().search("valves"))


def test_something_else_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="not int"):
        _index().ingest([42])  # type: ignore[list-item]


def test_our_loader_as_a_llamaindex_reader(tmp_path: Path) -> None:
    pdf = make_manual_pdf(tmp_path / "manual.pdf")
    docs = MultimodalReader(NO_OCR, image_dir=tmp_path / "figs").load_data(pdf)
    figures = [d for d in docs if isinstance(d, ImageDocument)]
    texts = [d for d in docs if not isinstance(d, ImageDocument)]
    assert {d.metadata["figure"] for d in figures} == {"Figure 1.1", "Figure 1.2"}
    assert all(Path(d.image_path or "").is_file() for d in figures)
    assert all(d.metadata["page"] >= 1 and d.metadata["doc"] == "manual.pdf" for d in texts)
    # As a file extractor of SimpleDirectoryReader, with the reader's own metadata added.
    via = SimpleDirectoryReader(
        str(tmp_path), required_exts=[".pdf"], file_extractor={".pdf": MultimodalReader(NO_OCR)}
    ).load_data()
    assert len(via) == len(docs) and all(d.metadata["file_name"] == "manual.pdf" for d in via)


@pytest.fixture
def settings_embedder() -> Iterator[HashEmbedding]:
    embedder = HashEmbedding()
    Settings.embed_model = embedder
    try:
        yield embedder
    finally:
        Settings._embed_model = None  # type: ignore[attr-defined]


def test_settings_embed_model_is_used_when_none_is_given(
    tmp_path: Path, settings_embedder: HashEmbedding
) -> None:
    from multimodal_rag.errors import StoreMismatchError

    # A store of the offline profile (no image model), built with this embedder.
    MultimodalIndex.open(tmp_path / "s", profile_name="offline", text_embedder=HashEmbedding())
    index = MultimodalIndex.open(tmp_path / "s", loader_config=NO_OCR)
    assert index.text_embedder is settings_embedder
    assert index.manifest.text_dim == settings_embedder.dim
    Settings._embed_model = None  # type: ignore[attr-defined]
    with pytest.raises(StoreMismatchError):  # a store built with it refuses another model
        MultimodalIndex.open(tmp_path / "s", profile_name="offline")
