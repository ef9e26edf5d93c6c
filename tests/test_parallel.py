"""Ingest with worker processes and on a two-node Ray cluster: the same store as a serial
ingest, failures reported per document, a dead worker costing nothing."""

from __future__ import annotations

import functools
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multimodal_rag.config import LoaderConfig
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.loading.pdf import load_pdf
from multimodal_rag.loading.pool import LoadPool

from .support.dying import counted, die_always, die_once, stuck
from .support.embedders import HashEmbedding
from .support.pdfs import make_duplicate_image_pdf, make_manual_pdf

NO_OCR = LoaderConfig(ocr=False)
QUERIES = ["front panel connectors", "signal flow", "bracket rear panel", "fuse"]


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pdfs")
    return [
        make_manual_pdf(folder / "a.pdf"),
        make_manual_pdf(folder / "b.pdf", outline=False),
        make_duplicate_image_pdf(folder / "c.pdf"),
    ]


def _snapshot(index: MultimodalIndex) -> tuple[Any, list[list[tuple[str, int, str | None]]]]:
    hits = [[(h.doc, h.page, h.figure) for h in index.as_retriever().search(q)] for q in QUERIES]
    return index.info()["documents"], hits


def _open(where: Path, embedder: Any = None) -> MultimodalIndex:
    return MultimodalIndex.open(
        where,
        profile_name="offline",
        text_embedder=embedder if embedder is not None else HashEmbedding(),
        loader_config=NO_OCR,
    )


def test_two_workers_build_the_store_a_serial_ingest_builds(
    tmp_path: Path, pdfs: list[Path]
) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_text("not a PDF at all")
    serial = _open(tmp_path / "serial")
    serial.ingest(pdfs)
    parallel = _open(tmp_path / "parallel")
    report = parallel.ingest([*pdfs, broken], workers=2)
    statuses = {d.doc: d.status for d in report.documents}
    assert statuses == {
        "a.pdf": "added",
        "b.pdf": "added",
        "c.pdf": "added",
        "broken.pdf": "failed",
    }
    assert _snapshot(parallel) == _snapshot(serial)
    assert {d.status for d in parallel.ingest(pdfs, workers=2).documents} == {"unchanged"}


def test_a_dead_worker_costs_nothing(tmp_path: Path, pdfs: list[Path]) -> None:
    loads = [
        functools.partial(die_once, str(tmp_path / "died"), str(pdfs[0])),
        functools.partial(load_pdf, pdfs[1], NO_OCR),
        functools.partial(load_pdf, pdfs[2], NO_OCR),
    ]
    with LoadPool(2) as pool:
        results = dict(pool.run(loads))
    assert sorted(results) == [0, 1, 2]
    assert all(not isinstance(r, str) for r in results.values())  # retried, then loaded
    assert (tmp_path / "died").exists()
    loads[0] = functools.partial(die_always, str(pdfs[0]))
    with LoadPool(2) as pool:
        results = dict(pool.run(loads))
    assert isinstance(results[0], str) and "worker process died" in results[0]
    # The documents that were in flight with it were retried, and loaded.
    assert not isinstance(results[1], str) and not isinstance(results[2], str)


def test_a_prefetched_load_is_taken_over_not_run_again(tmp_path: Path, pdfs: list[Path]) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    first = functools.partial(counted, str(runs), str(pdfs[0]))
    with LoadPool(1) as pool:
        pool.prefetch([first])
        again = functools.partial(counted, str(runs), str(pdfs[0]))
        results = dict(pool.run([again, functools.partial(load_pdf, pdfs[1], NO_OCR)]))
    assert len(list(runs.iterdir())) == 1
    assert not isinstance(results[0], str) and results[0].doc == "a.pdf"


def test_closing_abandons_a_prefetched_load_nobody_asked_for(
    tmp_path: Path, pdfs: list[Path]
) -> None:
    started = time.perf_counter()
    with LoadPool(1) as pool:
        pool.prefetch([functools.partial(stuck, 60.0)])
        (result,) = pool.run([functools.partial(load_pdf, pdfs[1], NO_OCR)])
    assert not isinstance(result[1], str) and result[1].doc == "b.pdf"
    assert time.perf_counter() - started < 30


