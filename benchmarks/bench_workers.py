"""Parallel ingest: ``mmrag ingest --workers N`` and ``--ray`` against ``--workers 1``.

Copies the dev manuals ``--copies`` times under new names (``--copies 5``: 10
documents), then times a whole ``mmrag ingest`` of them into a fresh store per
configuration, each in its own process, while sampling the machine's CPU use
from ``/proc/stat`` (busy share of all cores, every 0.5 s). Configurations:
``workers-1``, ``workers-2`` and, with ``--ray``, ``ray`` on a two-node
loopback cluster (two ``ray start`` processes of one CPU each, as the tests
start it). Each run is checked against the first: same ``info`` counts.

Usage:
    python benchmarks/bench_workers.py [--copies 5] [--ocr] [--ray] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class CpuSampler:
    """Busy share of all cores over a run, sampled every ``every`` seconds."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        busy0, total0 = _cpu_times()
        while not self._stop.wait(self.every):
            busy1, total1 = _cpu_times()
            if total1 > total0:
                self.samples.append((busy1 - busy0) / (total1 - total0))
            busy0, total0 = busy1, total1

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _corpus(folder: Path, copies: int) -> list[Path]:
    out = []
    for pdf in sorted((SHARED / "corpora").glob("*.pdf")):
        for i in range(copies):
            target = folder / f"{pdf.stem}-copy{i + 1}.pdf"
            shutil.copy(pdf, target)
            out.append(target)
    return out


def _ingest(paths: list[Path], store: Path, extra: list[str]) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "multimodal_rag.cli", "ingest", *map(str, paths),
        "--store", str(store), "--profile", "offline", "--json", *extra,
    ]  # fmt: skip
    with CpuSampler() as cpu:
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ingest failed ({extra}): {done.stderr[-2000:]}")
    payload = json.loads(done.stdout)
    samples = cpu.samples
    return {
        "seconds": round(seconds, 2),
        "cpu_busy_mean": round(sum(samples) / len(samples), 3) if samples else None,
        "cpu_busy_share_over_85": round(sum(s >= 0.85 for s in samples) / len(samples), 3)
        if samples
        else None,
        "text_chunks": payload["text_chunks"],
        "figures": payload["figures"],
        "documents": len(payload["documents"]),
    }


def _ray_cluster(temp: Path) -> tuple[str, list[str]]:
    sys.path.insert(0, str(HERE.parent))
    from tests.support.chroma_server import free_port

    ray = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    port = free_port()
    env = {**os.environ, "RAY_worker_niceness": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus", "1", "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    subprocess.run(
        [ray, "start", "--head", "--port", str(port), "--temp-dir", str(temp),
         "--include-dashboard", "false", *common],
        env=env, check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    subprocess.run(
        [ray, "start", "--address", f"127.0.0.1:{port}", *common],
        env=env, check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    return f"127.0.0.1:{port}", [ray, "stop", "--force"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--ocr", action="store_true", help="OCR on (default: off)")
    parser.add_argument("--ray", action="store_true", help="also on a two-node Ray cluster")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmrag-workers-"))
    (work / "pdfs").mkdir()
    paths = _corpus(work / "pdfs", args.copies)
    ocr = [] if args.ocr else ["--no-ocr"]
    runs: dict[str, Any] = {}
    for name, extra in (("workers-1", ["--workers", "1"]), ("workers-2", ["--workers", "2"])):
        runs[name] = _ingest(paths, work / name, [*ocr, *extra])
        print(name, runs[name], file=sys.stderr)
    if args.ray:
        address, stop = _ray_cluster(work / "ray-tmp")
        try:
            runs["ray"] = _ingest(paths, work / "ray", [*ocr, "--ray", address])
            print("ray", runs["ray"], file=sys.stderr)
        finally:
            subprocess.run(stop, capture_output=True, timeout=120)
    base = runs["workers-1"]
    for run in runs.values():
        run["wall_vs_workers_1"] = round(run["seconds"] / base["seconds"], 3)
        assert (run["text_chunks"], run["figures"]) == (base["text_chunks"], base["figures"])
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": "shared machine; one run per configuration, in the same session",
        },
        "documents": len(paths),
        "ocr": args.ocr,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "workers.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
