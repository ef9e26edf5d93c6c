"""A tiny, randomly initialised BLIP captioning model for offline tests.

Random weights write nonsense, but deterministic nonsense: enough to test the
whole image-to-text path (processor, batching, ``generate``, decoding) without
the network. The text side reuses the MiniLM WordPiece tokenizer, like the
tiny CLIP in :mod:`tests.support.clip`.
"""

from __future__ import annotations

from pathlib import Path

from .clip import TINY_LAYERS, minilm_folder


def make_tiny_blip(path: Path, *, seed: int = 0) -> Path:
    """Build a tiny random BLIP (~5 MB) and save it like any local model folder.

    Args:
        path: Folder to write into (created if missing).
        seed: Torch seed, so the same call always builds the same weights.

    Returns:
        ``path``, loadable with ``AutoProcessor`` / ``AutoModelForImageTextToText``.
    """
    import torch
    from transformers import (
        AutoTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    config = BlipConfig(
        text_config={
            "vocab_size": len(tokenizer),
            **TINY_LAYERS,
            "max_position_embeddings": 64,
            # BLIP's decoder starts from [CLS] and stops at [SEP] with this tokenizer.
            "bos_token_id": tokenizer.cls_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "eos_token_id": tokenizer.sep_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            **TINY_LAYERS,
            "image_size": 64,
            "patch_size": 16,
        },
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    processor = BlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": 64, "width": 64}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(str(path))
    processor.save_pretrained(str(path))
    return path
