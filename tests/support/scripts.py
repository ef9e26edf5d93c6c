"""Running the CLI in a fresh interpreter, and loading an example script as a module."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType


def run_mmrag(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m multimodal_rag.cli ARGS`` in a child process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "multimodal_rag.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def load_module(name: str, path: Path) -> ModuleType:
    """Import the file at ``path`` as a module called ``name`` (examples are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