@pytest.mark.slow
def test_the_cli_parses_the_first_pdfs_while_it_opens_the_store(
    tmp_path: Path, pdfs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `mmrag ingest` prefetches must be what the ingest then asks for, or the
    # document would be parsed twice: count the loads that reach the pool's workers.
    from multimodal_rag import cli
    from multimodal_rag.loading import pool as pool_module

    asked: list[bytes] = []
    real_run = pool_module.LoadPool.run

    def run(self: Any, loads: Any) -> Any:
        asked.extend(pickle.dumps(load) for load in loads)
        left = sum(pickle.dumps(load) in self._started for load in loads)
        assert left == len(self._started) == min(self.workers, len(loads))
        return real_run(self, loads)

    monkeypatch.setattr(pool_module.LoadPool, "run", run)
    store = tmp_path / "store"
    argv = ["ingest", *map(str, pdfs), "--store", str(store), "--no-ocr", "--workers", "2"]
    assert cli.main([*argv, "--profile", "offline", "--json"]) == 0
    assert len(asked) == 3


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real two-node Ray cluster on loopback (two `ray start` processes), stopped after."""
    from .support.chroma_server import free_port

    ray = shutil.which("ray") or str(Path(os.sys.executable).with_name("ray"))  # type: ignore[attr-defined]
    port = free_port()
    temp = tmp_path_factory.mktemp("ray")
    # Ray's default niceness (15) starves its workers on a busy machine.
    env = {**os.environ, "RAY_worker_niceness": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run(
        [
            ray,
            "start",
            "--head",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--temp-dir",
            str(temp),
            "--include-dashboard",
            "false",
            *common,
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    try:
        subprocess.run(
            [
                ray,
                "start",
                "--address",
                f"127.0.0.1:{port}",
                "--node-ip-address",
                "127.0.0.1",
                *common,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=180,
        )
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.mark.slow
def test_ingest_on_a_two_node_ray_cluster_equals_a_serial_ingest(
    tmp_path: Path, pdfs: list[Path], ray_cluster: str
) -> None:
    # A real model: Ray workers rebuild it from its recipe (tests' stand-ins are not
    # importable there).
    serial = MultimodalIndex.open(tmp_path / "serial", profile_name="offline", loader_config=NO_OCR)
    serial.ingest(pdfs)
    on_ray = _open(tmp_path / "ray", serial.text_embedder)
    report = on_ray.ingest(pdfs, ray_address=ray_cluster)
    assert [d.status for d in report.documents] == ["added"] * 3
    assert _snapshot(on_ray) == _snapshot(serial)


_KILLED_PARENT = """
import functools, json, sys, time
from multimodal_rag.loading.pool import LoadPool
from tests.support.dying import stuck
pool = LoadPool(2)
pool.prefetch([functools.partial(stuck, 120), functools.partial(stuck, 121)])
print(json.dumps(sorted(pool._executor()._processes)), flush=True)
time.sleep(300)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # exited, not yet reaped


def test_loaders_end_when_the_ingest_is_killed() -> None:
    # A SIGKILLed ingest cannot tell its loaders to stop; they must notice on their own
    # instead of waiting, each with its memory, for work that never comes.
    root = Path(__file__).resolve().parents[1]
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_PARENT], cwd=root, stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            workers = json.loads(parent.stdout.readline())
            assert len(workers) == 2 and not any(_gone(pid) for pid in workers)
            time.sleep(2)  # both are in their 2-minute loads now
        finally:
            parent.kill()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(_gone(pid) for pid in workers):
        time.sleep(0.2)
    left = [pid for pid in workers if not _gone(pid)]
    for pid in left:
        os.kill(pid, 9)
    assert not left, "loader processes outlived the killed ingest"


_LOADER_IMPORTS = """
import json, os, sys
from multimodal_rag.loading.pool import _init_worker
_init_worker(1, os.getppid())
from multimodal_rag.config import LoaderConfig
from multimodal_rag.loading.pdf import load_pdf
doc = load_pdf(sys.argv[1], LoaderConfig(ocr=False))
print(json.dumps({"pages": doc.pages, "modules": sorted(
    m for m in ("pymupdf", "pymupdf.layout", "pymupdf4llm", "onnxruntime") if m in sys.modules
)}))
"""

_USER_IMPORTS = """
import importlib.util, json, sys
from multimodal_rag.loading import import_pymupdf
import_pymupdf()
import pymupdf
print(json.dumps({"pymupdf4llm": "pymupdf4llm" in sys.modules,
                  "installed": importlib.util.find_spec("pymupdf4llm") is not None}))
"""


def test_loader_processes_import_pymupdf_without_its_optional_extras(pdfs: list[Path]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _LOADER_IMPORTS, str(pdfs[0])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["pages"] > 0
    # No layout model, no pymupdf4llm and, through it, no ONNX Runtime in a loader.
    assert seen["modules"] == ["pymupdf"]


def test_a_users_process_keeps_pymupdf4llm() -> None:
    # Only our own loader processes go without it: in the caller's process PyMuPDF's
    # to_markdown helpers keep working.
    out = subprocess.run(
        [sys.executable, "-c", _USER_IMPORTS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["pymupdf4llm"] == seen["installed"]
