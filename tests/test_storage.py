from __future__ import annotations

import os
from pathlib import Path

import pytest

from multimodal_rag.errors import StoreError, StoreMismatchError, StoreNotFoundError
from multimodal_rag.storage import ChromaStore, DocumentEntry, Manifest, open_store

from .support.chroma_server import chroma_server

MANIFEST = Manifest(profile="offline", text_model="m", text_dim=3)


def _fill(store) -> None:  # type: ignore[no-untyped-def]
    store.check_manifest(MANIFEST)
    store.upsert(
        store.text,
        ["d.pdf::1", "d.pdf::2", "e.pdf::1"],
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        ["one", "two", "three"],
        [{"doc": "d.pdf", "page": 1}, {"doc": "d.pdf", "page": 2}, {"doc": "e.pdf", "page": 1}],
    )
    store.put_pngs("d.pdf", [("abc.png", b"\x89PNG fake")])
    store.write_document(
        DocumentEntry(
            doc="d.pdf", content_hash="h", path="d.pdf", pages=2, text_chunks=2, figures=0
        )
    )


def test_new_store_records_manifest_and_reopens(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    assert store.manifest() is None
    _fill(store)
    reopened = open_store(tmp_path / "s", create=False)
    assert reopened.manifest() == MANIFEST
    assert reopened.counts() == {"text": 3, "image": 0}
    assert [d.doc for d in reopened.documents()] == ["d.pdf"]


def test_other_models_are_a_mismatch_naming_both(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    _fill(store)
    other = MANIFEST.model_copy(update={"text_model": "BAAI/bge-small-en-v1.5", "text_dim": 384})
    with pytest.raises(StoreMismatchError, match="store has 'm', requested 'BAAI/bge-small"):
        store.check_manifest(other)


def test_delete_document_removes_records_and_entry(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    _fill(store)
    store.delete_document("d.pdf")
    assert store.counts()["text"] == 1
    assert store.document("d.pdf") is None


def _server_like_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ChromaStore:
    # A store without a local folder (as on a Chroma server) keeps PNGs inside Chroma.
    import chromadb

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "cache"))
    return ChromaStore(chromadb.EphemeralClient(), location=f"mem-{tmp_path.name}", name="t")


def test_figure_file_is_materialised_from_a_server_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _server_like_store(tmp_path, monkeypatch)
    _fill(store)
    path = store.figure_file("d.pdf", "abc.png")
    assert path.read_bytes() == b"\x89PNG fake"
    assert path.is_relative_to(tmp_path / "cache")
    path.unlink()
    store.delete_document("d.pdf")
    with pytest.raises(StoreError, match="missing"):
        store.figure_file("d.pdf", "abc.png")


def test_embedded_store_keeps_pngs_as_files_only(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    _fill(store)
    assert store.figures_dir == tmp_path / "s" / "figures"
    with pytest.raises(StoreError, match="missing"):
        store.figure_file("d.pdf", "abc.png")


def test_generation_increments(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    _fill(store)
    assert store.bump_generation() == 1
    assert store.bump_generation() == 2


def test_store_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        open_store(target)


def test_missing_store_is_not_created_when_reading(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError, match="mmrag ingest"):
        open_store(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


def test_read_only_store_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        # Root ignores permission bits (CI runs as root): let access() answer as a user would.
        real_access = os.access
        monkeypatch.setattr(
            "multimodal_rag.storage.os.access",
            lambda p, mode: False if Path(p) == folder and mode & os.W_OK else real_access(p, mode),
        )
    with pytest.raises(StoreError, match="not writable"):
        open_store(folder)
    folder.chmod(0o755)


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    from .support.chroma_server import free_port

    with pytest.raises(StoreError, match="not reachable"):
        open_store(url=f"http://127.0.0.1:{free_port()}")


def test_bad_url_is_refused() -> None:
    with pytest.raises(StoreError, match="expected a URL"):
        open_store(url="localhost:8000")


@pytest.mark.slow
def test_server_store_behaves_like_embedded(tmp_path: Path) -> None:
    with chroma_server(tmp_path / "server") as url:
        remote = open_store(url=url)
        _fill(remote)
        local = open_store(tmp_path / "local")
        _fill(local)
        query = [0.9, 0.1, 0.0]
        got = [
            s.text.query(query_embeddings=[query], n_results=3, include=["distances"])
            for s in (remote, local)
        ]
        assert got[0]["ids"] == got[1]["ids"]
        assert got[0]["distances"][0] == pytest.approx(got[1]["distances"][0])
        assert open_store(url=url, create=False).describe() == {
            **local.describe(),
            "store": url,
        }
    with pytest.raises(StoreError):
        remote.counts()  # the server is gone: a StoreError, not a raw connection error
