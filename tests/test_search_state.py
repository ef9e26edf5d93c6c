"""Search state: per-document segments written with each document, merged and cached by readers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from multimodal_rag.config import LoaderConfig
from multimodal_rag.errors import StoreMismatchError
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.keyword import BM25Index
from multimodal_rag.search import SearchState, Segment, StateSource
from multimodal_rag.store import MemoryStore
from multimodal_rag.store.base import segment_key

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


def _all_records(index: MultimodalIndex) -> dict[str, tuple[str, dict[str, Any]]]:
    state = index.state.current()
    assert state is not None
    ids = list(state.places)
    return {rid: (text, meta) for rid, text, meta in index.store.records(ids)}


def _queries(records: dict[str, tuple[str, dict[str, Any]]]) -> list[str]:
    """Queries made of the store's own words, so BM25 has something to rank."""
    words = " ".join(text for text, _ in records.values()).split()
    return [" ".join(words[i : i + 4]) for i in range(0, min(len(words), 400), 37)]


def _assert_matches_one_built_at_once(state: SearchState, index: MultimodalIndex) -> None:
    """The merged state ranks exactly as a BM25 index built over all records in one go."""
    records = _all_records(index)
    whole = BM25Index()
    whole.add(list(records), [text for text, _ in records.values()])
    for q in _queries(records):
        assert state.bm25.search(q, 20) == whole.search(q, 20)
    by_doc: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
    for rid, record in records.items():
        by_doc.setdefault(record[1]["doc"], {})[rid] = record
    links = {}
    for doc, recs in by_doc.items():
        links.update(Segment.build(doc, state.versions[doc], recs).links)
    assert state.links == links


def test_segments_merge_into_the_state_of_the_whole_store(
    tmp_path: Path, manuals: list[Path]
) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals)
    state = index.state.current()
    assert state is not None and state.links, "the test manual cites its figures"
    assert set(state.versions) == {"first.pdf", "second.pdf"}
    _assert_matches_one_built_at_once(state, index)


def test_a_second_reader_loads_the_cached_state_and_then_only_what_changed(
    tmp_path: Path, manuals: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals[:1])
    assert index.as_retriever().search("Figure 1")
    generation = index.manifest.generation
    cached = tmp_path / "s" / "cache" / "state"
    assert [p.name for p in next(cached.iterdir()).iterdir()] == [f"gen-{generation}"]

    reads: list[list[str]] = []
    real = type(index.store).get_blobs

    def counting(self: Any, keys: list[str]) -> dict[str, bytes]:
        reads.append(list(keys))
        return real(self, keys)

    monkeypatch.setattr(type(index.store), "get_blobs", counting)
    reader = _open(tmp_path / "s")
    assert reader.state.current() is not None
    assert reads == []  # the cached merge of this generation: no segment read
    index.ingest(manuals)  # adds second.pdf
    state = reader.state.current()
    assert state is not None and set(state.versions) == {"first.pdf", "second.pdf"}
    assert len(reads) == 1 and reads[0] == [segment_key("second.pdf", state.versions["second.pdf"])]
    _assert_matches_one_built_at_once(state, reader)


def test_remove_and_reingest_keep_the_state_in_step(tmp_path: Path, manuals: list[Path]) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals)
    assert index.remove("first.pdf")
    state = index.state.current()
    assert state is not None
    assert {place[0] for place in state.places.values()} == {"second.pdf"}
    assert all(not rid.startswith("first.pdf") for rid in state.links)
    index.ingest(manuals)  # first.pdf comes back, second.pdf is unchanged
    state = index.state.current()
    assert state is not None
    assert {place[0] for place in state.places.values()} == {"first.pdf", "second.pdf"}
    _assert_matches_one_built_at_once(state, index)
    # Only the newest generation stays cached.
    root = next((tmp_path / "s" / "cache" / "state").iterdir())
    assert [p.name for p in root.iterdir()] == [f"gen-{index.manifest.generation}"]


def test_retriever_gives_identical_hits_without_any_cache(
    tmp_path: Path, manuals: list[Path]
) -> None:
    _open(tmp_path / "s").ingest(manuals)
    index = _open(tmp_path / "s")
    records = _all_records(index)
    queries = [*_queries(records), "Figure 1", "see figure 2 wiring"]
    cached = [index.as_retriever().search(q) for q in queries]
    shutil.rmtree(tmp_path / "s" / "cache")
    fresh = _open(tmp_path / "s")
    merged = [fresh.as_retriever().search(q) for q in queries]
    assert cached == merged
    assert any(h.kind == "figure" for hits in cached for h in hits)


