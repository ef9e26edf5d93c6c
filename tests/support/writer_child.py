"""A writer process for the concurrency tests: ingest, optionally dying by SIGKILL at one point.

Usage: python -m tests.support.writer_child STORE_OR_URL KILL_AT HOLD_S PATH...
KILL_AT is one of: none, first-upsert, segment, commit, after-commit, remove.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from multimodal_rag.config import LoaderConfig
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.store.base import StoreBase

from .embedders import HashEmbedding


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(kill_at: str) -> None:
    """Patch the store so this process dies by SIGKILL at ``kill_at``."""
    from multimodal_rag.store.chroma import ChromaStore

    real_upsert, real_put, real_commit = ChromaStore.upsert, StoreBase.put_blob, StoreBase.commit

    def upsert(self: Any, *args: Any, **kw: Any) -> None:
        real_upsert(self, *args, **kw)
        if kill_at == "first-upsert":
            _die()

    def put_blob(self: Any, key: str, data: bytes) -> None:
        real_put(self, key, data)
        if (kill_at == "segment" and key.startswith("seg/")) or (
            kill_at == "after-commit" and key == "catalog.json"
        ):
            _die()

    def commit(self: Any, catalog: Any) -> None:
        if kill_at in ("commit", "remove"):
            _die()
        real_commit(self, catalog)

    ChromaStore.upsert = upsert  # type: ignore[method-assign]
    StoreBase.put_blob = put_blob  # type: ignore[method-assign]
    StoreBase.commit = commit  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    where, kill_at, hold, *paths = argv
    if float(hold):
        from multimodal_rag.store import open_store

        store = open_store(url=where) if where.startswith("http") else open_store(where)
        with store.writer(timeout=10):
            print("holding", flush=True)
            time.sleep(float(hold))
        return 0
    target: dict[str, Any] = {"url": where} if where.startswith("http") else {"path": where}
    index = MultimodalIndex.open(
        **target,
        profile_name="offline",
        text_embedder=HashEmbedding(),
        loader_config=LoaderConfig(ocr=False),
        lock_timeout=120.0,
    )
    if kill_at != "none":
        _arm(kill_at)
    if kill_at == "remove":
        index.remove(os.path.basename(paths[0]))
    else:
        index.ingest(paths)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
