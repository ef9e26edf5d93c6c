"""Small numeric helpers shared by the embedders (numpy only, cheap to import)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")

FloatArray = npt.NDArray[np.float32]


def l2_normalise(vectors: npt.NDArray[np.floating]) -> FloatArray:
    """Scale each row to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    # A zero vector has no direction; leave it zero rather than dividing by zero.
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Yield consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def pool(
    hidden: npt.NDArray[np.floating], attention_mask: npt.NDArray[np.integer], mode: str
) -> FloatArray:
    """Pool token vectors into one vector per text.

    Args:
        hidden: ``(batch, tokens, dim)`` last hidden states.
        attention_mask: ``(batch, tokens)``, 1 for real tokens, 0 for padding.
        mode: ``"cls"`` (first token, BGE) or ``"mean"`` (average of real tokens, MiniLM).

    Returns:
        ``(batch, dim)`` float32, not normalised.
    """
    if mode == "cls":
        return np.asarray(hidden[:, 0], dtype=np.float32)
    mask = attention_mask[..., None].astype(np.float32)
    summed = (hidden.astype(np.float32) * mask).sum(axis=1)
    return np.asarray(summed / np.maximum(mask.sum(axis=1), 1e-9), dtype=np.float32)
