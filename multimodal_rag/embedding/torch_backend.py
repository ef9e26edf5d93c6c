"""Running a BERT-style encoder with torch and transformers (the reference backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ._util import FloatArray, pool

__all__ = ["TorchEncoder"]


class TorchEncoder:
    """Token vectors from ``transformers.AutoModel``, pooled per text (not normalised).

    Args:
        folder: Local model folder.
        pooling: ``"cls"`` or ``"mean"``.
        max_length: Tokens per text, longer texts are truncated.
        num_threads: Torch CPU threads; ``None`` keeps torch's default.

    Raises:
        OSError, ValueError: The folder does not hold a loadable model.
    """

    def __init__(
        self, folder: Path, *, pooling: str, max_length: int, num_threads: int | None = None
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self._model = AutoModel.from_pretrained(str(folder)).eval()
        self._pooling = pooling
        self._max_length = max_length
        self.dim = int(self._model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """Pooled vectors of ``texts`` (one batch), shape ``(len(texts), dim)``."""
        import torch

        tokens = self._tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self._max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            hidden = self._model(**tokens).last_hidden_state
        return pool(hidden.float().numpy(), tokens["attention_mask"].numpy(), self._pooling)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes after truncation (what a forward pass pays for)."""
        ids = self._tokenizer(list(texts), truncation=True, max_length=self._max_length)
        return [len(x) for x in ids["input_ids"]]
