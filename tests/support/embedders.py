"""A deterministic bag-of-words embedder for tests of storage and retrieval mechanics."""

from __future__ import annotations

import hashlib
import math
import re

from llama_index.core.base.embeddings.base import BaseEmbedding

_WORD = re.compile(r"[a-z0-9]+")


def _vector(text: str, dim: int) -> list[float]:
    vec = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        slot = int(hashlib.md5(word.encode()).hexdigest(), 16) % dim
        vec[slot] += 1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


class HashEmbedding(BaseEmbedding):
    """Words hashed into ``dim`` slots, L2-normalised: shared words mean similar vectors."""

    dim: int = 64
    calls: int = 0

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        self.calls += 1
        return _vector(text, self.dim)
