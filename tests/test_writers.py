"""Ids, visibility and writers: unique ids by construction, a document visible whole or not at
all, one writer at a time (the second waits or fails naming the holder), kill -9 anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multimodal_rag.config import LoaderConfig
from multimodal_rag.errors import StoreLockedError
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.store import MemoryStore
from multimodal_rag.store.base import StoreBase

from .support.embedders import HashEmbedding
from .support.pdfs import make_duplicate_image_pdf, make_manual_pdf

NO_OCR = LoaderConfig(ocr=False)
ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["front panel connectors", "signal flow", "bracket rear panel", "fuse power", "Figure 1"]


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pdfs")
    changed = folder / "changed" / "manual.pdf"
    changed.parent.mkdir()
    make_manual_pdf(changed, outline=False)
    import pymupdf

    with pymupdf.open(changed) as doc:  # another version of manual.pdf: one page fewer
        doc.delete_page(3)
        doc.save(folder / "tmp.pdf")
    shutil.move(folder / "tmp.pdf", changed)
    return {
        "manual": make_manual_pdf(folder / "manual.pdf"),
        "changed": changed,
        "other": make_manual_pdf(folder / "other.pdf", outline=False),
        "dup": make_duplicate_image_pdf(folder / "dup.pdf"),
    }


def _open(where: Path | str, **kw: Any) -> MultimodalIndex:
    target: dict[str, Any] = {"url": where} if str(where).startswith("http") else {"path": where}
    return MultimodalIndex.open(
        **target, profile_name="offline", text_embedder=HashEmbedding(), loader_config=NO_OCR, **kw
    )


def _snapshot(index: MultimodalIndex) -> tuple[Any, list[list[tuple[str, int, str | None]]]]:
    """What a user sees: info, and the hits (doc, page, figure) of a few queries."""
    hits = [[(h.doc, h.page, h.figure) for h in index.as_retriever().search(q)] for q in QUERIES]
    return index.info()["documents"], hits


# -- ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["embedded", "memory"])
def test_identical_images_stay_separate_figures(
    tmp_path: Path, pdfs: dict[str, Path], backend: str
) -> None:
    index = (
        _open(tmp_path / "s")
        if backend == "embedded"
        else MultimodalIndex.open(
            store=MemoryStore(),
            profile_name="offline",
            text_embedder=HashEmbedding(),
            loader_config=NO_OCR,
        )
    )
    report = index.ingest([pdfs["dup"]])
    assert [(d.status, d.figures) for d in report.documents] == [("added", 3)]
    labels = {h.figure for h in index.as_retriever().search("bracket") if h.kind == "figure"}
    assert labels == {"Figure 1", "Figure 2", "Figure 3"}
    assert index.store.counts()["figure"] == 3


def test_a_folder_with_two_identical_images_keeps_both(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "wiki"
    folder.mkdir()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / "a.png")
    shutil.copy(folder / "a.png", folder / "b.png")
    (folder / "pump.md").write_text(
        "# Pump\n\nThe impeller spins.\n\n![Figure 1: Inlet side](a.png)\n\n"
        "The outlet is on the other side.\n\n![Figure 2: Outlet side](b.png)\n"
    )
    index = _open(tmp_path / "s")
    assert [d.figures for d in index.ingest([folder]).documents] == [2]
    labels = {h.figure for h in index.as_retriever().search("side") if h.kind == "figure"}
    assert labels == {"Figure 1", "Figure 2"}


# -- visibility ------------------------------------------------------------------------------


def test_a_document_is_invisible_until_its_catalog_is_written(
    tmp_path: Path, pdfs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _open(tmp_path / "s")
    index.ingest([pdfs["manual"]])
    reader = _open(tmp_path / "s")
    before = _snapshot(reader)
    seen: list[Any] = []
    real = StoreBase.commit

    def commit(self: StoreBase, catalog: Any) -> None:
        # Every record of other.pdf is written by now; a reader must not see any of it.
        seen.append(_snapshot(reader))
        real(self, catalog)

    monkeypatch.setattr(StoreBase, "commit", commit)
    index.ingest([pdfs["other"]])
    assert seen == [before]
    after = _snapshot(reader)
    assert {d["doc"] for d in after[0]} == {"manual.pdf", "other.pdf"}
    assert any(doc == "other.pdf" for hits in after[1] for doc, _, _ in hits)


def _child(where: Path | str, kill_at: str, *paths: Path, hold: float = 0) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.writer_child", str(where), kill_at, str(hold)]
        + [str(p) for p in paths],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_child(where: Path | str, kill_at: str, *paths: Path) -> int:
    proc = _child(where, kill_at, *paths)
    _, err = proc.communicate(timeout=300)
    assert kill_at != "none" or proc.returncode == 0, err
    return proc.returncode


def _killed_mid_write_leaves_one_version(
    where: Path | str, reference: Path, pdfs: dict[str, Path], kill_at: str
) -> None:
    _open(where).ingest([pdfs["manual"]])
    old = _snapshot(_open(where))
    clean = _open(reference)
    clean.ingest([pdfs["changed"]])
    new = _snapshot(clean)
    if kill_at == "remove":
        code = _run_child(where, kill_at, pdfs["manual"])
    else:
        code = _run_child(where, kill_at, pdfs["changed"])
    assert code == -9
    seen = _snapshot(_open(where))
    expected_old = kill_at in ("first-upsert", "segment", "commit", "remove")
    assert seen == (old if expected_old else new), kill_at
    # The next writer finishes or undoes the dead one's work: then it is a clean ingest.
    index = _open(where)
    index.ingest([pdfs["changed"]])
    assert _snapshot(index) == new
    catalog = index.store.catalog()
    assert catalog is not None
    assert index.store.counts()["text"] == catalog.counts()["text"]  # no orphans left
    assert index.store.blob_keys("pending") == []


@pytest.mark.parametrize("kill_at", ["first-upsert", "segment", "commit", "after-commit", "remove"])
def test_kill_9_anywhere_leaves_the_old_or_the_new_version(
    tmp_path: Path, pdfs: dict[str, Path], kill_at: str
) -> None:
    _killed_mid_write_leaves_one_version(tmp_path / "s", tmp_path / "ref", pdfs, kill_at)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["first-upsert", "commit", "after-commit"])
def test_kill_9_on_a_server_store(
    tmp_path: Path, pdfs: dict[str, Path], kill_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .support.chroma_server import chroma_server

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "cache"))
    with chroma_server(tmp_path / "server") as url:
        _killed_mid_write_leaves_one_version(url, tmp_path / "ref", pdfs, kill_at)


# -- many writers ----------------------------------------------------------------------------


def _two_writers_at_once(where: Path | str, reference: Path, pdfs: dict[str, Path]) -> None:
    _open(where)  # create the store first: both children then find its catalog
    first = _child(where, "none", pdfs["manual"])
    second = _child(where, "none", pdfs["other"])
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    sequential = _open(reference)
    sequential.ingest([pdfs["manual"]])
    sequential.ingest([pdfs["other"]])
    assert _snapshot(_open(where)) == _snapshot(sequential)


def test_two_concurrent_ingests_both_end_searchable(tmp_path: Path, pdfs: dict[str, Path]) -> None:
    _two_writers_at_once(tmp_path / "s", tmp_path / "ref", pdfs)


@pytest.mark.slow
def test_two_concurrent_ingests_into_a_server(
    tmp_path: Path, pdfs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from .support.chroma_server import chroma_server

    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "cache"))
    with chroma_server(tmp_path / "server") as url:
        _two_writers_at_once(url, tmp_path / "ref", pdfs)


@pytest.fixture
def held(tmp_path: Path, pdfs: dict[str, Path]) -> Iterator[Path]:
    """A store whose writer lock another process holds for a while."""
    store = tmp_path / "s"
    from multimodal_rag.store import open_store

    open_store(store)  # an empty store folder: the CLI below may create it with its own model
    proc = _child(store, "none", hold=30)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    yield store
    proc.kill()
    proc.communicate(timeout=10)


def test_a_second_writer_gives_up_naming_the_holder(held: Path, pdfs: dict[str, Path]) -> None:
    started = time.monotonic()
    with pytest.raises(StoreLockedError, match=r"another writer holds the store \(pid \d+"):
        _open(held, lock_timeout=1.0).ingest([pdfs["manual"]])
    assert time.monotonic() - started < 20
    assert _open(held).info()["documents"] == []  # nothing of it was written
    # Readers never wait for the writer.
    assert _open(held).as_retriever().search("anything") == []


def test_cli_second_writer_exits_2_with_one_line(held: Path, pdfs: dict[str, Path]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "multimodal_rag.cli",
            "ingest",
            str(pdfs["manual"]),
            "--store",
            str(held),
            "--lock-timeout",
            "1",
            "--no-ocr",
            "--profile",
            "offline",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("mmrag: error")]
    assert len(lines) == 1 and "another writer holds the store (pid" in lines[0]
    assert "waiting up to 1 s" in done.stderr  # it said it was waiting
