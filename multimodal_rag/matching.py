"""Image-text matching: how well each of several texts describes one image.

Used for ``mmrag match IMAGE TEXT...`` and for zero-shot labelling of a figure
over a list of labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .embedding.image import ImageInput
from .errors import QueryError

__all__ = ["DEFAULT_LOGIT_SCALE", "ImageTextEmbedder", "MatchResult", "match"]

DEFAULT_LOGIT_SCALE = 100.0
"""Softmax temperature when the model has none: CLIP's learned scale saturates at 100."""


class ImageTextEmbedder(Protocol):
    """What :func:`match` needs from an embedder (``ClipEmbedder`` provides it)."""

    @property
    def logit_scale(self) -> float | None: ...

    def embed_images(self, images: Sequence[ImageInput]) -> Any: ...

    def embed_texts(self, texts: Sequence[str]) -> Any: ...


@dataclass(frozen=True)
class MatchResult:
    """Similarity of one image to each of several texts.

    Attributes:
        texts: The texts, in the order given.
        similarities: Cosine similarity of the image to each text, in ``[-1, 1]``.
        probabilities: Softmax of ``logit_scale * similarity`` over the texts
            (sums to 1): the zero-shot probability that each text is the label.
        logit_scale: The temperature used.
    """

    texts: tuple[str, ...]
    similarities: tuple[float, ...]
    probabilities: tuple[float, ...]
    logit_scale: float

    @property
    def best_index(self) -> int:
        """Index of the most probable text."""
        return int(np.argmax(self.similarities))

    @property
    def best(self) -> str:
        """The most probable text."""
        return self.texts[self.best_index]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form: ``{"best", "logit_scale", "matches": [{"text", ...}]}``."""
        return {
            "best": self.best,
            "logit_scale": self.logit_scale,
            "matches": [
                {"text": t, "similarity": s, "probability": p}
                for t, s, p in zip(self.texts, self.similarities, self.probabilities, strict=True)
            ],
        }


def _softmax(logits: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, Any]:
    shifted = np.exp(logits - logits.max())  # subtract the max so exp never overflows
    return np.asarray(shifted / shifted.sum())


def match(image: ImageInput, texts: Sequence[str], embedder: ImageTextEmbedder) -> MatchResult:
    """Score how well each text describes an image.

    Args:
        image: A path, encoded bytes, a ``BytesIO`` or a PIL image.
        texts: Candidate descriptions or labels (a single string counts as one text).
        embedder: An image-text embedder, e.g. ``ClipEmbedder``.

    Returns:
        Cosine similarities and softmax probabilities, in the order of ``texts``.

    Raises:
        QueryError: No texts, a blank text, or an image that cannot be read.

    Example:
        >>> result = match("pump.png", ["a pump", "a fan"], ClipEmbedder())  # doctest: +SKIP
        >>> result.best  # doctest: +SKIP
        'a pump'
    """
    candidates = [texts] if isinstance(texts, str) else list(texts)
    if not candidates:
        raise QueryError("give at least one text to match the image against")
    blank = [i + 1 for i, text in enumerate(candidates) if not text.strip()]
    if blank:
        raise QueryError(f"text number {blank[0]} is empty")
    image_vector = np.asarray(embedder.embed_images([image]), dtype=np.float64)[0]
    text_vectors = np.asarray(embedder.embed_texts(candidates), dtype=np.float64)
    similarities = text_vectors @ image_vector
    scale = embedder.logit_scale
    scale = DEFAULT_LOGIT_SCALE if scale is None or not math.isfinite(scale) else scale
    probabilities = _softmax(scale * similarities)
    return MatchResult(
        texts=tuple(candidates),
        similarities=tuple(float(s) for s in similarities),
        probabilities=tuple(float(p) for p in probabilities),
        logit_scale=float(scale),
    )
