"""CLIP / SigLIP embeddings of images and short texts, as a LlamaIndex ``MultiModalEmbedding``.

Runs through ``transformers`` (``AutoModel`` + ``AutoProcessor``, PIL image
backend); torchvision is never needed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.callbacks import CallbackManager
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.schema import ImageType
from PIL import Image
from pydantic import PrivateAttr

from ..errors import DocumentLoadError, ModelNotFoundError, QueryError
from ..loading.images import decode_image
from ._util import FloatArray, batched, l2_normalise
from .models import resolve_model

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_IMAGE_MODEL", "ClipEmbedder", "ImageInput", "load_image"]

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_MODEL = "openai/clip-vit-base-patch32"

ImageInput: TypeAlias = str | Path | bytes | io.BytesIO | Image.Image
"""An image given as a file path, encoded bytes (PNG, JPEG, ...), a buffer or a PIL image."""

# Query images come from users; refuse decompression bombs as the loaders do.
_MAX_QUERY_PIXELS = 60_000_000


def load_image(image: ImageInput) -> Image.Image:
    """Open an image from any accepted form, as RGB.

    Args:
        image: A path, encoded bytes, a ``BytesIO`` or a PIL image.

    Returns:
        The decoded RGB image.

    Raises:
        QueryError: The file is missing or the data is not a decodable image.

    Example:
        >>> load_image(Image.new("L", (4, 4))).mode
        'RGB'
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, io.BytesIO):
        data, source = image.getvalue(), "<buffer>"
    elif isinstance(image, bytes):
        data, source = image, "<bytes>"
    else:
        source = str(image)
        try:
            data = Path(image).read_bytes()
        except OSError as e:
            raise QueryError(f"cannot read image {source}: {e.strerror or e}") from e
    try:
        decoded = decode_image(data, max_pixels=_MAX_QUERY_PIXELS, path=source)
    except DocumentLoadError as e:
        raise QueryError(str(e)) from e
    return decoded.convert("RGB")


def _features(output: Any) -> torch.Tensor:
    # transformers 5 returns an output object whose pooler_output is the projected
    # embedding; older versions return the tensor itself.
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if not isinstance(pooled, torch.Tensor):
        raise TypeError(f"unexpected output of the image/text feature call: {type(output)}")
    return pooled


