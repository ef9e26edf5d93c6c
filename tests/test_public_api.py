from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import multimodal_rag


def test_all_lists_exactly_the_public_names() -> None:
    # Submodules appear as attributes once anything imported them (other tests do), so
    # they are told apart by type rather than by a list of names that goes stale.
    public = {n for n in dir(multimodal_rag) if not n.startswith("_")}
    modules = {n for n in public if isinstance(getattr(multimodal_rag, n, None), ModuleType)}
    assert set(multimodal_rag.__all__) == public - modules - {"TYPE_CHECKING", "Any", "annotations"}


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
