"""Captions for figures that have none printed, so they can be found by meaning.

A manual's cover photo or an unlabelled screenshot crop has no caption, and
often no referring sentence either: its text vector is empty. A captioner
writes one sentence about the picture. The sentence is kept apart from printed
captions (``Figure.generated_caption``, metadata ``generated_caption``) so a
citation never passes a model's guess off as the manual's words.

Two implementations of :class:`Captioner`:

- :class:`HFCaptioner`: a Hugging Face image-to-text model (BLIP-style:
  ``AutoProcessor`` + ``AutoModelForImageTextToText.generate``), from a hub id
  or a local folder.
- :class:`LLMCaptioner`: any LlamaIndex LLM that accepts image blocks (GPT-4o,
  Claude, Gemini, a local llava through Ollama, ...).

Neither is needed offline: ingestion captions only when asked
(``mmrag ingest --caption-missing``, ``MultimodalIndex.ingest(captioner=...)``).

Example:
    >>> class Constant:
    ...     name = "constant"
    ...     def caption(self, images):
    ...         return ["a photo of a panel" for _ in images]
    >>> from multimodal_rag.records import Figure
    >>> fig = Figure(doc="m.pdf", page=1, bbox=(0, 0, 1, 1), kind="raster", image_png=b"")
    >>> caption_missing([fig], Constant())[0].generated_caption
    'a photo of a panel'
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .embedding.models import resolve_model
from .errors import ModelNotFoundError
from .records import Figure

if TYPE_CHECKING:
    from llama_index.core.llms import LLM

__all__ = [
    "DEFAULT_CAPTION_MODEL",
    "Captioner",
    "HFCaptioner",
    "LLMCaptioner",
    "caption_missing",
    "load_captioner",
]

logger = logging.getLogger(__name__)

DEFAULT_CAPTION_MODEL = "Salesforce/blip-image-captioning-base"
"""The image-to-text model ``--caption-missing`` uses when none is named."""

# Generated captions are one short sentence; anything longer is a model rambling.
_MAX_CAPTION_CHARS = 300

DEFAULT_LLM_PROMPT = (
    "This picture is a figure from a technical manual. Describe in one sentence what it "
    "shows (the device, window, diagram or plot), naming any visible labels. "
    "Answer with the sentence only."
)


@runtime_checkable
class Captioner(Protocol):
    """Writes one caption per image.

    Attributes:
        name: Identifies the captioner (model name) in logs.
    """

    name: str

    def caption(self, images: Sequence[bytes]) -> list[str]:
        """Captions for PNG images, one per image, in order ("" when none could be made)."""
        ...


def _clean(text: str) -> str:
    text = " ".join(text.split())
    return text[:_MAX_CAPTION_CHARS]


class HFCaptioner:
    """A Hugging Face image-to-text model (BLIP, GIT, ...) run with ``generate``.

    Args:
        model: Hub id or local folder.
        max_new_tokens: Longest caption, in tokens.
        batch_size: Images per ``generate`` call.
        prompt: Optional text the caption continues (BLIP: ``"a diagram of"``).

    Raises:
        ModelNotFoundError: The model cannot be found or loaded.

    Example:
        >>> captioner = HFCaptioner("Salesforce/blip-image-captioning-base")  # doctest: +SKIP
        >>> captioner.caption([png_bytes])                                    # doctest: +SKIP
        ['a circuit board with wires']
    """

    def __init__(
        self,
        model: str = DEFAULT_CAPTION_MODEL,
        *,
        max_new_tokens: int = 30,
        batch_size: int = 8,
        prompt: str | None = None,
    ) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be at least 1")
        folder = resolve_model(model)
        try:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor

            self._processor: Any = AutoProcessor.from_pretrained(str(folder))  # type: ignore[no-untyped-call]
            model_obj: Any = AutoModelForImageTextToText.from_pretrained(str(folder))
            self._model: Any = model_obj.eval()
        except (OSError, ValueError, KeyError) as e:
            raise ModelNotFoundError(
                model, f"cannot load an image-to-text model from {folder}: {e}"
            ) from e
        self._torch = torch
        self.name = model
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.prompt = prompt

    def caption(self, images: Sequence[bytes]) -> list[str]:
        """Captions for PNG images, in order."""
        from PIL import Image

        out: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = [
                Image.open(io.BytesIO(png)).convert("RGB")
                for png in images[start : start + self.batch_size]
            ]
            kwargs: dict[str, Any] = {"images": batch, "return_tensors": "pt"}
            if self.prompt:
                kwargs["text"] = [self.prompt] * len(batch)
            inputs = self._processor(**kwargs)
            with self._torch.inference_mode():
                tokens = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens)
            texts = self._processor.batch_decode(tokens, skip_special_tokens=True)
            out += [_clean(t) for t in texts]
        return out


class LLMCaptioner:
    """Captions written by a LlamaIndex LLM that accepts images (one chat call per figure).

    Args:
        llm: Any LlamaIndex ``LLM`` whose chat accepts ``ImageBlock`` content.
        prompt: The instruction sent with each image.

    Example:
        >>> from llama_index.llms.openai import OpenAI          # doctest: +SKIP
        >>> LLMCaptioner(OpenAI(model="gpt-4o-mini")).caption([png_bytes])  # doctest: +SKIP
    """

    def __init__(self, llm: LLM, *, prompt: str = DEFAULT_LLM_PROMPT) -> None:
        self.llm = llm
        self.prompt = prompt
        self.name = f"llm:{type(llm).__name__}"

    def caption(self, images: Sequence[bytes]) -> list[str]:
        """Captions for PNG images, in order."""
        from llama_index.core.llms import ChatMessage, ImageBlock, MessageRole, TextBlock

        out: list[str] = []
        for png in images:
            message = ChatMessage(
                role=MessageRole.USER,
                blocks=[
                    ImageBlock(image=png, image_mimetype="image/png"),
                    TextBlock(text=self.prompt),
                ],
            )
            response = self.llm.chat([message])
            out.append(_clean(response.message.content or ""))
        return out


def caption_missing(figures: Sequence[Figure], captioner: Captioner) -> list[Figure]:
    """Give every figure without a printed caption a generated one.

    Figures with a printed caption, and figures already carrying a generated
    caption, are returned unchanged; the others go to the captioner in one call.

    Args:
        figures: A document's figures.
        captioner: Writes the captions.

    Returns:
        The figures, in order, the uncaptioned ones with ``generated_caption`` set
        (left ``None`` where the captioner returned an empty string).

    Raises:
        ValueError: The captioner returned a different number of captions than images.
    """
    todo = [i for i, f in enumerate(figures) if not f.caption and not f.generated_caption]
    if not todo:
        return list(figures)
    captions = captioner.caption([figures[i].image_png for i in todo])
    if len(captions) != len(todo):
        raise ValueError(
            f"captioner {captioner.name!r} returned {len(captions)} captions for {len(todo)} images"
        )
    out = list(figures)
    for i, text in zip(todo, captions, strict=True):
        text = _clean(text)
        if text:
            out[i] = replace(out[i], generated_caption=text)
    logger.info("captioned %d uncaptioned figures with %s", len(todo), captioner.name)
    return out


def load_captioner(model: str | None = None) -> HFCaptioner:
    """The image-to-text captioner for a model name (``None``: :data:`DEFAULT_CAPTION_MODEL`).

    Raises:
        ModelNotFoundError: The model cannot be found or loaded.
    """
    return HFCaptioner(model or DEFAULT_CAPTION_MODEL)
