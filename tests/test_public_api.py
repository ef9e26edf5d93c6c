from __future__ import annotations

import subprocess
import sys

import multimodal_rag


def test_all_lists_exactly_the_public_names() -> None:
    public = {n for n in dir(multimodal_rag) if not n.startswith("_")}
    modules = {"config", "errors", "records", "annotations", "importlib", "logging"}
    modules |= {
        n
        for n in public
        if n
        in {
            "loading",
            "embedding",
            "index",
            "retrieval",
            "storage",
            "nodes",
            "fusion",
            "keyword",
            "engine",
            "chat",
            "citations",
            "evaluation",
            "matching",
        }
    }
    assert set(multimodal_rag.__all__) == public - modules - {"TYPE_CHECKING", "Any"}


def test_every_public_name_resolves_and_is_documented() -> None:
    for name in multimodal_rag.__all__:
        obj = getattr(multimodal_rag, name)
        assert obj.__doc__, f"{name} has no docstring"


def test_import_is_light() -> None:
    code = (
        "import sys, multimodal_rag\n"
        "heavy = {'torch', 'transformers', 'chromadb', 'pymupdf', 'fitz', 'llama_index'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
