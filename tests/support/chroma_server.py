"""Start and stop a real Chroma server (`chroma run`) on a loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RUNNING: dict[str, subprocess.Popen[bytes]] = {}
"""Servers started by :func:`chroma_server`, by URL (to stop one early in a test)."""


def stop_server(url: str) -> None:
    """Stop a server started by :func:`chroma_server` now, as if it crashed."""
    proc = RUNNING[url]
    proc.kill()
    proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chroma_command() -> list[str]:
    exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    return [exe]


@contextmanager
def chroma_server(data_dir: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run `chroma run` on 127.0.0.1 and yield its URL; the server is stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (data_dir.parent / f"chroma-{port}.log").open("wb")
    proc = subprocess.Popen(
        [
            *_chroma_command(),
            "run",
            "--path",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError("chroma server did not start in time") from None
                time.sleep(0.2)
        RUNNING[url] = proc
        yield url
    finally:
        RUNNING.pop(url, None)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