def test_corrupt_cache_is_ignored_and_rewritten(tmp_path: Path, manuals: list[Path]) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals[:1])
    assert index.as_retriever().search("Figure 1")
    folder = next((tmp_path / "s" / "cache" / "state").iterdir()) / (
        f"gen-{index.manifest.generation}"
    )
    (folder / "records.json").write_text("{not json", encoding="utf-8")
    (folder / "bm25.npz").write_bytes(b"junk")
    assert _open(tmp_path / "s").as_retriever().search("Figure 1")


def test_a_segment_of_another_tokenizer_is_rebuilt_from_its_records(
    tmp_path: Path, manuals: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals[:1])
    catalog = index.store.catalog()
    assert catalog is not None
    version = catalog.documents["first.pdf"].version
    key = segment_key("first.pdf", version)
    data = index.store.get_blob(key)
    assert data is not None
    segment, _ = Segment.from_bytes(data, location="x")
    assert segment is not None
    with monkeypatch.context() as m:
        m.setattr("multimodal_rag.keyword.TOKENIZER_VERSION", 99)
        stale = segment.bm25.to_bytes()
    import io

    import numpy as np

    with np.load(io.BytesIO(data)) as z:
        meta = z["meta"].tobytes()
    out = io.BytesIO()
    np.savez_compressed(
        out, meta=np.frombuffer(meta, np.uint8), bm25=np.frombuffer(stale, np.uint8)
    )
    index.store.put_blob(key, out.getvalue())
    shutil.rmtree(tmp_path / "s" / "cache")
    reader = _open(tmp_path / "s")
    fetched: list[int] = []
    real = type(reader.store).records
    monkeypatch.setattr(
        type(reader.store), "records", lambda self, ids: fetched.append(len(ids)) or real(self, ids)
    )
    state = reader.state.current()
    assert fetched == [len(segment.places)]  # its texts were read back to re-tokenise them
    assert state is not None and len(state.bm25) == len(segment.places)
    assert state.bm25.search("figure", 5) == segment.bm25.search("figure", 5)


def test_a_missing_segment_leaves_that_document_out_with_an_error(
    tmp_path: Path, manuals: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals)
    catalog = index.store.catalog()
    assert catalog is not None
    index.store.delete_blob(segment_key("first.pdf", catalog.documents["first.pdf"].version))
    shutil.rmtree(tmp_path / "s" / "cache")
    state = _open(tmp_path / "s").state.current()
    assert state is not None and set(state.versions) == {"second.pdf"}
    assert "first.pdf: no search segment; ingest it again" in caplog.text


def test_records_are_read_from_the_store_only_for_hits(tmp_path: Path, manuals: list[Path]) -> None:
    index = _open(tmp_path / "s")
    index.ingest(manuals[:1])
    state = index.state.current()
    assert state is not None
    first = next(iter(state.records))
    assert state.records._cache == {}
    text, meta = state.records[first]
    assert meta["doc"] == "first.pdf" and text
    assert state.records.place(first) == ("first.pdf", meta["page"], meta["kind"])
    assert list(state.records._cache) == [first]


def test_state_source_on_an_empty_memory_store() -> None:
    assert StateSource(MemoryStore()).current() is None


# -- text precision in the manifest -----------------------------------------------------------


def test_manifest_records_precision_and_a_mismatch_is_an_error(tmp_path: Path) -> None:
    index = _open(tmp_path / "s")
    # An embedder that is not ours computes fp32.
    assert index.manifest.text_precision == "fp32"
    with pytest.raises(StoreMismatchError, match="fp32 text embeddings; requested int8"):
        MultimodalIndex.open(tmp_path / "s", text_precision="int8")


def test_manifest_without_precision_reads_as_fp32(tmp_path: Path) -> None:
    index = _open(tmp_path / "s")
    catalog = json.loads(index.store.get_blob("catalog.json") or b"{}")
    del catalog["manifest"]["text_precision"]
    index.store.put_blob("catalog.json", json.dumps(catalog).encode())
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