class ClipEmbedder(MultiModalEmbedding):
    """Embeds images and texts into one space with CLIP or SigLIP.

    Vectors are L2-normalised, so a dot product is the cosine similarity.

    Args:
        model: Hub id (cache first, download where the hub is reachable) or a
            local folder holding a CLIP/SigLIP model and its processor.
        embed_batch_size: Images or texts per forward pass.
        num_threads: Torch CPU threads; ``None`` keeps torch's default.
        callback_manager: LlamaIndex callbacks.

    Raises:
        ModelNotFoundError: The model cannot be found or loaded.

    Example:
        >>> clip = ClipEmbedder("/path/to/clip")  # doctest: +SKIP
        >>> len(clip.get_image_embedding("figure.png")) == clip.dim  # doctest: +SKIP
        True
    """

    _model: Any = PrivateAttr()
    _processor: Any = PrivateAttr()
    _dim: int = PrivateAttr()
    _text_max_length: int = PrivateAttr()
    _pad_to_max: bool = PrivateAttr()
    _spec: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(
        self,
        model: str = DEFAULT_IMAGE_MODEL,
        *,
        embed_batch_size: int = 16,
        num_threads: int | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(
            model_name=model,
            embed_batch_size=embed_batch_size,
            callback_manager=callback_manager or CallbackManager([]),
        )
        self._spec = {
            "model": model,
            "embed_batch_size": embed_batch_size,
            "num_threads": num_threads,
        }
        folder = resolve_model(model)
        import torch
        from transformers import AutoModel, AutoProcessor

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        try:
            self._model = AutoModel.from_pretrained(str(folder)).eval()
            self._processor = AutoProcessor.from_pretrained(str(folder))  # type: ignore[no-untyped-call]
        except (OSError, ValueError, KeyError) as e:
            raise ModelNotFoundError(model, f"cannot load a CLIP model from {folder}: {e}") from e
        config = self._model.config
        if not hasattr(self._model, "get_image_features"):
            raise ModelNotFoundError(model, f"{config.model_type} is not an image-text model")
        text_config = config.text_config
        self._dim = int(
            getattr(config, "projection_dim", None)
            or getattr(text_config, "projection_size", None)
            or text_config.hidden_size
        )
        self._text_max_length = int(text_config.max_position_embeddings)
        # SigLIP was trained on texts padded to the full length; CLIP pools at EOS.
        self._pad_to_max = config.model_type.startswith("siglip")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the recipe, not the weights: ingest workers load the model themselves."""
        return (_rebuild, (dict(self._spec),))

    @classmethod
    def class_name(cls) -> str:
        return "ClipEmbedder"

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self._dim

    @property
    def logit_scale(self) -> float | None:
        """The model's learned temperature (``exp(logit_scale)``), if it has one."""
        scale = getattr(self._model, "logit_scale", None)
        return None if scale is None else float(scale.detach().exp())

    def embed_images(self, images: Sequence[ImageInput]) -> FloatArray:
        """Embed images in batches.

        Args:
            images: Paths, encoded bytes, buffers or PIL images.

        Returns:
            ``(len(images), dim)`` float32, L2-normalised.

        Raises:
            QueryError: An image cannot be read or decoded.
        """
        import torch

        pil = [load_image(image) for image in images]
        parts: list[FloatArray] = []
        for batch in batched(pil, self.embed_batch_size):
            pixels = self._processor.image_processor(images=list(batch), return_tensors="pt")
            with torch.inference_mode():
                output = self._model.get_image_features(pixel_values=pixels["pixel_values"])
            parts.append(_features(output).float().numpy())
        if not parts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return l2_normalise(np.concatenate(parts))

    def embed_texts(self, texts: Sequence[str]) -> FloatArray:
        """Embed texts (labels, captions, queries) into the image space, in batches.

        Args:
            texts: Texts; longer ones are truncated to the model's text length.

        Returns:
            ``(len(texts), dim)`` float32, L2-normalised.
        """
        import torch

        parts: list[FloatArray] = []
        for batch in batched(list(texts), self.embed_batch_size):
            tokens = self._processor.tokenizer(
                list(batch),
                padding="max_length" if self._pad_to_max else True,
                truncation=True,
                max_length=self._text_max_length,
                return_tensors="pt",
            )
            inputs = {"input_ids": tokens["input_ids"]}
            if "attention_mask" in tokens and not self._pad_to_max:
                inputs["attention_mask"] = tokens["attention_mask"]
            with torch.inference_mode():
                output = self._model.get_text_features(**inputs)
            parts.append(_features(output).float().numpy())
        if not parts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return l2_normalise(np.concatenate(parts))

    def get_image_embedding_from_bytes(self, data: bytes) -> Embedding:
        """Embed one encoded image (PNG, JPEG, ...), e.g. a ``Figure.image_png``."""
        return [float(x) for x in self.embed_images([data])[0]]

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return [float(x) for x in self.embed_images([img_file_path])[0]]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._get_image_embedding(img_file_path)

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return self.embed_images(list(img_file_paths)).tolist()  # type: ignore[no-any-return]

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return self._get_image_embeddings(img_file_paths)

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embedding(query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return [float(x) for x in self.embed_texts([text])[0]]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embedding(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.embed_texts(texts).tolist()  # type: ignore[no-any-return]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._get_text_embeddings(texts)


def _rebuild(spec: dict[str, Any]) -> ClipEmbedder:
    return ClipEmbedder(**spec)
