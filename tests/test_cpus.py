"""Loader processes, OCR threads and inference threads follow the CPUs the process may use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from multimodal_rag.cpus import cgroup_quota, usable_cpus

_PINNED = """
import json, os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from multimodal_rag.config import OFFLINE_TEXT_MODEL
from multimodal_rag.cpus import usable_cpus
from multimodal_rag.embedding.text import TextEmbedder
from multimodal_rag.loading import figures
from multimodal_rag.loading.pool import default_workers
embedder = TextEmbedder(OFFLINE_TEXT_MODEL, backend="onnx", cache_dir=sys.argv[1])
options = embedder._encoder._session.get_session_options()
print(json.dumps({
    "usable": usable_cpus(),
    "workers": default_workers(),
    "ocr_threads": figures._OCR_WORKERS,
    "inference_threads": options.intra_op_num_threads,
}))
"""


_LINUX = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux affinity")


@_LINUX
def test_a_process_pinned_to_one_cpu_sizes_everything_for_one(tmp_path: Path) -> None:
    # A container's cpuset or `taskset` looks like this to the process: the host still
    # reports all its CPUs through os.cpu_count().
    proc = subprocess.run(
        [sys.executable, "-c", _PINNED, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    sizes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sizes == {"usable": 1, "workers": 1, "ocr_threads": 1, "inference_threads": 1}


@_LINUX
def test_unpinned_the_usable_cpus_are_the_affinity_mask() -> None:
    assert usable_cpus() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("200000 100000\n", 2),  # docker --cpus 2
        ("150000 100000\n", 2),  # a share of a CPU still needs a whole one
        ("50000 100000\n", 1),
        ("max 100000\n", None),  # no quota
        ("", None),
        ("garbage\n", None),
        ("0 100000\n", None),
    ],
)
def test_cgroup_quota_reads_cpu_max(tmp_path: Path, text: str, cpus: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(text)
    assert cgroup_quota(path) == cpus


def test_a_missing_cgroup_file_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_quota(tmp_path / "absent") is None


def test_a_cgroup_quota_caps_the_affinity_mask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from multimodal_rag import cpus

    path = tmp_path / "cpu.max"
    path.write_text("100000 100000\n")
    monkeypatch.setattr(cpus, "_CGROUP_CPU_MAX", path)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert usable_cpus() == 1
    path.write_text("max 100000\n")
    assert usable_cpus() == 4
