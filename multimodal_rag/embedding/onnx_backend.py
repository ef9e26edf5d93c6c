"""Running a BERT-style encoder with ONNX Runtime and ``tokenizers`` only.

The model is exported once from its local folder with ``torch.onnx.export``
and cached under ``<cache root>/onnx/<key>/``; afterwards loading it imports
neither torch nor transformers, which is what makes a cold query fast.

Cache layout (one folder per model identity, created by an atomic rename, so
a crash during export never leaves a half-written model behind)::

    model.onnx        fp32 graph: input_ids, attention_mask[, token_type_ids] -> last_hidden_state
    model.int8.onnx   optional, dynamic int8 quantisation of model.onnx
    tokenizer.json    the model's fast tokenizer
    meta.json         format version, source folder, pad token, input names
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..cpus import usable_cpus
from ._util import FloatArray, pool
from .models import model_identity

__all__ = ["OnnxEncoder", "cache_root", "ensure_onnx_export"]

logger = logging.getLogger(__name__)

_FORMAT = 1  # bump when the exported graph or meta.json changes meaning
_OPSET = 17
_FP32, _INT8, _TOKENIZER, _META = "model.onnx", "model.int8.onnx", "tokenizer.json", "meta.json"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The folder under which multimodal_rag caches derived files.

    Args:
        cache_dir: Explicit root; otherwise ``$MMRAG_CACHE_DIR`` (read now, not at
            import), otherwise ``~/.cache/multimodal_rag``.

    Returns:
        The root (not created here).
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("MMRAG_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "multimodal_rag"


def _export(folder: Path, out: Path) -> None:
    """Export the encoder in ``folder`` to ``out`` (a fresh, empty folder)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("the model has no fast tokenizer (tokenizer.json) to run without Python")
    # Eager attention traces into plain ONNX ops with a dynamic padding mask.
    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    sample = tokenizer(["an example", "a second, longer example text"], padding=True)
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    names = [n for n in names if n in accepted]

    class _Wrapper(torch.nn.Module):
        # Positional inputs for the tracer; transformers 5 reordered forward()'s arguments.
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            output = self.encoder(**dict(zip(names, tensors, strict=True)))
            return output.last_hidden_state  # type: ignore[no-any-return]

    inputs = tuple(torch.tensor(sample[n], dtype=torch.long) for n in names)
    dynamic = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    with warnings.catch_warnings(), torch.inference_mode():
        # The TorchScript exporter is deprecated but needs no onnxscript; its tracer
        # warnings concern Python-side shape checks that are constant for encoders.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Wrapper(),
            inputs,
            str(out / _FP32),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=dynamic,
            opset_version=_OPSET,
            dynamo=False,
        )
    tokenizer.backend_tokenizer.save(str(out / _TOKENIZER))
    meta = {
        "format": _FORMAT,
        "source": str(folder),
        "inputs": names,
        "pad_token": tokenizer.pad_token,
        "pad_id": tokenizer.pad_token_id,
        "hidden_size": int(model.config.hidden_size),
    }
    (out / _META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _quantize(target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp_name = tempfile.mkstemp(dir=target, prefix=".int8-", suffix=".onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pre-processing advice, irrelevant for int8 weights
            # Per-channel scales keep cosine agreement with fp32 >= ~0.98 on MiniLM
            # (per-tensor scales dropped some texts to ~0.90).
            quantize_dynamic(target / _FP32, tmp, per_channel=True, weight_type=QuantType.QInt8)
        tmp.replace(target / _INT8)
    finally:
        tmp.unlink(missing_ok=True)


def _is_complete(target: Path) -> bool:
    meta: dict[str, Any]
    try:
        meta = json.loads((target / _META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("format") == _FORMAT and all(
        (target / name).is_file() for name in (_FP32, _TOKENIZER)
    )


def ensure_onnx_export(
    folder: Path, *, cache_dir: str | Path | None = None, quantize: bool = False
) -> Path:
    """Return the cache folder holding the ONNX export of a model, exporting it if needed.

    Args:
        folder: Local model folder (see ``resolve_model``).
        cache_dir: Cache root (see :func:`cache_root`).
        quantize: Also make sure the int8 model exists.

    Returns:
        The cache folder of this model.

    Raises:
        RuntimeError, ImportError, OSError, ValueError: The export failed.
    """
    target = cache_root(cache_dir) / "onnx" / model_identity(folder)
    if target.exists() and not _is_complete(target):
        logger.warning("ONNX cache %s is incomplete or stale; exporting again", target)
        shutil.rmtree(target, ignore_errors=True)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        try:
            logger.info("exporting %s to ONNX (once) into %s", folder, target)
            _export(folder, tmp)
            try:
                tmp.rename(target)
            except OSError:
                # Another process finished the same export first; theirs is as good.
                if not _is_complete(target):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if quantize and not (target / _INT8).is_file():
        logger.info("quantising %s to int8", target / _FP32)
        _quantize(target)
    return target


class OnnxEncoder:
    """Token vectors from an exported encoder, pooled per text (not normalised).

    Args:
        target: Cache folder from :func:`ensure_onnx_export`.
        pooling: ``"cls"`` or ``"mean"``.
        max_length: Tokens per text, longer texts are truncated.
        quantize: Run ``model.int8.onnx`` instead of the fp32 model.
        num_threads: Intra-op threads; ``None`` uses every CPU the process may use.

    Raises:
        RuntimeError: The cached files cannot be loaded (corrupt cache).
    """

    def __init__(
        self,
        target: Path,
        *,
        pooling: str,
        max_length: int,
        quantize: bool = False,
        num_threads: int | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        meta = json.loads((target / _META).read_text(encoding="utf-8"))
        self._inputs = self._load(
            target / (_INT8 if quantize else _FP32), num_threads or usable_cpus()
        )
        try:
            self._tokenizer = Tokenizer.from_file(str(target / _TOKENIZER))
        except Exception as e:  # tokenizers reports a malformed file as a plain Exception
            raise RuntimeError(f"cannot load the cached tokenizer in {target}: {e}") from e
        self._tokenizer.enable_truncation(max_length)
        # tokenizer.json often pins a fixed padding length; pad to the longest text instead.
        self._tokenizer.enable_padding(pad_id=int(meta["pad_id"]), pad_token=str(meta["pad_token"]))
        self._pooling = pooling
        self.dim = int(meta["hidden_size"])

    def _load(self, model_file: Path, threads: int) -> list[str]:
        """Start the runtime on ``model_file``; return the graph's input names."""
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        try:
            self._session = ort.InferenceSession(
                str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except (
            ort_state.InvalidProtobuf,
            ort_state.InvalidGraph,
            ort_state.Fail,
            ort_state.NoSuchFile,
        ) as e:
            raise RuntimeError(f"cannot load the cached ONNX model {model_file}: {e}") from e
        return [i.name for i in self._session.get_inputs()]

    def _infer(self, feed: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.floating]:
        """The last hidden states of one batch."""
        (hidden,) = self._session.run(["last_hidden_state"], feed)
        return hidden  # type: ignore[no-any-return]

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """Pooled vectors of ``texts`` (one batch), shape ``(len(texts), dim)``."""
        encodings = self._tokenizer.encode_batch(list(texts))
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feed = {name: np.asarray(columns[name], dtype=np.int64) for name in self._inputs}
        return pool(self._infer(feed), feed["attention_mask"], self._pooling)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes after truncation (what a forward pass pays for)."""
        return [sum(e.attention_mask) for e in self._tokenizer.encode_batch(list(texts))]
