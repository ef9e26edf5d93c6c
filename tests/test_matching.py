"""Image-text matching with the tiny CLIP and with a stub embedder of known vectors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from multimodal_rag.embedding import ClipEmbedder, ImageInput
from multimodal_rag.errors import QueryError
from multimodal_rag.matching import DEFAULT_LOGIT_SCALE, match

from .support.clip import make_tiny_clip, smooth_random_images


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> ClipEmbedder:
    return ClipEmbedder(str(make_tiny_clip(tmp_path_factory.mktemp("tiny") / "clip")))


class _StubEmbedder:
    """Fixed unit vectors: the image is (1, 0); texts map to known directions."""

    def __init__(self, logit_scale: float | None) -> None:
        self._scale = logit_scale
        self._texts = {"same": [1.0, 0.0], "orthogonal": [0.0, 1.0], "opposite": [-1.0, 0.0]}

    @property
    def logit_scale(self) -> float | None:
        return self._scale

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        return np.array([[1.0, 0.0] for _ in images])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self._texts[t] for t in texts])


def test_similarities_and_probabilities_follow_the_embeddings(clip: ClipEmbedder) -> None:
    image = smooth_random_images(1, seed=7)[0]
    texts = ["a pump", "a fan", "a wiring diagram", "a pump"]
    result = match(image, texts, clip)
    expected = clip.embed_texts(texts) @ clip.embed_images([image])[0]
    assert result.texts == tuple(texts)
    np.testing.assert_allclose(result.similarities, expected, atol=1e-5)
    assert sum(result.probabilities) == pytest.approx(1.0)
    assert result.probabilities[0] == pytest.approx(result.probabilities[3])  # same text
    assert result.best == texts[int(np.argmax(expected))]
    assert clip.logit_scale is not None
    assert result.logit_scale == pytest.approx(clip.logit_scale)
    assert set(result.to_json()) == {"best", "logit_scale", "matches"}


def test_softmax_uses_the_model_scale_or_100() -> None:
    texts = ["same", "orthogonal", "opposite"]
    logits = np.array([1.0, 0.0, -1.0])
    for scale in (None, 2.0):
        result = match(b"unused by the stub", texts, _StubEmbedder(scale))
        used = DEFAULT_LOGIT_SCALE if scale is None else scale
        expected = np.exp(used * logits) / np.exp(used * logits).sum()
        np.testing.assert_allclose(result.probabilities, expected, rtol=1e-9, atol=1e-300)
        assert result.similarities == (1.0, 0.0, -1.0)
        assert result.best == "same"


def test_a_single_string_is_one_text(clip: ClipEmbedder) -> None:
    result = match(smooth_random_images(1)[0], "a pump", clip)
    assert result.texts == ("a pump",)
    assert len(result.probabilities) == 1
    assert result.probabilities[0] == pytest.approx(1.0)


def test_bad_input_raises_query_error(clip: ClipEmbedder, tmp_path: Path) -> None:
    image = smooth_random_images(1)[0]
    with pytest.raises(QueryError, match="at least one text"):
        match(image, [], clip)
    with pytest.raises(QueryError, match="text number 2 is empty"):
        match(image, ["a pump", "  "], clip)
    with pytest.raises(QueryError, match="cannot read image"):
        match(tmp_path / "missing.png", ["a pump"], clip)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(QueryError, match="cannot decode"):
        match(tmp_path / "broken.png", ["a pump"], clip)
