"""Blob tables: keys to bytes, in a local folder or in a Chroma collection.

Keys are ``/``-separated; every part but the structural ones is quoted by
:func:`key_part`, so a document named ``../x`` or ``a/b.md`` cannot reach
outside the table or collide with another. A *group* is a key's parent
(``png/<doc@version>``); groups are what gets deleted together.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StoreError
from .base import chunks

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

# Chroma stores documents as text and indexes them; pieces of 2 MiB keep each request small.
_PIECE = 2 << 20
_GET_BATCH = 100
_DUMMY_VECTOR = [1.0]  # Chroma insists on a vector for every record


def group_of(key: str) -> str:
    """The group a key belongs to (its parent), ``""`` for a top-level key."""
    return key.rpartition("/")[0]


class FolderBlobs:
    """Blobs as files under ``root``; each write is a rename, so readers see whole files.

    Example:
        >>> import tempfile
        >>> blobs = FolderBlobs(Path(tempfile.mkdtemp()), location="ex")
        >>> blobs.put("seg/a@1", b"x"); blobs.get("seg/a@1"), blobs.keys("seg")
        (b'x', ['seg/a@1'])
    """

    def __init__(self, root: Path, *, location: str) -> None:
        self.root = root
        self.location = location

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise StoreError(f"bad blob key {key!r}", location=self.location)
        return self.root.joinpath(*parts)

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        return {k: v for k in keys if (v := self.get(k)) is not None}

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"cannot read {key}: {e.strerror}", location=self.location) from e

    def put(self, key: str, data: bytes) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise StoreError(
                f"cannot write {key}: {e.strerror or e}", location=self.location
            ) from e

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as e:
            raise StoreError(f"cannot delete {key}: {e.strerror}", location=self.location) from e

    def delete_group(self, group: str) -> None:
        path = self._path(group)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)

    def keys(self, group: str) -> list[str]:
        path = self._path(group)
        if not path.is_dir():
            return []
        return sorted(f"{group}/{p.name}" for p in path.iterdir() if not p.name.startswith("."))


class ChromaBlobs:
    """Blobs as records of a Chroma collection (base64 text, cut in pieces).

    A blob is a head record ``key`` (its first piece, and how many there are)
    and, when large, records ``key#1`` …; the head is written last, so a blob
    whose head is visible is complete.
    """

    def __init__(self, collection: Collection, *, location: str) -> None:
        self.collection = collection
        self.location = location

    def get(self, key: str) -> bytes | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        heads: dict[str, tuple[str, int]] = {}
        for start in range(0, len(keys), _GET_BATCH):
            got = self.collection.get(
                ids=list(keys[start : start + _GET_BATCH]), include=["documents", "metadatas"]
            )
            for rid, doc, meta in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
            ):
                heads[rid] = (doc or "", int(str((meta or {}).get("parts", 1) or 1)))
        out: dict[str, bytes] = {}
        for key, (first, parts) in heads.items():
            pieces = [first]
            if parts > 1:
                rest = [f"{key}#{i}" for i in range(1, parts)]
                got = self.collection.get(ids=rest, include=["documents"])
                by_id = dict(zip(got["ids"], got["documents"] or [], strict=True))
                if len(by_id) != len(rest):
                    raise StoreError(f"blob {key} is missing pieces", location=self.location)
                pieces.extend(by_id[r] or "" for r in rest)
            out[key] = b"".join(base64.b64decode(p) for p in pieces)
        return out

    def put(self, key: str, data: bytes) -> None:
        pieces = [base64.b64encode(p).decode("ascii") for p in chunks(data, _PIECE)]
        group = group_of(key)
        for i in range(len(pieces) - 1, -1, -1):  # the head (piece 0) last
            self.collection.upsert(
                ids=[key if i == 0 else f"{key}#{i}"],
                documents=[pieces[i]],
                metadatas=[_meta(group, key, len(pieces), head=i == 0)],
                embeddings=np.asarray([_DUMMY_VECTOR], dtype=np.float32),
            )

    def delete(self, key: str) -> None:
        self.collection.delete(where={"key": key})

    def delete_group(self, group: str) -> None:
        self.collection.delete(where={"group": group})

    def keys(self, group: str) -> list[str]:
        got = self.collection.get(
            where={"$and": [{"group": group}, {"head": True}]}, include=["metadatas"]
        )
        return sorted(str((m or {}).get("key")) for m in got["metadatas"] or [])


def _meta(group: str, key: str, parts: int, *, head: bool) -> dict[str, Any]:
    return {"type": "blob", "group": group, "key": key, "parts": parts, "head": head}


class MemoryBlobs:
    """Blobs in a dict (tests, and stores that live in one process)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        return {k: self.data[k] for k in keys if k in self.data}

    def put(self, key: str, data: bytes) -> None:
        self.data[key] = bytes(data)

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def delete_group(self, group: str) -> None:
        for key in [k for k in self.data if group_of(k) == group]:
            del self.data[key]

    def keys(self, group: str) -> list[str]:
        return sorted(k for k in self.data if group_of(k) == group)
