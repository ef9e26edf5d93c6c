"""The Store contract, run against every backend: Chroma embedded, Chroma without a folder
(the server code path, on an in-process client), LlamaIndex vector stores (Chroma, Qdrant
local mode) and memory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, NodeRelationship, RelatedNodeInfo, TextNode

from multimodal_rag.errors import (
    StoreError,
    StoreLockedError,
    StoreMismatchError,
    StoreNotFoundError,
)
from multimodal_rag.store import (
    ChromaStore,
    Manifest,
    MemoryStore,
    Store,
    StoreBase,
    VectorStoreStore,
    open_store,
)
from multimodal_rag.store.base import png_group, ref_doc_id

MANIFEST = Manifest(profile="offline", text_model="m", text_dim=3)
BACKENDS = ["chroma-embedded", "chroma-remote", "vs-chroma", "vs-qdrant", "memory"]


def _ephemeral_collection(name: str) -> object:
    import chromadb

    client = chromadb.EphemeralClient()
    return client.get_or_create_collection(
        f"{name}-{uuid.uuid4().hex[:8]}", configuration={"hnsw": {"space": "cosine"}}
    )


def make_store(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StoreBase:
    """A fresh store of one backend kind."""
    import chromadb

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "cache"))
    if kind == "chroma-embedded":
        return open_store(tmp_path / "s")
    if kind == "chroma-remote":
        # No folder: blobs live in the meta collection and the lock is a lease, as on a server.
        # Ephemeral clients share one in-process database: a fresh name is a fresh store.
        name = f"t{uuid.uuid4().hex[:8]}"
        return ChromaStore(chromadb.EphemeralClient(), location=f"mem-{name}", name=name)
    if kind == "vs-chroma":
        from llama_index.vector_stores.chroma import ChromaVectorStore

        return VectorStoreStore(
            ChromaVectorStore(chroma_collection=_ephemeral_collection("text")),
            tmp_path / "folder",
            ChromaVectorStore(chroma_collection=_ephemeral_collection("image")),
        )
    if kind == "vs-qdrant":
        from llama_index.vector_stores.qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient

        client = QdrantClient(path=str(tmp_path / "qdrant"))
        return VectorStoreStore(
            QdrantVectorStore(client=client, collection_name="text"),
            tmp_path / "folder",
            QdrantVectorStore(client=client, collection_name="image"),
        )
    return MemoryStore()


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StoreBase]:
    made = make_store(request.param, tmp_path, monkeypatch)
    yield made
    close_store(made)


def close_store(store: StoreBase) -> None:
    """Close a Qdrant local client (it holds a lock file until closed)."""
    client = getattr(getattr(store, "text_store", None), "client", None)
    if client is not None and hasattr(client, "close"):
        client.close()


def _node(rid: str, doc: str, version: str, text: str, *, figure: bool = False) -> TextNode:
    meta = {"doc": doc, "page": 1, "kind": "figure" if figure else "text", "figure": ""}
    node: TextNode = (
        ImageNode(id_=rid, text=text, metadata=meta) if figure else TextNode(id_=rid, text=text)
    )
    node.metadata = meta
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=ref_doc_id(doc, version))
    return node


def _fill(store: StoreBase) -> None:
    store.check_manifest(MANIFEST)
    nodes = [
        _node("d::1@v1", "d.pdf", "v1", "one"),
        _node("d::2@v1", "d.pdf", "v1", "two"),
        _node("d::f@v1", "d.pdf", "v1", "Figure 1 pump", figure=True),
        _node("e::1@v7", "e.pdf", "v7", "three"),
    ]
    vectors = np.asarray([[1, 0, 0], [0, 1, 0], [0.7, 0.7, 0], [0, 0, 1]], np.float32)
    store.upsert("text", nodes, vectors)
    store.upsert("figure", [nodes[2]], vectors[2:3])
    store.upsert("image", [nodes[2]], vectors[2:3])


def test_every_backend_is_a_store(store: StoreBase) -> None:
    assert isinstance(store, Store)


def test_query_returns_cosine_similarity_best_first(store: StoreBase) -> None:
    _fill(store)
    got = store.query("text", [0.9, 0.1, 0.0], 3)
    assert [rid for rid, _ in got] == ["d::1@v1", "d::f@v1", "d::2@v1"]
    assert got[0][1] == pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-4)
    assert [rid for rid, _ in store.query("figure", [0.0, 0.0, 1.0], 5)] == ["d::f@v1"]
    assert [rid for rid, _ in store.query("image", [1.0, 0.0, 0.0], 5)] == ["d::f@v1"]


def test_records_come_back_with_our_metadata_only(store: StoreBase) -> None:
    _fill(store)
    got = {rid: (text, meta) for rid, text, meta in store.records(["d::f@v1", "e::1@v7", "x"])}
    assert set(got) == {"d::f@v1", "e::1@v7"}
    text, meta = got["d::f@v1"]
    assert text == "Figure 1 pump"
    assert meta["kind"] == "figure" and meta["doc"] == "d.pdf" and meta["page"] == 1
    assert not {"_node_content", "ref_doc_id", "ver", "rid"} & set(meta)


def test_delete_version_removes_one_version_in_every_space(store: StoreBase) -> None:
    _fill(store)
    store.delete_version("d.pdf", "v1")
    assert [rid for rid, _ in store.query("text", [1.0, 1.0, 1.0], 10)] == ["e::1@v7"]
    assert store.query("figure", [1.0, 1.0, 0.0], 10) == []
    assert store.query("image", [1.0, 1.0, 0.0], 10) == []


def test_blobs_round_trip_by_key_and_group(store: StoreBase) -> None:
    big = os.urandom(5 << 20)  # more than one piece in a Chroma blob table
    store.put_blob("seg/a@1", b"x")
    store.put_blob(f"{png_group('d/x.pdf', 'v1')}/p.png", big)
    store.put_blob(f"{png_group('d/x.pdf', 'v1')}/q.png", b"q")
    assert store.get_blob("seg/a@1") == b"x"
    assert store.get_blobs(["seg/a@1", "seg/none"]) == {"seg/a@1": b"x"}
    assert store.get_blob(f"{png_group('d/x.pdf', 'v1')}/p.png") == big
    assert len(store.blob_keys(png_group("d/x.pdf", "v1"))) == 2
    store.delete_group(png_group("d/x.pdf", "v1"))
    assert store.blob_keys(png_group("d/x.pdf", "v1")) == []
    store.delete_blob("seg/a@1")
    assert store.get_blob("seg/a@1") is None


def test_catalog_is_created_once_and_checked(store: StoreBase) -> None:
    assert store.catalog() is None
    created = store.check_manifest(MANIFEST)
    assert store.catalog() == created
    other = MANIFEST.model_copy(update={"text_model": "BAAI/bge-small-en-v1.5", "text_dim": 384})
    with pytest.raises(StoreMismatchError, match="store has 'm', requested 'BAAI/bge-small"):
        store.check_manifest(other)


def test_a_second_writer_waits_then_fails_naming_the_holder(store: StoreBase) -> None:
    with store.writer(timeout=1):
        with pytest.raises(StoreLockedError, match="another writer") as err:
            with store.writer(timeout=0.5):
                pass
    assert err.value.holder
    with store.writer(timeout=1):  # released: free again
        pass


def test_figure_file_is_materialised_from_the_store_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store("chroma-remote", tmp_path, monkeypatch)
    store.put_blob(store.png_key("d.pdf", "v1", "abc.png"), b"\x89PNG fake")
    path = store.figure_file("d.pdf", "v1", "abc.png")
    assert isinstance(path, Path) and path.read_bytes() == b"\x89PNG fake"
    assert path.is_relative_to(tmp_path / "cache")
    path.unlink()
    store.delete_group(png_group("d.pdf", "v1"))
    with pytest.raises(StoreError, match="missing"):
        store.figure_file("d.pdf", "v1", "abc.png")


def test_without_a_writable_cache_figures_come_as_bytes() -> None:
    store = MemoryStore()
    store.put_blob(store.png_key("d.pdf", "v1", "abc.png"), b"png")
    assert store.figure_file("d.pdf", "v1", "abc.png") == b"png"


def test_store_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        open_store(target)


def test_missing_store_is_not_created_when_reading(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError, match="mmrag ingest"):
        open_store(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


def test_read_only_store_is_refused_for_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        # Root ignores permission bits (CI runs as root): let access() answer as a user would.
        real_access = os.access
        monkeypatch.setattr(
            "multimodal_rag.store.chroma.os.access",
            lambda p, mode: False if Path(p) == folder and mode & os.W_OK else real_access(p, mode),
        )
    with pytest.raises(StoreError, match="not writable"):
        open_store(folder)
    folder.chmod(0o755)


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    from .support.chroma_server import free_port

    with pytest.raises(StoreError, match="not reachable"):
        open_store(url=f"http://127.0.0.1:{free_port()}")


@pytest.mark.parametrize("url", ["localhost:8000", "http://[::1", "ftp://x"])
def test_bad_url_is_refused(url: str) -> None:
    with pytest.raises(StoreError, match="URL"):
        open_store(url=url)


def test_stores_of_two_names_share_a_folder_without_mixing(tmp_path: Path) -> None:
    first = open_store(tmp_path / "s")
    second = open_store(tmp_path / "s", name="other")
    first.check_manifest(MANIFEST)
    assert second.catalog() is None
    second.check_manifest(MANIFEST.model_copy(update={"text_dim": 5}))
    assert first.catalog() is not None and first.catalog().manifest.text_dim == 3  # type: ignore[union-attr]
    assert second.catalog() is not None and second.catalog().manifest.text_dim == 5  # type: ignore[union-attr]
