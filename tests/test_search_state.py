from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from multimodal_rag.config import LoaderConfig
from multimodal_rag.errors import StoreMismatchError, StoreNotFoundError
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.search_state import SearchState

from .support.embedders import HashEmbedding
from .support.pdfs import make_manual_pdf

NO_OCR = LoaderConfig(ocr=False)


@pytest.fixture(scope="module")
def manuals(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pdfs")
    first = make_manual_pdf(folder / "first.pdf")
    second = make_manual_pdf(folder / "second.pdf", outline=False)
    return [first, second]


def _open(store: Path) -> MultimodalIndex:
    return MultimodalIndex.open(
        store, profile_name="offline", text_embedder=HashEmbedding(), loader_config=NO_OCR
    )


def _queries(index: MultimodalIndex) -> list[str]:
    """Queries made of the store's own words, so BM25 has something to rank."""
    _, texts, _ = index.store.all_text_records()
    words = " ".join(texts).split()
    return [" ".join(words[i : i + 4]) for i in range(0, min(len(words), 400), 37)]


def _assert_equal(persisted: SearchState, rebuilt: SearchState, queries: list[str]) -> None:
    assert list(persisted.records) == list(rebuilt.records)
    assert [persisted.records.place(r) for r in persisted.records] == [
        rebuilt.records.place(r) for r in rebuilt.records
    ]
    assert persisted.links == rebuilt.links
    assert persisted.places == rebuilt.places
    for q in queries:
        assert persisted.bm25.search(q, 20) == rebuilt.bm25.search(q, 20)


def test_ingest_persists_state_equal_to_one_rebuilt_from_chroma(
    tmp_path: Path, manuals: list[Path]
) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals)
    generation = index.manifest.generation
    assert (tmp_path / "s" / "search" / f"gen-{generation}").is_dir()
    persisted = SearchState.load(index.store, generation)
    assert len(persisted.records) == index.store.counts()["text"]
    assert persisted.links, "the test manual cites its figures"
    _assert_equal(persisted, SearchState.rebuild(index.store), _queries(index))


def test_retriever_gives_identical_hits_from_persisted_and_rebuilt_state(
    tmp_path: Path, manuals: list[Path]
) -> None:
    _open(tmp_path / "s").ingest(manuals)
    index = _open(tmp_path / "s")
    queries = [*_queries(index), "Figure 1", "see figure 2 wiring"]
    persisted = [index.as_retriever().search(q) for q in queries]
    shutil.rmtree(tmp_path / "s" / "search")
    rebuilt = [index.as_retriever().search(q) for q in queries]
    assert persisted == rebuilt
    assert any(h.kind == "figure" for hits in persisted for h in hits)
    # The query that found no state rebuilt it and saved it for the next process.
    assert (tmp_path / "s" / "search" / f"gen-{index.manifest.generation}").is_dir()


def test_remove_and_reingest_keep_persisted_state_in_step(
    tmp_path: Path, manuals: list[Path]
) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals)
    assert index.remove("first.pdf")
    state = SearchState.load(index.store, index.manifest.generation)
    assert {state.records.place(r)[0] for r in state.records} == {"second.pdf"}  # type: ignore[index]
    assert all(not rid.startswith("first.pdf") for rid in state.links)
    _assert_equal(state, SearchState.rebuild(index.store), _queries(index))
    index.ingest(manuals)  # first.pdf comes back, second.pdf is unchanged
    state = SearchState.load(index.store, index.manifest.generation)
    assert {state.records.place(r)[0] for r in state.records} == {"first.pdf", "second.pdf"}  # type: ignore[index]
    _assert_equal(state, SearchState.rebuild(index.store), _queries(index))
    # Only the newest generation is kept.
    assert [p.name for p in (tmp_path / "s" / "search").iterdir()] == [
        f"gen-{index.manifest.generation}"
    ]


def test_a_change_deletes_the_state_before_touching_chroma(
    tmp_path: Path, manuals: list[Path]
) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals[:1])
    generation = index.manifest.generation
    # What a crash right after the first write would leave: state gone, generation unchanged.
    state = index._search_state()
    assert state is not None and len(state.records) > 0
    with pytest.raises(StoreNotFoundError):
        SearchState.load(index.store, generation)
    # A reader then rebuilds from Chroma instead of trusting stale files.
    assert len(SearchState.open(index.store, generation).records) == len(state.records)


def test_records_are_read_from_chroma_only_for_hits(tmp_path: Path, manuals: list[Path]) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals[:1])
    state = SearchState.load(index.store, index.manifest.generation)
    first = next(iter(state.records))
    assert state.records._cache == {}
    text, meta = state.records[first]
    assert meta["doc"] == "first.pdf" and text
    assert state.records.place(first) == ("first.pdf", meta["page"], meta["kind"])
    assert list(state.records._cache) == [first]


def test_corrupt_state_is_rebuilt(tmp_path: Path, manuals: list[Path]) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals[:1])
    folder = tmp_path / "s" / "search" / f"gen-{index.manifest.generation}"
    (folder / "records.json").write_text("{not json", encoding="utf-8")
    hits = index.as_retriever().search("Figure 1")
    assert hits
    json.loads((folder / "records.json").read_text(encoding="utf-8"))  # rewritten


# -- text precision in the manifest -----------------------------------------------------------


def test_manifest_records_precision_and_a_mismatch_is_an_error(tmp_path: Path) -> None:
    index = _open(tmp_path / "s")
    # An embedder that is not ours computes fp32.
    assert index.manifest.text_precision == "fp32"
    with pytest.raises(StoreMismatchError, match="fp32 text embeddings; requested int8"):
        MultimodalIndex.open(tmp_path / "s", text_precision="int8")


def test_manifest_from_before_precision_reads_as_fp32(tmp_path: Path) -> None:
    index = _open(tmp_path / "s")
    raw = json.loads(index.manifest.model_dump_json())
    del raw["text_precision"]
    index.store._put("__store__", json.dumps(raw), {"type": "store"})
    reopened = _open(tmp_path / "s")
    assert reopened.manifest.text_precision == "fp32"


@pytest.mark.slow
def test_new_store_defaults_to_fp32_and_reopens_at_its_own_precision(
    tmp_path: Path, manuals: list[Path]
) -> None:
    index = MultimodalIndex.open(tmp_path / "s", profile_name="offline", loader_config=NO_OCR)
    assert index.manifest.text_precision == "fp32"
    assert index.text_embedder.precision == "fp32"  # type: ignore[attr-defined]
    quick = MultimodalIndex.open(
        tmp_path / "q", profile_name="offline", text_precision="int8", loader_config=NO_OCR
    )
    quick.ingest(manuals[:1])
    reopened = MultimodalIndex.open(tmp_path / "q", create=False)
    assert reopened.text_embedder.precision == "int8"  # type: ignore[attr-defined]
    assert reopened.manifest.text_precision == "int8"
    assert reopened.as_retriever().search("Figure 1")
    with pytest.raises(StoreMismatchError):
        MultimodalIndex.open(tmp_path / "q", text_precision="fp32")
